"""The listening test: objective voice metrics for audio, checkpoints and the base model.

Headless and importable (never imports the studio). Modules:
  textmetrics  normalisation, CER/WER, loop and truncation flags from a transcript
  audio        16 kHz mono loading, where the sound ends
  encoders     XTTS speaker encoder, resemblyzer, DNSMOS
  asr          whisper (same model choice as prep)
  score        Scorer: one utterance -> metrics and flags; summarize(): one checkpoint
  testset      the fixed test of a run (eval clips + unseen sentences), stored in the run
  run          synthesise + score checkpoints and the base (the `listen` job, in-training tests)
  select       recommended checkpoint and the overtraining check from listening
"""

from engine.listen.encoders import ListenError

__all__ = ["ListenError"]
