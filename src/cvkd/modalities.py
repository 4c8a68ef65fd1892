"""One home for the facts about each input type a stream can read (I-frame, MV, residual, RGB)."""

from __future__ import annotations

FUSED = "fused"
"""The key of a multi-stream model's fused scores, beside its per-stream keys."""
