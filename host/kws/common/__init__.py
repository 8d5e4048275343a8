"""What every stage uses and no stage owns: paths as the project prints them (`paths`), the defaults `kws --help`
shows (`defaults`), the progress line (`progress`) and TensorFlow's silencing (`quiet`). Imports nothing above it."""
