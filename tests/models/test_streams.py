"""StreamNet: every backbone x modality builds and trains, parameter counts, segment consensus, groups, weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from cvkd.errors import CheckpointError, ConfigError
from cvkd.models import MODALITIES, StreamNet, available_backbones, count_parameters

NUM_CLASSES = 7

# name -> (parameters of the plain torchvision model as torchvision's docs list them, penultimate feature dimension,
#          out_channels * k * k of the first conv = the parameters one input channel of it holds; no conv has a bias)
TORCHVISION = {
    "resnet18": (11_689_512, 512, 64 * 7 * 7),
    "resnet34": (21_797_672, 512, 64 * 7 * 7),
    "resnet50": (25_557_032, 2048, 64 * 7 * 7),
    "resnet101": (44_549_160, 2048, 64 * 7 * 7),
    "resnet152": (60_192_808, 2048, 64 * 7 * 7),
    "mobilenet_v2": (3_504_872, 1280, 32 * 3 * 3),
    "mobilenet_v3_small": (2_542_856, 1024, 16 * 3 * 3),
    "mobilenet_v3_large": (5_483_032, 1280, 16 * 3 * 3),
    "shufflenet_v2_x0_5": (1_366_792, 1024, 24 * 3 * 3),
    "shufflenet_v2_x1_0": (2_278_604, 1024, 24 * 3 * 3),
    "shufflenet_v2_x1_5": (3_503_624, 1024, 24 * 3 * 3),
    "shufflenet_v2_x2_0": (7_393_996, 2048, 24 * 3 * 3),
    "efficientnet_b0": (5_288_548, 1280, 32 * 3 * 3),
    "efficientnet_b1": (7_794_184, 1280, 32 * 3 * 3),
    "efficientnet_b2": (9_109_994, 1408, 32 * 3 * 3),
    "efficientnet_b3": (12_233_232, 1536, 40 * 3 * 3),
}


def compact_cnn_parameters(width: int) -> int:
    """cvkd's compact residual CNN with a 1000-way head, counted layer by layer."""
    count = 3 * width * 9 + 2 * width  # stem conv 3x3 + BN
    count += 2 * (width * width * 9 + 2 * width)  # stage 1: two 3x3 conv + BN, identity shortcut
    channels = width
    for _ in range(3):  # stages 2-4: width doubles, 1x1 projection shortcut + BN
        out = 2 * channels
        count += channels * out * 9 + 2 * out + out * out * 9 + 2 * out + channels * out + 2 * out
        channels = out
    return count + channels * 1000 + 1000


TORCHVISION.update(
    {name: (compact_cnn_parameters(width), 8 * width, width * 3 * 3)
     for name, width in (("cnn_micro", 12), ("cnn_tiny", 16), ("cnn_small", 32), ("cnn_medium", 64))}
)


def expected_stream_parameters(backbone: str, modality: str, num_classes: int) -> int:
    """Documented count, minus the 1000-way head, plus the new head, plus the modality's input changes."""
    documented, features, one_input_channel = TORCHVISION[backbone]
    count = documented - (features * 1000 + 1000) + (features * num_classes + num_classes)
    if modality == "mv":
        count += -one_input_channel + 2 * 2  # a 2-channel first conv; BatchNorm2d(2): weight + bias
    if modality == "residual":
        count += 2 * 3  # BatchNorm2d(3)
    return count


def test_every_registered_backbone_has_documented_numbers():
    assert sorted(TORCHVISION) == available_backbones()


@pytest.mark.parametrize("backbone", sorted(TORCHVISION))
def test_backbone_builds_for_every_modality_runs_and_trains(backbone, make_clip):
    _, features, _ = TORCHVISION[backbone]
    for modality in MODALITIES:
        stream = StreamNet(modality, backbone, NUM_CLASSES)
        assert (stream.modality, stream.backbone_name, stream.num_classes) == (modality, backbone, NUM_CLASSES)
        assert stream.feature_dim == features
        assert count_parameters(stream) == expected_stream_parameters(backbone, modality, NUM_CLASSES)
        assert not any(isinstance(module, nn.Dropout) for module in stream.modules())  # head dropout removed
        stream.eval()
        with torch.no_grad():
            logits, pooled = stream.forward_with_features(make_clip(modality))
        assert logits.shape == (2, NUM_CLASSES) and pooled.shape == (2, features)
        assert torch.isfinite(logits).all()
        if modality == "mv":
            mv_stream = stream
    mv_stream.train()
    mv_stream(make_clip("mv")).logsumexp(dim=1).sum().backward()
    no_grad = [name for name, p in mv_stream.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert no_grad == []
    assert mv_stream.first_conv.in_channels == 2 and mv_stream.first_conv.weight.grad.abs().sum() > 0
    assert mv_stream.input_norm.weight.grad.abs().sum() > 0


def test_rgb_alias_is_a_plain_three_channel_stream(make_clip):
    stream = StreamNet("rgb", "resnet18", NUM_CLASSES)
    assert count_parameters(stream) == expected_stream_parameters("resnet18", "iframe", NUM_CLASSES)
    assert isinstance(stream.input_norm, nn.Identity)
    assert stream.eval()(make_clip("rgb")).shape == (2, NUM_CLASSES)


@pytest.mark.parametrize("modality", ["iframe", "mv"])
def test_logits_and_features_are_means_over_segments(modality, make_clip):
    stream = StreamNet(modality, "resnet18", NUM_CLASSES).eval()
    frames = make_clip(modality, batch=2, segments=3)
    with torch.no_grad():
        per_segment = [stream.forward_with_features(frames[:, s]) for s in range(3)]
        logits, features = stream.forward_with_features(frames)
        repeated = stream(frames[:, :1].expand(-1, 4, -1, -1, -1))
    assert torch.allclose(logits, sum(lg for lg, _ in per_segment) / 3, atol=1e-5)
    assert torch.allclose(features, sum(ft for _, ft in per_segment) / 3, atol=1e-5)
    assert torch.allclose(repeated, per_segment[0][0], atol=1e-5)


def test_wrong_input_shape_is_refused():
    stream = StreamNet("mv", "shufflenet_v2_x0_5", NUM_CLASSES)
    with pytest.raises(ValueError, match="mv"):
        stream(torch.randn(2, 2, 3, 32, 32))
    with pytest.raises(ValueError):
        stream(torch.randn(2, 32, 32))


def test_dropout_sits_before_the_classifier():
    stream = StreamNet("iframe", "shufflenet_v2_x0_5", NUM_CLASSES, dropout=0.5)
    assert isinstance(stream.dropout, nn.Dropout) and stream.dropout.p == 0.5
    for bad in (-0.1, 1.0):
        with pytest.raises(ConfigError, match="dropout"):
            StreamNet("iframe", "shufflenet_v2_x0_5", NUM_CLASSES, dropout=bad)
    with pytest.raises(ConfigError, match="num_classes"):
        StreamNet("iframe", "shufflenet_v2_x0_5", 0)


def group_of_each_parameter(stream: StreamNet, groups: list[dict]) -> dict[str, dict]:
    by_id = {}
    for group in groups:
        for param in group["params"]:
            assert id(param) not in by_id, "a parameter appears in two groups"
            by_id[id(param)] = group
    return {name: by_id[id(param)] for name, param in stream.named_parameters()}


@pytest.mark.parametrize(
    ("modality", "backbone", "first_layer_prefixes"),
    [
        ("iframe", "resnet18", ()),
        ("mv", "resnet18", ("input_norm.", "backbone.conv1.", "backbone.bn1.")),
        ("residual", "mobilenet_v3_small", ("input_norm.", "backbone.features.0.0.", "backbone.features.0.1.")),
    ],
)
def test_param_groups_follow_coviar_multipliers(modality, backbone, first_layer_prefixes):
    stream = StreamNet(modality, backbone, NUM_CLASSES)
    groups = stream.param_groups(lr=0.5, weight_decay=1e-4)
    owner = group_of_each_parameter(stream, groups)
    assert sum(p.numel() for g in groups for p in g["params"]) == count_parameters(stream)
    for group in groups:
        assert {"name", "params", "lr", "lr_mult", "weight_decay"} <= set(group)
        assert group["lr"] == pytest.approx(0.5 * group["lr_mult"])
    for name, group in owner.items():
        if name.startswith("classifier."):
            expected = 1.0
        elif first_layer_prefixes and name.startswith(first_layer_prefixes):
            expected = 0.1
        else:
            expected = 0.01
        assert group["lr_mult"] == expected, name
        # in these networks every 1-D parameter is a bias or a normalisation weight: those, and only those, skip decay
        assert group["weight_decay"] == (0.0 if stream.get_parameter(name).dim() == 1 else 1e-4), name
    if first_layer_prefixes:  # input BN (2), first conv (1, no bias), its BN (2)
        assert sum(1 for name in owner if name.startswith(first_layer_prefixes)) == 5
    torch.optim.Adam(groups, eps=1e-3)  # torch accepts the groups (extra keys included)


def test_iframe_first_conv_trains_with_the_backbone():
    stream = StreamNet("iframe", "resnet18", NUM_CLASSES)
    owner = group_of_each_parameter(stream, stream.param_groups(lr=1.0, weight_decay=0.0))
    assert owner["backbone.conv1.weight"]["lr_mult"] == 0.01
    assert {group["name"] for group in owner.values()} == {
        "classifier",
        "classifier_no_decay",
        "backbone",
        "backbone_no_decay",
    }


@pytest.fixture
def resnet18_weights(tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    from torchvision.models import resnet18

    state = resnet18(weights=None).state_dict()
    path = tmp_path / "resnet18-local.pth"
    torch.save(state, path)
    return path, state


def test_local_weights_load_and_mv_conv_starts_from_rgb_mean(resnet18_weights):
    path, state = resnet18_weights
    rgb_kernel = state["conv1.weight"]
    mean_kernel = (rgb_kernel[:, 0] + rgb_kernel[:, 1] + rgb_kernel[:, 2]) / 3
    mv = StreamNet("mv", "resnet18", NUM_CLASSES, pretrained=path)
    assert torch.allclose(mv.first_conv.weight[:, 0], mean_kernel, atol=1e-6)
    assert torch.allclose(mv.first_conv.weight[:, 1], mean_kernel, atol=1e-6)
    assert torch.equal(mv.backbone.layer3[1].conv2.weight, state["layer3.1.conv2.weight"])
    iframe = StreamNet("iframe", "resnet18", NUM_CLASSES, pretrained=str(path))
    assert torch.equal(iframe.first_conv.weight, rgb_kernel)
    assert torch.equal(iframe.backbone.bn1.running_var, state["bn1.running_var"])


def test_garbage_weights_file_is_named(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a torch file")
    with pytest.raises(CheckpointError, match="garbage.pth") as caught:
        StreamNet("iframe", "resnet18", NUM_CLASSES, pretrained=garbage)
    assert "\n" not in str(caught.value)
    with pytest.raises(CheckpointError, match="absent.pth"):
        StreamNet("mv", "resnet18", NUM_CLASSES, pretrained=tmp_path / "absent.pth")
    tensor_file = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), tensor_file)
    with pytest.raises(CheckpointError, match="tensor.pth"):
        StreamNet("iframe", "resnet18", NUM_CLASSES, pretrained=tensor_file)


def test_weights_of_another_backbone_are_refused(resnet18_weights):
    path, _ = resnet18_weights
    with pytest.raises(CheckpointError, match="resnet18-local.pth.*resnet34.*missing") as caught:
        StreamNet("iframe", "resnet34", NUM_CLASSES, pretrained=path)
    assert "\n" not in str(caught.value)
    with pytest.raises(CheckpointError, match="wrong shape"):
        StreamNet("iframe", "shufflenet_v2_x0_5", NUM_CLASSES, pretrained=path)


def test_failed_imagenet_download_says_to_pass_a_local_file(monkeypatch):
    import cvkd.models.weights as weights

    def offline(name, weights=None):
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(weights, "build_backbone", offline)
    with pytest.raises(CheckpointError, match="resnet18.*local .pth"):
        StreamNet("iframe", "resnet18", NUM_CLASSES, pretrained="imagenet")
