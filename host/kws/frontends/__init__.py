"""Front ends: audio to the model's input features, exactly as the board computes them.

- `dispatch`: the entry point; picks the front end by `config.frontend.kind` (features of a clip, a stream's window,
  int8 scaling, float conversion);
- `microfrontend`: the TFLM microfrontend (the board's C, through ctypes): micro_speech's features;
- `mfcc`: the MLPerf Tiny MFCC front end in integer C (firmware/lib/kws_core/kws_mfcc.c), through ctypes;
- `teacher_mfcc`: the teacher's front ends in TensorFlow (never on the board).
"""
