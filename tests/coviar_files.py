"""Score files written the way CoViAR's `test.py --save-scores` writes them, with the quirks real files have."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


def write_coviar_scores(path, logits, labels: Sequence[int], names: Sequence[str], pairs_as: str = "rows",
                        label_type: str = "int"):
    """`np.savez(path, scores=pairs, labels=labels, names=names)` with pairs `(logits (1, C), label)`.

    pairs_as: "rows" (what np.array makes of a list of tuples: an (N, 2) object array) or "tuples" (a 1-D object
    array of the tuples). label_type: "int"; "numpy" (labels pickled as NumPy integers in an object array);
    "tensor" (CoViAR's own: each label a 0-d torch tensor from its DataLoader, in the pairs and in `labels`).
    """
    def label_object(label: int):
        return {"int": int, "numpy": np.int64, "tensor": torch.tensor}[label_type](int(label))

    pairs = [(np.asarray(row, np.float32).reshape(1, -1), label_object(label)) for row, label in zip(logits, labels)]
    if pairs_as == "rows":
        scores = np.empty((len(pairs), 2), dtype=object)
        for index, pair in enumerate(pairs):
            scores[index, 0], scores[index, 1] = pair
    else:
        scores = np.empty(len(pairs), dtype=object)
        for index, pair in enumerate(pairs):
            scores[index] = pair
    if label_type == "int":
        stored_labels = np.asarray(labels, dtype=np.int64)
    else:
        stored_labels = np.empty(len(pairs), dtype=object)
        for index, pair in enumerate(pairs):
            stored_labels[index] = pair[1]
    np.savez(path, scores=scores, labels=stored_labels, names=np.asarray(list(names)))
    return path
