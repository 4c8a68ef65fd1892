"""The paper-scale compact students (configs/<dataset>/student_compact.yaml, student_mobile.yaml) against the CoViAR
teacher: every stream's figures from torchvision's published ImageNet ones, and the >= 4x / >= 2x ratios pinned."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from torchvision import models

from cvkd.cli import main

REPO = Path(__file__).resolve().parents[2]
DATASETS = {"ucf101": 101, "hmdb51": 51}
# The CoViAR teacher per 224x224 frame (ImageNet heads), quoted in docs/method.md: ResNet-18 and ResNet-152 GMACs.
RESNET18_GMACS = 1.814
RESNET152_GMACS = 11.514
MV_SIDE = 112  # every first conv here has stride 2: a 224 input gives a 112x112 output
# recipe -> (I-frame, MV and residual backbone); (params ratio, GOP-weighted GMACs ratio) per dataset, 2 decimals
RECIPES = {
    "student_compact": (("resnet18", "shufflenet_v2_x1_5"), {"ucf101": (4.93, 6.16), "hmdb51": (4.96, 6.16)}),
    "student_mobile": (("efficientnet_b0", "mobilenet_v3_small"), {"ucf101": (10.95, 32.11), "hmdb51": (11.18, 32.13)}),
}
FEATURES = {"resnet18": 512, "resnet152": 2048, "shufflenet_v2_x1_5": 1024, "efficientnet_b0": 1280,
            "mobilenet_v3_small": 1024}  # width of each network's last Linear
FIRST_CONV = {"resnet18": 64 * 7 * 7, "shufflenet_v2_x1_5": 24 * 3 * 3, "mobilenet_v3_small": 16 * 3 * 3}  # out*k*k


def imagenet_figures(backbone: str) -> tuple[int, float]:
    """torchvision's published parameter count and GMACs (`_ops`) of the 1000-class network at 224x224."""
    meta = models.get_model_weights(backbone).DEFAULT.meta
    return meta["num_params"], meta["_ops"]


def expected_stream(backbone: str, modality: str, classes: int) -> tuple[int, float]:
    """Parameters and MACs of one stream: the ImageNet network with a `classes`-way head, an input BatchNorm
    (2 values per channel) for MV and residual, and a 2-channel first conv for MV (one input channel fewer)."""
    params, gmacs = imagenet_figures(backbone)
    features = FEATURES[backbone]
    params += (features + 1) * (classes - 1000)
    macs = gmacs * 1e9 + features * (classes - 1000)
    if modality != "iframe":
        params += 2 * (2 if modality == "mv" else 3)
    if modality == "mv":
        params -= FIRST_CONV[backbone]
        macs -= FIRST_CONV[backbone] * MV_SIDE * MV_SIDE
    return params, macs


@pytest.fixture(scope="module")
def profiles() -> dict[tuple[str, str], dict]:
    """`cvkd profile RECIPE --teacher coviar_teacher.yaml --json` for every dataset and recipe."""
    out = {}
    for dataset, classes in DATASETS.items():
        for recipe in RECIPES:
            capture = _run_profile(REPO / f"configs/{dataset}/{recipe}.yaml",
                                   REPO / f"configs/{dataset}/coviar_teacher.yaml", classes)
            out[dataset, recipe] = capture
    return out


def _run_profile(student: Path, teacher: Path, classes: int) -> dict:
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(["profile", str(student), "--teacher", str(teacher), "--classes", str(classes),
                     "--no-latency", "--json"]) == 0
    return json.loads(buffer.getvalue())


@pytest.mark.parametrize("dataset", DATASETS)
def test_teacher_streams_match_published_resnet_figures(profiles, dataset):
    classes = DATASETS[dataset]
    teacher = profiles[dataset, "student_compact"]["models"][0]
    head = lambda features: features * (1000 - classes)  # noqa: E731  MACs the ImageNet head has and ours lacks
    assert (teacher["macs_per_frame"]["iframe"] + head(2048)) / 1e9 == pytest.approx(RESNET152_GMACS, rel=0.002)
    assert (teacher["macs_per_frame"]["residual"] + head(512)) / 1e9 == pytest.approx(RESNET18_GMACS, rel=0.002)
    for modality, backbone in (("iframe", "resnet152"), ("mv", "resnet18"), ("residual", "resnet18")):
        params, macs = expected_stream(backbone, modality, classes)
        assert teacher["params"][modality] == params
        assert teacher["macs_per_frame"][modality] == pytest.approx(macs, rel=0.002)


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("recipe", RECIPES)
def test_every_student_stream_matches_published_figures(profiles, dataset, recipe):
    (iframe, small), _ = RECIPES[recipe]
    student = profiles[dataset, recipe]["models"][1]
    assert student["backbones"] == {"iframe": iframe, "mv": small, "residual": small}
    for modality, backbone in (("iframe", iframe), ("mv", small), ("residual", small)):
        params, macs = expected_stream(backbone, modality, DATASETS[dataset])
        assert student["params"][modality] == params
        # torchvision rounds `_ops` to 3 decimals: 0.057 GMACs is known to +-0.9 %
        assert student["macs_per_frame"][modality] == pytest.approx(macs, rel=0.01)


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("recipe", RECIPES)
def test_compact_students_are_4x_smaller_and_2x_cheaper(profiles, dataset, recipe):
    params_ratio, macs_ratio = RECIPES[recipe][1][dataset]
    data = profiles[dataset, recipe]
    teacher, student = data["models"]
    ratios = data["ratios_teacher_over_student"]
    gop = lambda m: (m["iframe"] + 11 * (m["mv"] + m["residual"])) / 12  # noqa: E731  per GOP of 12 frames
    assert ratios["params"] == pytest.approx(teacher["params"]["total"] / student["params"]["total"])
    assert ratios["macs_per_gop_frame"] == pytest.approx(gop(teacher["macs_per_frame"]) / gop(student["macs_per_frame"]))
    assert round(ratios["params"], 2) == params_ratio >= 4
    assert round(ratios["macs_per_gop_frame"], 2) == macs_ratio >= 2


def test_text_output_prints_the_ratios(capsys):
    assert main(["profile", str(REPO / "configs/ucf101/student_compact.yaml"), "--teacher",
                 str(REPO / "configs/ucf101/coviar_teacher.yaml"), "--classes", "101", "--no-latency"]) == 0
    out = capsys.readouterr().out
    assert "parameters: 80.80 M / 16.39 M = 4.93x" in out
    assert "GMACs per GOP-weighted frame (GOP 12): 4.248 / 0.689 = 6.16x" in out
