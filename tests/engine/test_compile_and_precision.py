"""GPU conventions exercised on the CPU: torch.compile of the trained streams (backend aot_eager: dynamo and
AOTAutograd without the inductor's C++ build, which takes ~30 s for one small graph here), its one-line failures,
autocast at test time (`cvkd test --amp`), live teachers in the training precision, channels-last batches."""

from __future__ import annotations

import pytest
import torch

from cvkd.config import load_config
from cvkd.engine import train as train_module
from cvkd.engine.protocol import evaluate_run, resolve_test_precision
from cvkd.engine.runtime import to_channels_last, training_precision
from cvkd.errors import ConfigError, TrainingError
from cvkd.runs.checkpoint import LAST, load_checkpoint
from cvkd.runs.schema import RunConfig

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.fixture
def built(monkeypatch):
    """The RunParts of the next run trained in this process."""
    seen = {}
    build = train_module.build_run

    def keep(config, runtime, progress=True):
        seen["parts"] = build(config, runtime, progress)
        return seen["parts"]

    monkeypatch.setattr(train_module, "build_run", keep)
    return seen


def test_compiled_streams_train_like_eager_ones_and_keep_their_checkpoint_keys(tiny, built):
    compiled = tiny.train("compiled", "optim.epochs=1", "compile=true", "compile_backend=aot_eager").run_dir
    stream = built["parts"].model.streams["mv"]
    assert stream._compiled_call_impl is not None  # nn.Module.compile: the stream's calls go through dynamo
    eager = tiny.train("eager", "optim.epochs=1").run_dir
    assert built["parts"].model.streams["mv"]._compiled_call_impl is None
    first, second = (load_checkpoint(run / LAST)["model"] for run in (compiled, eager))
    assert sorted(first) == sorted(second)  # no "_orig_mod." in a compiled run's checkpoint
    difference = max(float((first[k].float() - second[k].float()).abs().max()) for k in first)
    assert difference < 1e-4  # the same operations, traced: float32 rounding apart


def test_an_unknown_compile_backend_is_refused_in_one_line(tiny):
    with pytest.raises(ConfigError, match=r"compile_backend: 'no_such_backend' is not a torch.compile backend"):
        tiny.train("unknown", "optim.epochs=1", "compile=true", "compile_backend=no_such_backend")


def test_a_backend_that_fails_stops_the_run_with_one_line(tiny):
    from torch._dynamo import register_backend

    @register_backend(name="cvkd_test_broken")
    def broken(graph, example_inputs):
        raise RuntimeError("no C++ compiler here\nsecond line of a long story")

    with pytest.raises(TrainingError) as stopped:
        tiny.train("broken", "optim.epochs=1", "compile=true", "compile_backend=cvkd_test_broken")
    message = str(stopped.value)
    assert "\n" not in message
    assert message.startswith("broken: torch.compile failed (RuntimeError: no C++ compiler here); set compile=false")


def test_training_precision_is_what_autocast_computes_in():
    assert training_precision(CPU, True, "float16") == "float32"  # the default on the CPU: no autocast
    assert training_precision(CPU, True, "bfloat16") == "bfloat16"
    assert training_precision(CUDA, True, "float16") == "float16"
    assert training_precision(CUDA, False, "bfloat16") == "float32"


def test_live_teachers_run_in_the_training_precision_unless_told(tiny, teacher_run, built):
    common = ("optim.epochs=1", f"distill.teachers=[{teacher_run}:fused]", "distill.strategy=kd")
    tiny.train("bf16", *common, "amp_dtype=bfloat16")
    assert built["parts"].teachers.dtype == torch.bfloat16
    tiny.train("default", *common)
    assert built["parts"].teachers.dtype is None  # float32: amp's float16 does not run on the CPU
    tiny.train("told", *common, "amp_dtype=bfloat16", "distill.teacher_precision=float32")
    assert built["parts"].teachers.dtype is None


def test_a_test_in_bfloat16_scores_in_bfloat16(tiny):
    run = tiny.train("scored", "optim.epochs=1").run_dir
    common = dict(split="val", segments=2, crops=1, batch_size=4, workers=0, device="cpu", progress=False)
    full = evaluate_run(run, **common).scores["mv"].scores
    half = evaluate_run(run, precision="bfloat16", **common).scores["mv"].scores
    as_bf16 = torch.from_numpy(half).bfloat16().float().numpy()
    assert (half == as_bf16).all()  # every logit a bfloat16 value: the classifier ran under bfloat16 autocast
    assert not (full == torch.from_numpy(full).bfloat16().float().numpy()).all()
    assert abs(half - full).max() < 0.1 * abs(full).max()


def test_test_precision_options():
    config = load_config(RunConfig, None, [])
    assert resolve_test_precision("run", CPU, config) == "float32"
    assert resolve_test_precision("run", CUDA, config) == "float16"
    config.amp_dtype = "bfloat16"
    assert resolve_test_precision("run", CPU, config) == "bfloat16"
    with pytest.raises(ConfigError, match="--amp fp16 needs a CUDA device"):
        resolve_test_precision("float16", CPU, config)


def test_channels_last_batches_keep_their_values():
    batch = torch.randn(2, 3, 4, 5, 6)  # (B, S, C, H, W)
    moved = to_channels_last(batch)
    assert torch.equal(moved, batch)
    assert moved.flatten(0, 1).is_contiguous(memory_format=torch.channels_last)
    assert not batch.flatten(0, 1).is_contiguous(memory_format=torch.channels_last)
    assert to_channels_last(batch[0]).is_contiguous(memory_format=torch.channels_last)
