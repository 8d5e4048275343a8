"""Data: from audio files on disk to labelled clips and cached features.

- `audio`: reading and writing audio (the one place files are decoded), with the bad-file rule;
- `clips`: the `Clip` every dataset reader produces, and the split names;
- `dataset`: folder and Speech Commands layouts indexed, words mapped to the config's classes, clips loaded
  (`load`, `select_clips`); `speech_commands` and `download` fetch and read Speech Commands;
- `augment`: noise and augmentation (speed, shift, reverb, gain, noise at an SNR);
- `features`: the front end's features of every split, augmented and cached (`features`, `kws data features`);
- `synth`: synthetic speech with espeak-ng / flite (`kws data synth`).
"""
