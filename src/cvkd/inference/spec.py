"""What prediction needs besides the weights: class names, input order, sampling, the video encoding the model saw."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

from cvkd import __version__
from cvkd.codec.encode import EncodeSettings
from cvkd.data.lists import PREPARE_REPORT_FILE as PREPARE_REPORT
from cvkd.data.transforms import Rendering
from cvkd.data.synthetic import MANIFEST as SYNTH_MANIFEST
from cvkd.runs.folder import LoadedRun
from cvkd.errors import DatasetError, ModelFileError

METADATA_FORMAT = "cvkd-onnx-1"


@dataclass(frozen=True)
class InferenceSpec:
    """Everything that turns a video file into model inputs and the model's output into labels."""

    class_names: tuple[str, ...]
    modalities: tuple[str, ...]  # input order of the model (CoViAR.modalities)
    crop_size: int
    segments: int  # segments the model is scored with by default
    accumulate: bool  # accumulated MV / residual (CoViAR)
    encode: EncodeSettings  # how videos are re-encoded before sampling
    rendering: Rendering = Rendering()  # the run's test-time parity switches (MV resize, jitter, outside rule)

    def to_metadata(self) -> dict[str, str]:
        """String key/value pairs for an ONNX file's metadata_props."""
        return {
            "cvkd.format": METADATA_FORMAT,
            "cvkd.version": __version__,
            "class_names": json.dumps(list(self.class_names)),
            "modalities": json.dumps(list(self.modalities)),
            "crop_size": str(self.crop_size),
            "segments": str(self.segments),
            "accumulate": json.dumps(self.accumulate),
            "encode_settings": json.dumps(asdict(self.encode), sort_keys=True),
            "rendering": json.dumps(asdict(self.rendering), sort_keys=True),
        }

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str], source: str | os.PathLike) -> "InferenceSpec":
        """Inverse of `to_metadata`; a file without cvkd's metadata is a one-line ModelFileError naming `source`."""
        if metadata.get("cvkd.format") != METADATA_FORMAT:
            raise ModelFileError(f"{os.fspath(source)}: not an ONNX model exported by `cvkd export` (no cvkd metadata)")
        try:
            return cls(
                class_names=tuple(json.loads(metadata["class_names"])),
                modalities=tuple(json.loads(metadata["modalities"])),
                crop_size=int(metadata["crop_size"]),
                segments=int(metadata["segments"]),
                accumulate=bool(json.loads(metadata["accumulate"])),
                encode=EncodeSettings(**json.loads(metadata["encode_settings"])),
                rendering=Rendering(**json.loads(metadata.get("rendering", "{}"))),  # older exports: defaults
            )
        except (KeyError, ValueError, TypeError) as error:
            raise ModelFileError(f"{os.fspath(source)}: damaged cvkd metadata ({type(error).__name__}: {error})") from None


def spec_from_run(run: LoadedRun) -> InferenceSpec:
    """The inference spec of a trained run: its classes and inputs, its validation segments, its dataset's encoding."""
    data = run.config.data
    return InferenceSpec(
        class_names=tuple(run.class_names),
        modalities=tuple(run.model.modalities),
        crop_size=int(data.crop_size),
        segments=int(data.val_segments),
        accumulate=bool(data.accumulate),
        encode=dataset_encode_settings(data.root),
        rendering=data.rendering(train=False),
    )


def dataset_encode_settings(root: str | os.PathLike | None) -> EncodeSettings:
    """How a cvkd dataset folder's videos were encoded (synth.json or prepare_report.json), else CoViAR's defaults."""
    if not root:
        return EncodeSettings()
    for name in (SYNTH_MANIFEST, PREPARE_REPORT):
        path = Path(root) / name
        if path.is_file():
            return _settings_from_manifest(path)
    return EncodeSettings()


def _settings_from_manifest(path: Path) -> EncodeSettings:
    """The `settings` block of a dataset manifest (gop, width, height, q) as EncodeSettings."""
    try:
        settings: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))["settings"]
        return EncodeSettings(gop=int(settings["gop"]), width=int(settings["width"]),
                              height=int(settings["height"]), q=int(settings["q"]))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DatasetError(f"{path}: cannot read the encode settings ({type(error).__name__}: {error})") from None
