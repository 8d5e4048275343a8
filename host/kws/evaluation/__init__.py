"""Evaluation: how good a model folder is, on clips and on continuous streams.

- `runtime`: the exported model's interpreters (LiteRT, TFLM's Python runtime);
- `evaluate`: the model folder (`ModelDir`) and clip accuracy with its confusion matrix (`kws eval`);
- `streaming`: streams built from clips and noise, scored through the board's pipeline and recognizer;
- `stream_sources`: the noise sources, stream length and stream descriptions report and calibrate share;
- `calibrate`: thresholds and recognizer settings fitted for a false-accepts target (`kws calibrate`);
- `report`: every measurement of a model in report.md and metrics.json (`kws report`), figures in `plots`;
- `keyword_check`: keywords spoken in sequence to a board, scored.
"""
