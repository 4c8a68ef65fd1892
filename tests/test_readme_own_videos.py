"""The README's "your own videos in five commands" runs as written, on a folder of clips encoded on the fly (only
the training line gets overrides that make it take seconds: one epoch, tiny networks, no worker processes)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from clips import encode, pan

from cvkd.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"
FAST = ["optim.epochs=1", "optim.lr_steps=[]", "data.workers=0", "data.val_segments=1",
        "model.streams={iframe: cnn_tiny, mv: cnn_tiny, residual: cnn_tiny}"]


def readme_commands() -> list[list[str]]:
    """The five command lines of the README's own-videos block, comments dropped."""
    section = README.read_text().split("## Your own videos in five commands", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [shlex.split(line.split("#", 1)[0]) for line in block.splitlines() if line.strip()]


def test_the_own_videos_path_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for label, velocity in (("wave", (1, 0)), ("nod", (0, 1))):
        for clip in range(5):
            path = tmp_path / "my_videos" / label / f"clip{clip + 1:02d}.mp4"
            path.parent.mkdir(parents=True, exist_ok=True)
            encode(pan((64, 48), 24 + 2 * clip, velocity), path)
    commands = readme_commands()
    assert [command[:2] for command in commands] == [["cvkd", "prepare"], ["cvkd", "train"], ["cvkd", "test"],
                                                    ["cvkd", "predict"], ["cvkd", "export"]]
    for command in commands:
        argv = command[1:] + (FAST if command[1] == "train" else [])
        assert main(argv) == 0, (argv, capsys.readouterr().err[-600:])
    printed = capsys.readouterr().out
    assert "my_videos/wave/clip01.mp4: " in printed and (tmp_path / "exported" / "mine.onnx").is_file()
