"""The shared-trunk student: one cnn_tiny trunk behind per-modality stems, norms and heads; trained, exported, profiled."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from cvkd.cli import main
from cvkd.config import load_config
from cvkd.data.synthetic import generate_synthetic
from cvkd.engine.objective import StreamObjective, build_optimizer
from cvkd.engine.train import train
from cvkd.errors import ConfigError
from cvkd.inference.onnx_export import export_run
from cvkd.models import count_parameters
from cvkd.models.multimodal import SharedTrunkCoViAR, trunk_layers
from cvkd.report.model_profile import profile_model
from cvkd.runs.folder import build_model, load_run
from cvkd.runs.schema import RunConfig

SHARED = ("model.streams={iframe: cnn_tiny, mv: cnn_tiny, residual: cnn_tiny}", "model.trunk=shared")
WIDTH = 16  # cnn_tiny's first-stage width; stages 16, 32, 64, 128
CLASSES = 8


def shared_config(*extra: str) -> RunConfig:
    """A run config of the all-cnn_tiny shared-trunk student, then `extra` overrides."""
    return load_config(RunConfig, None, [*SHARED, *extra])


def hand_parameter_count(classes: int) -> int:
    """Parameters of the shared-trunk cnn_tiny student, layer by layer (3x3 convs without bias, BN weight + bias)."""
    stages = [(16, 16), (16, 32), (32, 64), (64, 128)]  # (in, out) per stage; stages 2-4 add a 1x1 projection
    trunk_convs = sum(9 * cin * cout + 9 * cout * cout + (cin * cout if cin != cout else 0) for cin, cout in stages)
    assert trunk_convs == 305_664
    trunk_norms = sum(2 * cout * (2 if cin == cout else 3) for cin, cout in stages)  # one set per modality
    stems = {"iframe": 9 * 3 * WIDTH + 2 * WIDTH, "mv": 2 * 2 + 9 * 2 * WIDTH + 2 * WIDTH,
             "residual": 2 * 3 + 9 * 3 * WIDTH + 2 * WIDTH}  # input BN (MV, residual), conv, its BN
    head = 128 * classes + classes
    return trunk_convs + 3 * trunk_norms + sum(stems.values()) + 3 * head


def hand_macs_per_pass(in_channels: int, crop: int, classes: int) -> int:
    """MACs of one frame through stem, trunk and head at `crop` (stride 2 in the stem and stages 2-4)."""
    side = crop // 2
    macs = side * side * 9 * in_channels * WIDTH  # stem
    macs += 2 * side * side * 9 * WIDTH * WIDTH  # stage 1: two 3x3 convs, no projection
    for cin in (16, 32, 64):
        side //= 2
        cout = 2 * cin
        macs += side * side * (9 * cin * cout + 9 * cout * cout + cin * cout)
    return macs + 128 * classes


def test_streams_share_every_trunk_layer_and_keep_their_stem_norms_and_head():
    model = build_model(shared_config(), CLASSES)
    assert isinstance(model, SharedTrunkCoViAR)
    assert model.trunk_groups == {"cnn_tiny": ("iframe", "mv", "residual")}
    iframe, mv, residual = (model.streams[m] for m in ("iframe", "mv", "residual"))
    layers = trunk_layers(iframe)
    assert len(layers) == 11  # 2 convs per stage, 3 projections
    for path, layer in layers.items():
        assert mv.backbone.get_submodule(path) is layer and residual.backbone.get_submodule(path) is layer
    assert mv.first_conv.in_channels == 2 and iframe.first_conv.in_channels == residual.first_conv.in_channels == 3
    assert len({id(s.first_conv) for s in (iframe, mv, residual)}) == 3
    assert isinstance(iframe.input_norm, nn.Identity) and isinstance(mv.input_norm, nn.BatchNorm2d)
    norms = [{id(m) for m in s.backbone.modules() if isinstance(m, nn.BatchNorm2d)} for s in (iframe, mv, residual)]
    assert not (norms[0] & norms[1]) and not (norms[1] & norms[2])
    assert len({id(s.classifier) for s in (iframe, mv, residual)}) == 3
    assert count_parameters(model) == hand_parameter_count(CLASSES) == 314_242


def test_forward_gives_each_stream_and_the_2_1_1_fusion():
    model = build_model(shared_config(), CLASSES).eval()
    sample = {m: torch.randn(2, 3, c, 32, 32) for m, c in (("iframe", 3), ("mv", 2), ("residual", 3))}
    with torch.no_grad():
        streams = model.forward_streams(sample)
        fused = model(sample)
        positional = model.forward_tuple(*(sample[m] for m in model.modalities))
    assert {k: tuple(v.shape) for k, v in streams.items()} == {m: (2, CLASSES) for m in ("iframe", "mv", "residual")}
    torch.testing.assert_close(fused, 2 * streams["iframe"] + streams["mv"] + streams["residual"])
    torch.testing.assert_close(positional, fused)


def test_optimiser_holds_each_shared_parameter_once():
    config = shared_config("optim.layer_lr=uniform")
    model = build_model(config, CLASSES)
    optimizer = build_optimizer(config, StreamObjective(model, model.modalities, {}))
    placed = [p for group in optimizer.param_groups for p in group["params"]]
    assert len(placed) == len({id(p) for p in placed}) == len(list(model.parameters()))


@pytest.mark.parametrize("extra, message", [
    (("model.frozen=[mv]",), "model.frozen"),
    (("model.init={mv: runs/teacher}",), "model.init"),
    (("model.streams={iframe: cnn_small, mv: cnn_tiny}",), "two or more streams of one backbone"),
])
def test_whole_stream_options_and_nothing_to_share_are_refused(extra, message):
    with pytest.raises(ConfigError, match=message):
        build_model(shared_config(*extra), CLASSES)


def test_mixed_backbones_share_only_within_one_backbone():
    model = build_model(shared_config("model.streams={iframe: cnn_small, mv: cnn_tiny, residual: cnn_tiny}"), CLASSES)
    assert model.trunk_groups == {"cnn_tiny": ("mv", "residual")}
    assert model.sharing_streams() == ("mv", "residual")


def test_profile_counts_the_trunk_once_in_parameters_and_in_every_pass_in_macs():
    crop = 32
    profile = profile_model(build_model(shared_config(), CLASSES), "shared", crop=crop, latency=False)
    costs = profile.costs
    assert costs.total_params == hand_parameter_count(CLASSES)
    assert costs.params.mv == 2 * 2 + 9 * 2 * WIDTH + 2 * WIDTH + 1408 + 128 * CLASSES + CLASSES  # own layers only
    macs = {m: hand_macs_per_pass(c, crop, CLASSES) for m, c in (("iframe", 3), ("mv", 2), ("residual", 3))}
    assert macs["iframe"] == 4_043_776 and macs["mv"] == 4_006_912
    assert (costs.macs.iframe, costs.macs.mv, costs.macs.residual) == (macs["iframe"], macs["mv"], macs["residual"])
    assert costs.macs_per_gop_frame == pytest.approx((macs["iframe"] + 11 * (macs["mv"] + macs["residual"])) / 12)
    assert profile.backbones["mv"] == "cnn_tiny (shared trunk)"


def test_cvkd_profile_of_the_recipe_beats_the_teacher_4x_in_parameters_and_2x_in_gop_weighted_macs(capsys):
    recipes = Path(__file__).resolve().parents[2] / "src" / "cvkd" / "recipes" / "synthetic"
    code = main(["profile", str(recipes / "student_shared.yaml"), "--teacher", str(recipes / "teachers.yaml"),
                 "--classes", str(CLASSES), "--crop", "96", "--no-latency", "--json"])
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    teacher, student = payload["models"]
    assert student["params"]["total"] == hand_parameter_count(CLASSES)
    gop_macs = (hand_macs_per_pass(3, 96, CLASSES) + 11 * (hand_macs_per_pass(2, 96, CLASSES)
                                                            + hand_macs_per_pass(3, 96, CLASSES))) / 12
    assert student["macs_per_gop_frame"] == pytest.approx(gop_macs)
    ratios = payload["ratios_teacher_over_student"]
    assert ratios["params"] >= 4 and ratios["macs_per_gop_frame"] >= 2


# ---------------------------------------------------------------- through the trainer and the exporter


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 1-epoch cnn_tiny teacher, then the shared-trunk student: each stream from its teacher stream, fused from fused."""
    root = tmp_path_factory.mktemp("shared_trunk")
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CVKD_CACHE_DIR", str(root / "cache"))
        generate_synthetic(root / "data", classes=3, videos_per_class=4, size=(64, 64), frames=13, seed=0, workers=1,
                           progress=False)
        common = [f"output_dir={root / 'runs'}", f"data.root={root / 'data'}", "device=cpu", "optim.layer_lr=uniform",
                  "optim.epochs=1", "data.crop_size=48", "data.workers=0", "data.segments=2", "data.val_segments=2",
                  "data.batch_size=4"]
        teacher = train(load_config(RunConfig, None, [*common, "name=teacher", SHARED[0]]), progress=False).run_dir
        student_config = load_config(RunConfig, None, [
            *common, "name=student", *SHARED, f"distill.teachers=[{teacher}, {teacher}:fused]", "distill.strategy=kd",
            "distill.stream_teachers={iframe: [iframe], mv: [mv], residual: [residual], fused: [fused]}",
        ])
        initial = build_model(student_config, 3).state_dict()
        student = train(student_config, progress=False).run_dir
    return root, student, initial


def test_one_distilled_epoch_trains_the_shared_trunk_and_reloads_it_shared(trained):
    _, student, initial = trained
    loaded = load_run(student)
    model = loaded.model
    assert isinstance(model, SharedTrunkCoViAR)
    path, layer = next(iter(trunk_layers(model.streams["iframe"]).items()))
    assert model.streams["residual"].backbone.get_submodule(path) is layer
    key = f"streams.iframe.backbone.{path}.weight"
    assert not torch.equal(model.state_dict()[key], initial[key])  # the shared trunk learned
    log = [json.loads(line) for line in (student / "log.jsonl").read_text().splitlines()]
    assert {"train_acc_iframe", "train_acc_mv", "train_acc_residual", "train_acc_fused", "val_top1_fused"} <= set(log[0])
    for output in ("iframe", "mv", "residual", "fused"):  # each output learnt from its own teacher only
        assert log[0][f"teacher_weights_{output}"] == {f"teacher:{output}": pytest.approx(1.0)}


def test_onnx_export_of_the_shared_trunk_student_matches_pytorch(trained):
    root, student, _ = trained
    report = export_run(student, root / "student.onnx", segments=2, repeats=1)
    assert report.check is not None and report.check.max_abs_diff < 1e-3
    assert report.spec.modalities == ("iframe", "mv", "residual")
