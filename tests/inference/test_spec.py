"""InferenceSpec: ONNX metadata round trip, and which encode settings a dataset folder implies."""

from __future__ import annotations

import json

import pytest

from cvkd.codec.encode import EncodeSettings
from cvkd.data.transforms import Rendering
from cvkd.errors import CvkdError, DatasetError
from cvkd.inference.spec import InferenceSpec, dataset_encode_settings

SPEC = InferenceSpec(
    class_names=("jump, high", "run \"fast\"", "wave"),  # separators and quotes must survive the metadata
    modalities=("iframe", "mv", "residual"),
    crop_size=96,
    segments=3,
    accumulate=False,
    encode=EncodeSettings(gop=8, width=128, height=96, q=3),
    rendering=Rendering(mv_resize="coviar", iframe_jitter=True, outside="keep"),  # every switch off its default
)


def test_metadata_round_trip_keeps_every_field():
    metadata = SPEC.to_metadata()
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    assert json.loads(metadata["class_names"]) == list(SPEC.class_names)
    assert InferenceSpec.from_metadata(metadata, "model.onnx") == SPEC


def test_metadata_without_rendering_switches_reads_as_cvkd_defaults_and_bad_switches_are_refused():
    older = {key: value for key, value in SPEC.to_metadata().items() if key != "rendering"}
    assert InferenceSpec.from_metadata(older, "old.onnx").rendering == Rendering()
    damaged = {**SPEC.to_metadata(), "rendering": json.dumps({"outside": "wrap"})}
    with pytest.raises(CvkdError, match=r"^m\.onnx: damaged cvkd metadata .*outside must be one of clamp, keep"):
        InferenceSpec.from_metadata(damaged, "m.onnx")


def test_metadata_of_a_foreign_model_is_one_clear_error():
    with pytest.raises(CvkdError, match=r"^other\.onnx: not an ONNX model exported by `cvkd export`"):
        InferenceSpec.from_metadata({"producer": "someone"}, "other.onnx")
    damaged = {**SPEC.to_metadata(), "crop_size": "big"}
    with pytest.raises(CvkdError, match=r"^m\.onnx: damaged cvkd metadata"):
        InferenceSpec.from_metadata(damaged, "m.onnx")


def test_encode_settings_from_synth_manifest_then_prepare_report_else_defaults(tmp_path):
    assert dataset_encode_settings(tmp_path) == EncodeSettings(gop=12, width=340, height=256, q=1)  # CoViAR's
    assert dataset_encode_settings("") == EncodeSettings(gop=12, width=340, height=256, q=1)
    report = {"source": "folder", "settings": {"gop": 6, "width": 160, "height": 120, "q": 2}}
    (tmp_path / "prepare_report.json").write_text(json.dumps(report))
    assert dataset_encode_settings(tmp_path) == EncodeSettings(gop=6, width=160, height=120, q=2)
    manifest = {"settings": {"classes": 3, "width": 112, "height": 80, "frames": 36, "q": 5, "gop": 12, "fps": 25}}
    (tmp_path / "synth.json").write_text(json.dumps(manifest))
    assert dataset_encode_settings(tmp_path) == EncodeSettings(gop=12, width=112, height=80, q=5)


def test_broken_manifest_is_a_dataset_error_naming_it(tmp_path):
    (tmp_path / "synth.json").write_text("{not json")
    with pytest.raises(DatasetError, match="synth.json: cannot read the encode settings"):
        dataset_encode_settings(tmp_path)
