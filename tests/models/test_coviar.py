"""CoViAR ensemble: parameter counts of the paper's teacher and student, 2:1:1 fusion, errors, export."""

from __future__ import annotations

import io

import pytest
import torch

from cvkd.errors import ConfigError
from cvkd.models import CoViAR, PositionalCoViAR, StreamNet, build_coviar, count_parameters

SMALL = {"iframe": "shufflenet_v2_x0_5", "mv": "shufflenet_v2_x0_5", "residual": "mobilenet_v3_small"}


def test_teacher_and_student_have_the_papers_parameter_counts():
    # C = 101. I-frame ResNet-152: 60,192,808 - (2048*1000 + 1000) + (2048*101 + 101) = 58,350,757
    #          residual ResNet-18: 11,689,512 - (512*1000 + 1000) + (512*101 + 101) + BN(3) 6 = 11,228,331
    #          MV ResNet-18:       11,228,325 - one input channel of conv1 (64*7*7 = 3,136) + BN(2) 4 = 11,225,193
    # teacher: 58,350,757 + 11,228,331 + 11,225,193 = 80,804,281 (80.80 M)
    # student (I-frame ResNet-18, 11,228,325): 11,228,325 + 11,228,331 + 11,225,193 = 33,681,849 (33.68 M)
    teacher = build_coviar({"iframe": "resnet152", "mv": "resnet18", "residual": "resnet18"}, 101)
    assert count_parameters(teacher.streams["iframe"]) == 58_350_757
    assert count_parameters(teacher.streams["residual"]) == 11_228_331
    assert count_parameters(teacher.streams["mv"]) == 11_225_193
    assert count_parameters(teacher) == 80_804_281
    student = CoViAR(
        {
            "iframe": StreamNet("iframe", "resnet18", 101),
            "mv": teacher.streams["mv"],
            "residual": teacher.streams["residual"],
        }
    )
    assert count_parameters(student) == 33_681_849
    assert round(80_804_281 / 33_681_849, 2) == 2.40


def sample_for(batch: int = 2, segments: int = 2, size: int = 32) -> dict[str, torch.Tensor]:
    return {
        "iframe": torch.randn(batch, segments, 3, size, size),
        "mv": torch.randn(batch, segments, 2, size, size),
        "residual": torch.randn(batch, segments, 3, size, size),
        "label": torch.tensor([0, 1]),
    }


def test_fusion_is_two_iframe_plus_mv_plus_residual():
    model = build_coviar(SMALL, 5).eval()
    assert model.modalities == ("iframe", "mv", "residual")
    assert model.fusion_weights == {"iframe": 2.0, "mv": 1.0, "residual": 1.0}
    sample = sample_for()
    with torch.no_grad():
        streams = model.forward_streams(sample)
        fused = model(sample)
        positional = model.forward_tuple(sample["iframe"], sample["mv"], sample["residual"])
        alone = model.streams["mv"](sample["mv"])
    assert set(streams) == {"iframe", "mv", "residual"}
    assert all(logits.shape == (2, 5) for logits in streams.values())
    assert torch.allclose(streams["mv"], alone)
    by_hand = 2 * streams["iframe"] + streams["mv"] + streams["residual"]
    assert torch.allclose(fused, by_hand, atol=1e-6)
    assert torch.allclose(positional, by_hand, atol=1e-6)


def test_custom_weights_and_single_streams():
    streams = {"iframe": StreamNet("iframe", "shufflenet_v2_x0_5", 4), "mv": StreamNet("mv", "shufflenet_v2_x0_5", 4)}
    model = CoViAR(streams, weights={"iframe": 0.0, "mv": 3.0}).eval()
    sample = sample_for()
    with torch.no_grad():
        assert torch.allclose(model(sample), 3 * streams["mv"](sample["mv"]), atol=1e-6)
    only_mv = build_coviar({"mv": "shufflenet_v2_x0_5"}, 4)
    assert only_mv.fusion_weights == {"mv": 1.0}
    assert only_mv.eval()(sample).shape == (2, 4)


def test_inconsistent_ensembles_are_refused():
    iframe = StreamNet("iframe", "shufflenet_v2_x0_5", 4)
    with pytest.raises(ConfigError, match="num_classes"):
        CoViAR({"iframe": iframe, "mv": StreamNet("mv", "shufflenet_v2_x0_5", 5)})
    with pytest.raises(ConfigError, match="'mv'.*'iframe'"):
        CoViAR({"mv": iframe})
    with pytest.raises(ConfigError, match="fusion weights"):
        CoViAR({"iframe": iframe}, weights={"iframe": 2.0, "mv": 1.0})
    with pytest.raises(ConfigError, match="finite"):
        CoViAR({"iframe": iframe}, weights={"iframe": float("nan")})
    with pytest.raises(ConfigError):
        CoViAR({})
    with pytest.raises(ConfigError, match="resnet19"):
        build_coviar({"iframe": "resnet19"}, 4)
    with pytest.raises(ConfigError, match="pretrained"):
        build_coviar({"iframe": "shufflenet_v2_x0_5"}, 4, pretrained={"mv": None})


def test_sample_missing_a_stream_is_refused():
    model = build_coviar(SMALL, 4)
    sample = sample_for()
    del sample["residual"]
    with pytest.raises(ValueError, match="residual"):  # a programming error, not a user's setting
        model(sample)
    with pytest.raises(ValueError, match="3 inputs"):
        model.forward_tuple(sample["iframe"])


def test_pretrained_per_stream(tmp_path):
    from torchvision.models import shufflenet_v2_x0_5

    state = shufflenet_v2_x0_5(weights=None).state_dict()
    path = tmp_path / "shuffle.pth"
    torch.save(state, path)
    model = build_coviar(SMALL, 4, pretrained={"iframe": path})
    assert torch.equal(model.streams["iframe"].first_conv.weight, state["conv1.0.weight"])
    assert not torch.equal(model.streams["mv"].first_conv.weight[:, 0], state["conv1.0.weight"].mean(dim=1))


@pytest.mark.filterwarnings("ignore")
def test_onnx_export_matches_torch():
    onnx = pytest.importorskip("onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    model = build_coviar(SMALL, 4).eval()
    sample = sample_for(batch=1)
    inputs = tuple(sample[key] for key in model.modalities)
    buffer = io.BytesIO()
    torch.onnx.export(PositionalCoViAR(model), inputs, buffer, input_names=list(model.modalities), dynamo=False)
    onnx.checker.check_model(onnx.load_from_string(buffer.getvalue()))
    session = onnxruntime.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    (exported,) = session.run(None, {key: sample[key].numpy() for key in model.modalities})
    assert not model.training  # the export left the model in eval mode
    with torch.no_grad():
        expected = model(sample)
    assert torch.allclose(torch.from_numpy(exported), expected, atol=1e-4)
