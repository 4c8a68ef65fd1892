"""Run folders: the run schema, atomic checkpoints, and loading a finished run as a model."""
