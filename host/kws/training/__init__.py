"""Training: from cached features to an int8 model folder the firmware compiles.

- `models`: the architectures (tf_keras), one function each; `backbone`: the MLPerf reference DS-CNN as a start;
- `teacher`: a pretrained teacher's soft targets (distillation);
- `train`: the training loop (`kws train`);
- `export`: int8 conversion and the model folder: model_data.cc, model_settings.h, config, card (`kws export`).
"""
