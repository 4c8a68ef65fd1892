"""A run folder on disk: its config, checkpoints and log; and loading a finished run back as a model."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from cvkd.config import config_from_dict, load_config
from cvkd.runs.checkpoint import load_checkpoint, resolve_checkpoint
from cvkd.runs.schema import RunConfig
from cvkd.fileio import update_digest
from cvkd.errors import CheckpointError, ConfigError, CvkdError
from cvkd.modalities import resolve_fusion_weights
from cvkd.models.coviar import CoViAR, build_coviar
from cvkd.models.multimodal import check_whole_stream_options, share_trunk
from cvkd.models.weights import load_state_dict_checked

CONFIG_FILE = "config.yaml"
LOG_FILE = "log.jsonl"
SUMMARY_FILE = "summary.json"


@dataclass
class LoadedRun:
    """A trained model with what it was trained on."""

    model: CoViAR
    config: RunConfig
    class_names: tuple[str, ...]
    checkpoint: Path
    epoch: int

    @property
    def num_classes(self) -> int:
        """Number of classes the model scores."""
        return self.model.num_classes


def run_dir(config: RunConfig) -> Path:
    """The folder a run writes to: output_dir/name."""
    return Path(config.output_dir) / config.name


def build_model(config: RunConfig, num_classes: int, pretrained: bool = True) -> CoViAR:
    """The network a config describes (random or `model.pretrained` init; `model.init` is applied by the trainer).

    With `model.trunk: shared`, streams that name the same backbone share its trunk (cvkd.models.multimodal).
    """
    model_cfg = config.model
    weights = resolve_fusion_weights(
        model_cfg.streams, model_cfg.fusion_weights, key="model.fusion_weights", ignore_absent=True
    )
    model = build_coviar(
        dict(model_cfg.streams),
        num_classes,
        pretrained=model_cfg.pretrained if pretrained else None,
        weights=weights,
        dropout=model_cfg.dropout,
    )
    if model_cfg.mv_first_conv == "random":
        for stream in model.streams.values():
            stream.redraw_first_conv()
    if model_cfg.trunk == "shared":
        model = share_trunk(model)
        check_whole_stream_options(model, model_cfg.frozen, model_cfg.init)
    return model


def build_student(config: RunConfig, class_names: tuple[str, ...], device: torch.device) -> CoViAR:
    """A run's model as its training starts, on `device`: built (random or `model.pretrained`), the streams
    `model.init` names copied from other runs, those `model.frozen` names frozen."""
    model = build_model(config, len(class_names)).to(device)
    unknown = sorted(set(config.model.frozen) - set(model.modalities))
    if unknown:
        raise ConfigError(f"model.frozen names {unknown}, which are not streams of the model {list(model.modalities)}")
    for modality, source in config.model.init.items():
        if modality not in model.modalities:
            raise ConfigError(f"model.init names {modality!r}, which is not a stream of the model")
        donor = load_run(source)
        if modality not in donor.model.modalities:
            raise ConfigError(f"model.init.{modality}: {source} has no {modality} stream ({list(donor.model.modalities)})")
        if tuple(donor.class_names) != class_names:
            raise ConfigError(f"model.init.{modality}: {source} was trained on other classes")
        donor_stream = donor.model.streams[modality].state_dict()
        load_state_dict_checked(model.streams[modality], donor_stream, donor.checkpoint, "checkpoint")
    for modality in config.model.frozen:
        model.streams[modality].requires_grad_(False)
    return model


def frozen_rendering_notes(config: RunConfig) -> list[str]:
    """One line per frozen stream copied from a run trained with other MV switches than this run renders with (its
    inputs are this run's rendering: give the run its source's data.mv_resize and data.outside)."""
    notes = []
    for modality in config.model.frozen:
        source = config.model.init.get(modality)
        saved = saved_config(source) if source else None
        if saved is None:
            continue
        own = saved.data
        if (own.mv_resize, own.outside) != (config.data.mv_resize, config.data.outside):
            notes.append(f"note: frozen stream {modality} comes from {source}, trained with data.mv_resize="
                         f"{own.mv_resize}, data.outside={own.outside}; this run feeds it {config.data.mv_resize}, "
                         f"{config.data.outside} (set this run's data.mv_resize and data.outside to match)")
    return notes


def saved_config(run_or_checkpoint: str | os.PathLike) -> RunConfig | None:
    """The config.yaml a run folder (or the folder of a checkpoint file) holds, or None when there is none readable."""
    folder = Path(run_or_checkpoint)
    folder = folder.parent if folder.suffix == ".pt" else folder
    try:
        return load_config(RunConfig, folder / CONFIG_FILE)
    except (OSError, CvkdError):
        return None


def load_run(run_or_checkpoint: str | os.PathLike, device: str | torch.device = "cpu") -> LoadedRun:
    """Load a run folder's best checkpoint (or a given checkpoint file) as an eval-mode CoViAR."""
    path = resolve_checkpoint(run_or_checkpoint)
    state = load_checkpoint(path)
    try:
        config = config_from_dict(RunConfig, state["config"], source=str(path))
        class_names = tuple(state["class_names"])
        model = build_model(config, len(class_names), pretrained=False)
    except KeyError as missing:
        raise CheckpointError(f"{path}: checkpoint lacks {missing}") from None
    except CvkdError as error:
        raise CheckpointError(f"{path}: cannot rebuild its model ({error})") from None
    load_state_dict_checked(model, state["model"], path, "checkpoint")
    model.to(device).eval()
    return LoadedRun(model, config, class_names, path, int(state.get("epoch", -1)))


def file_digest(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    update_digest(digest, path, chunk)
    return digest.hexdigest()
