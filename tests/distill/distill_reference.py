"""Straightforward numpy versions of the distillation formulas, written independently of cvkd, for golden values."""

from __future__ import annotations

import numpy as np
import torch


def softmax(logits, temperature: float = 1.0) -> np.ndarray:
    """softmax(z / T) over the last axis."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def kl(p, q) -> np.ndarray:
    """KL(p || q) per row."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    return np.sum(p * np.log(p / q), axis=-1)


def entropy(p) -> np.ndarray:
    """Entropy per row."""
    p = np.asarray(p, dtype=np.float64)
    return -np.sum(p * np.log(p), axis=-1)


def cross_entropy(logits, labels) -> np.ndarray:
    """-log softmax(z)[y] per row."""
    p = softmax(logits)
    return -np.log(p[..., np.arange(len(labels)), labels])


def tensor(values, requires_grad: bool = False) -> torch.Tensor:
    """float32 tensor from nested lists."""
    return torch.tensor(values, dtype=torch.float32, requires_grad=requires_grad)


# Hand-picked logits shared by several tests: B=3 samples, C=4 classes, K=3 teachers.
STUDENT = [[1.0, 0.5, -0.5, 0.0], [0.2, 0.1, 0.3, -1.0], [-0.3, 2.0, 0.0, 0.4]]
TEACHERS = [
    [[3.0, 0.0, -1.0, 0.5], [0.0, 2.5, 0.5, -0.5], [0.5, 0.0, 1.5, 0.0]],
    [[1.0, 1.2, 0.0, -0.2], [-1.0, 0.5, 0.0, 0.3], [0.0, 4.0, -1.0, 1.0]],
    [[0.1, 0.1, 0.2, 0.0], [2.0, 0.0, 0.0, 1.0], [1.0, 1.0, 0.5, 0.9]],
]
LABELS = [0, 1, 2]


def assert_close(actual, expected, rtol: float = 1e-4, atol: float = 1e-6) -> None:
    """Compare a float32 result (tensor or number) with a float64 golden value."""
    if isinstance(actual, torch.Tensor):
        actual = actual.detach().numpy()
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)
