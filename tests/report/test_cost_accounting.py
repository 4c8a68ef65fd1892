"""Tests of the cost profiler: parameters, MACs, latency and the per-GOP / per-video accounting."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from cvkd.report.cost_accounting import (
    CostReport,
    StreamCosts,
    compare_costs,
    cost_report,
    count_macs,
    count_parameters,
    macs_per_gop_frame,
    macs_per_sample,
    macs_per_video,
    measure_latency,
    profile_streams,
)

# ImageNet (1000-class, 3-channel) figures at 224x224 (docs/method.md, "The system" and "Cost accounting").
RESNET18_GMACS = 1.814
RESNET152_GMACS = 11.514
RESNET18_PARAMS = 11_689_512
RESNET152_PARAMS = 60_192_808
IMAGE = (1, 3, 224, 224)


def test_conv2d_macs_match_hand_formula():
    conv = nn.Conv2d(3, 8, kernel_size=3, stride=2, padding=1)
    # Hout = Wout = floor((17 + 2*1 - 3) / 2) + 1 = 9
    assert count_macs(conv, torch.zeros(1, 3, 17, 17)) == 8 * 3 * 3 * 3 * 9 * 9


def test_grouped_conv_macs_match_hand_formula():
    conv = nn.Conv2d(4, 8, kernel_size=3, groups=2, bias=False)
    # each output channel sees Cin / groups = 2 input channels; output 6x6
    assert count_macs(conv, torch.zeros(1, 4, 8, 8)) == 8 * 2 * 3 * 3 * 6 * 6


def test_linear_macs_match_hand_formula():
    linear = nn.Linear(20, 7)
    assert count_macs(linear, torch.zeros(1, 20)) == 20 * 7
    assert count_macs(linear, torch.zeros(5, 20)) == 5 * 20 * 7


def test_parameter_count_by_hand():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
    # conv 4*3*3*3 + 4 = 112, batch norm 4 + 4 = 8, linear 4*2 + 2 = 10
    assert count_parameters(model) == 130
    model[0].requires_grad_(False)
    assert count_parameters(model) == 130
    assert count_parameters(model, trainable_only=True) == 18


def test_shared_parameters_count_once():
    linear = nn.Linear(3, 3)
    assert count_parameters(nn.Sequential(linear, linear)) == 12


def test_count_macs_restores_each_training_flag():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout())
    model.train()
    model[1].eval()  # e.g. a frozen batch norm inside a training model
    count_macs(model, torch.zeros(2, 3, 8, 8))
    assert [m.training for m in model.modules()] == [True, True, False, True]
    assert model[1].running_mean.abs().sum() == 0  # ran in eval mode: statistics untouched


def test_resnet18_gmacs_match_published_figure():
    model = torchvision.models.resnet18(weights=None)
    assert count_macs(model, torch.zeros(IMAGE)) / 1e9 == pytest.approx(RESNET18_GMACS, rel=0.005)


def test_gop_weighted_accounting_by_hand():
    macs = StreamCosts(iframe=10, mv=1, residual=1)
    assert macs_per_sample(macs) == 12
    assert macs_per_gop_frame(macs, gop=12) == pytest.approx((10 + 11 * 2) / 12)
    assert macs_per_gop_frame(macs) == pytest.approx(32 / 12)
    assert macs_per_gop_frame(macs, gop=1) == 10
    assert macs_per_video(macs, segments=25, crops=10) == 25 * 10 * 12
    assert macs_per_video(macs, segments=3, crops=1) == 36


def test_cost_report_and_comparison_on_made_up_numbers():
    teacher = cost_report(StreamCosts(60, 10, 10), StreamCosts(10, 1, 1), gop=12, segments=25, crops=10)
    student = cost_report(StreamCosts(10, 10, 10), StreamCosts(4, 1, 1), gop=12, segments=25, crops=10)
    assert teacher.total_params == 80
    assert student.macs_per_gop_frame == pytest.approx((4 + 22) / 12)
    ratios = compare_costs(teacher, student)
    assert ratios["params"] == pytest.approx(80 / 30)
    assert ratios["macs_per_sample"] == pytest.approx(12 / 6)
    assert ratios["macs_per_gop_frame"] == pytest.approx(32 / 26)
    assert ratios["macs_per_video"] == pytest.approx(3000 / 1500)


class PerSegmentNet(nn.Module):
    """Takes (B, S, C, H, W), runs a conv on every frame."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x.flatten(0, 1))


def test_profile_streams_reports_per_frame_macs():
    conv_macs = 4 * 2 * 3 * 3 * 8 * 8  # one 8x8 frame through the conv
    shapes = {"mv": (2, 3, 2, 8, 8)}  # 2 clips x 3 segments = 6 frames
    report = profile_streams({"mv": PerSegmentNet()}, shapes, gop=4, segments=5, crops=2)
    assert report.macs == StreamCosts(0, conv_macs, 0)
    assert report.params == StreamCosts(0, 4 * 2 * 9 + 4, 0)
    assert report.macs_per_gop_frame == pytest.approx(3 * conv_macs / 4)
    assert report.macs_per_video == 5 * 2 * conv_macs


def test_profile_streams_rejects_unknown_stream_and_missing_shape():
    with pytest.raises(ValueError, match="optical_flow"):
        profile_streams({"optical_flow": nn.Identity()}, {"optical_flow": (1, 2, 8, 8)})
    with pytest.raises(ValueError, match="no input shape.*residual"):
        profile_streams({"residual": nn.Identity()}, {})


def resnet_stream(depth: int, in_channels: int = 3, classes: int = 101) -> nn.Module:
    """A CoViAR stream backbone: torchvision ResNet with a `classes`-way head and `in_channels` inputs."""
    model = getattr(torchvision.models, f"resnet{depth}")(weights=None)
    model.fc = nn.Linear(model.fc.in_features, classes)
    if in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return model


@pytest.fixture(scope="module")
def paper_reports() -> dict[str, CostReport]:
    """CoViAR teacher (ResNet-152 I-frame) and the student (ResNet-18 I-frame), MV/residual ResNet-18s shared."""
    mv, residual = resnet_stream(18, in_channels=2), resnet_stream(18)
    shapes = {"iframe": IMAGE, "mv": (1, 2, 224, 224), "residual": IMAGE}
    teacher = profile_streams({"iframe": resnet_stream(152), "mv": mv, "residual": residual}, shapes)
    student = profile_streams({"iframe": resnet_stream(18), "mv": mv, "residual": residual}, shapes)
    return {"CoViAR teacher": teacher, "student": student}


def test_paper_parameter_counts_and_ratio(paper_reports):
    teacher, student = paper_reports["CoViAR teacher"], paper_reports["student"]
    head_change = lambda features: features * 101 + 101 - (features * 1000 + 1000)  # noqa: E731
    r18 = RESNET18_PARAMS + head_change(512)
    mv = r18 - 64 * 7 * 7  # conv1 sees 2 channels instead of 3
    r152 = RESNET152_PARAMS + head_change(2048)
    assert teacher.params == StreamCosts(r152, mv, r18)
    assert student.params == StreamCosts(r18, mv, r18)
    assert round(teacher.total_params / 1e6, 2) == 80.80
    assert round(student.total_params / 1e6, 2) == 33.68
    assert round(compare_costs(teacher, student)["params"], 2) == 2.40


def test_paper_macs_and_gop_weighted_ratio(paper_reports):
    teacher, student = paper_reports["CoViAR teacher"], paper_reports["student"]
    head_saving = lambda features: features * (1000 - 101)  # noqa: E731
    conv1_saving = 64 * 7 * 7 * 112 * 112  # one input channel fewer in the MV conv1
    # the one ResNet-152 count of this file: its 101-class head gives it back to the ImageNet figure
    assert (teacher.macs.iframe + head_saving(2048)) / 1e9 == pytest.approx(RESNET152_GMACS, rel=0.005)
    r18 = RESNET18_GMACS * 1e9 - head_saving(512)
    mv = r18 - conv1_saving
    assert student.macs.iframe == pytest.approx(r18, rel=0.005)
    assert teacher.macs.mv == student.macs.mv == pytest.approx(mv, rel=0.005)
    expected_teacher = (RESNET152_GMACS * 1e9 - head_saving(2048) + 11 * (mv + r18)) / 12
    assert teacher.macs_per_gop_frame == pytest.approx(expected_teacher, rel=0.005)
    assert round(compare_costs(teacher, student)["macs_per_gop_frame"], 2) == 1.23
    assert teacher.macs_per_video == 250 * teacher.macs_per_sample


def test_paper_models_parameters_in_millions(paper_reports):
    teacher, student = paper_reports["CoViAR teacher"], paper_reports["student"]
    assert f"{teacher.total_params / 1e6:.2f}" == "80.80"
    assert f"{student.total_params / 1e6:.2f}" == "33.68"
    assert f"{teacher.params.iframe / 1e6:.2f}" == "58.35"
    assert (teacher.gop, teacher.segments, teacher.crops) == (12, 25, 10)


def test_latency_result_fields():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    model.train()
    result = measure_latency(model, torch.zeros(4, 3, 16, 16), warmup=1, repeats=5)
    assert result.median_s > 0 and result.p90_s > 0 and result.samples_per_s > 0
    assert result.median_s <= result.p90_s
    assert result.batch_size == 4 and result.repeats == 5
    assert result.num_threads == torch.get_num_threads() >= 1
    assert model.training


def test_latency_rejects_no_repeats():
    with pytest.raises(ValueError, match="repeats"):
        measure_latency(nn.Identity(), torch.zeros(1), repeats=0)
