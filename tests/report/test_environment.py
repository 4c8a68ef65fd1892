"""The environment every report records: versions, threads, the command as typed, machine facts without host name."""

from __future__ import annotations

import json
import os
import socket

import torch

import cvkd
from cvkd.report.environment import command_line, environment, environment_lines


def test_command_line_as_typed():
    assert command_line(["/opt/venv/bin/cvkd", "compare", "runs/a b", "--teacher", "t"]) == \
        "cvkd compare 'runs/a b' --teacher t"
    assert command_line(["/src/cvkd/__main__.py", "demo", "--quick"]) == "python -m cvkd demo --quick"
    assert command_line([]) == ""


def test_environment_records_versions_threads_command_and_cpus(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    facts = environment(["cvkd", "demo", "--seeds", "3"])
    assert facts["command"] == "cvkd demo --seeds 3"
    assert list(facts["versions"]) == ["cvkd", "torch", "torchvision", "av", "numpy", "python"]
    assert facts["versions"]["cvkd"] == cvkd.__version__
    assert facts["versions"]["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert facts["torch_threads"] == torch.get_num_threads() and facts["thread_variables"] == {"OMP_NUM_THREADS": "2"}
    assert facts["machine"]["cpu_count"] == os.cpu_count()
    host = socket.gethostname()
    if len(host) >= 6:  # a short host name could turn up inside another word by chance
        assert host not in json.dumps(facts)
    lines = environment_lines(facts)
    assert lines[0] == "Command: `cvkd demo --seeds 3`" and f"torch {facts['versions']['torch']}" in lines[1]
    assert "OMP_NUM_THREADS=2" in lines[2] and f"{os.cpu_count()} CPUs" in lines[3]
