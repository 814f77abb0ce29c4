"""Audio intake, analysis, VAD, transcription and segmentation for dataset prep."""
