"""The optional TensorBoard log of a run (`log.tensorboard: true`): the scalars of log.jsonl, one step per epoch, as
event files in RUN/tensorboard/ (`tensorboard --logdir runs`). TensorBoard is an optional extra:
`pip install 'cvkd[tensorboard]'`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from cvkd.errors import MissingDependencyError

TENSORBOARD_DIR = "tensorboard"
EXTRA = "pip install 'cvkd[tensorboard]'"


def summary_writer_class() -> Callable[..., Any]:
    """torch's SummaryWriter; a one-line MissingDependencyError naming the extra when TensorBoard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch.utils.tensorboard imports the tensorboard package itself
        raise MissingDependencyError(f"log.tensorboard is true but TensorBoard is not installed: {EXTRA} (or set "
                                     "log.tensorboard=false)") from None
    return SummaryWriter


def scalars(row: Mapping[str, Any]) -> dict[str, float]:
    """A log.jsonl row as TensorBoard scalars: every number but the epoch (the step) under its own key, and every
    number of a nested mapping (teacher weights, fusion weights) under `key/name`."""
    found: dict[str, float] = {}
    for key, value in row.items():
        if key == "epoch":
            continue
        if isinstance(value, Mapping):
            found.update({f"{key}/{name}": float(inner) for name, inner in value.items() if _is_number(inner)})
        elif _is_number(value):
            found[key] = float(value)
    return found


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class TensorBoardLog:
    """Writes the rows of a run's history it has not written yet, each at step = its epoch. The first write of a
    process (a start or a resume) purges events at or after its first epoch, so the epochs a killed run had logged
    past its last checkpoint are not shown twice."""

    def __init__(self, run_folder: str | Path, writer_class: Callable[..., Any] | None = None) -> None:
        self.folder = Path(run_folder) / TENSORBOARD_DIR
        self._writer_class = writer_class or summary_writer_class()
        self._writer: Any = None
        self._written = 0  # the last epoch written

    def write(self, history: Iterable[Mapping[str, Any]]) -> None:
        """Write every row of `history` whose epoch is past the last one written, and flush."""
        rows = [row for row in history if int(row["epoch"]) > self._written]
        if not rows:
            return
        if self._writer is None:
            self._writer = self._writer_class(log_dir=str(self.folder), purge_step=int(rows[0]["epoch"]))
        for row in rows:
            for key, value in scalars(row).items():
                self._writer.add_scalar(key, value, int(row["epoch"]))
            self._written = int(row["epoch"])
        self._writer.flush()

    def close(self) -> None:
        """Close the event file (if one was opened)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def open_tensorboard(enabled: bool, run_folder: str | Path, writes: bool) -> TensorBoardLog | None:
    """The run's TensorBoard log when `log.tensorboard` is on and this process `writes` the run's files (else None);
    every process checks that TensorBoard is installed, so all of them stop alike when it is not."""
    if not enabled:
        return None
    writer_class = summary_writer_class()
    return TensorBoardLog(run_folder, writer_class) if writes else None
