"""Audio I/O, the librosa log-mel front-end and its in-graph twin (issue #5).

Modules:

- `audio.io`: `load_audio` (wav, flac, ogg, mp3, ... to float32 mono 16 kHz),
  `read_wav_bytes` / `to_wav_bytes` (16-bit PCM WAV), `split_at_silences`.
- `audio.features`: `FrontEndConfig` and `log_mel_librosa`, the reference
  features; re-exports the layers `LogMel`, `FeatureNormalization` and
  `decode_wav_batch`.
- `audio.augment`: noise at a given SNR, speed perturbation, and (re-exported)
  `SpecAugment` / `spec_augment`.
- `audio.layers`: the Keras layers and TensorFlow graph functions (imports
  TensorFlow; the modules above do not until a layer is asked for).
- `audio.plot`: `plot_spectrogram`, a PNG of features with a transcript.
"""
