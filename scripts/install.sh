#!/usr/bin/env bash
# Installs nano-kws on Debian/Ubuntu: system packages, then a virtualenv in .venv with the pinned Python stack.
#   scripts/install.sh          what the pipeline needs (espeak-ng, flite, a C compiler, PortAudio)
#   scripts/install.sh --test   also the Cortex-M4 cross toolchain, QEMU, PulseAudio and the test tools
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(espeak-ng flite gcc make libc6-dev libportaudio2 python3-venv)
extras=""
if [[ "${1:-}" == "--test" ]]; then
  # PulseAudio: tests/test_mic.py records through a null sink, the microphone path end to end.
  packages+=(gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm
             pulseaudio pulseaudio-utils libasound2-plugins)
  extras="[test]"
fi

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
  echo "installing system packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "nano-kws needs Python 3.11 (TensorFlow 2.21 wheels and the pinned set); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
[[ -x .venv/bin/python ]] || "$python" -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e ".${extras}"
