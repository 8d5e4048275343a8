"""PlatformIO pre-script: compiles one exported model into the firmware.

The model is models/<name>/ as written by `kws export` (model_data.cc, model_data.h, model_settings.h). <name> comes
from the KWS_MODEL environment variable, else from `custom_kws_model` in platformio.ini, so trying another model needs
no edit: `KWS_MODEL=arabic_commands pio run -e nano33ble`.
"""

import os
import sys

Import("env")  # noqa: F821 - SCons injects Import into PlatformIO extra scripts

REQUIRED = ("model_data.cc", "model_data.h", "model_settings.h")

name = os.environ.get("KWS_MODEL") or env.GetProjectOption("custom_kws_model")  # noqa: F821
model_dir = os.path.join(env.subst("$PROJECT_DIR"), "models", name)  # noqa: F821
missing = [f for f in REQUIRED if not os.path.isfile(os.path.join(model_dir, f))]
if missing:
    sys.stderr.write(f"select_model.py: {model_dir} lacks {', '.join(missing)}; "
                     "export a model there with `kws export` or pick another with KWS_MODEL=<name>\n")
    env.Exit(1)  # noqa: F821

print(f"select_model.py: model {name} from {model_dir}")
# Pre-script flags reach the project's own sources too (firmware/src includes model_settings.h).
env.Append(CPPPATH=[model_dir])  # noqa: F821
env.BuildSources(os.path.join("$BUILD_DIR", "kws_model"), model_dir, src_filter="-<*> +<model_data.cc>")  # noqa: F821
