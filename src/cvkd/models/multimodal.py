"""A shared-trunk student: per-modality stems, norms and heads around one set of trunk weights every stream runs.

Each stream keeps its own stem (the input BatchNorm of MV and residual, the first convolution with 3, 2 or 3 input
channels), its own classifier (so each stream's logits exist, to be distilled from that stream's teacher) and its own
normalisation layers; every other convolution and linear layer of the backbone is one module shared by all the
streams that name the same backbone. The norms stay per modality because an I-frame, a motion field and a residual
have very different activation statistics: one BatchNorm would keep running statistics of their mixture and, at test
time, normalise each modality with statistics that are not its own (training normalises each stream's batch by its
own statistics).

The model is a CoViAR (`streams`, `forward_streams`, `fuse`, `forward_tuple`, `fusion_weights`): training,
evaluation, export and profiling treat it as one. `parameters()` yields a shared layer once; its compute is counted
per stream pass, as for separate streams, because every pass runs it.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from torch import nn

from cvkd.errors import ConfigError
from cvkd.models.coviar import CoViAR
from cvkd.models.registry import replace_module
from cvkd.models.streams import StreamNet

SHARED_LAYERS = (nn.Conv2d, nn.Linear)
"""Layer types a shared trunk shares (every one of the backbone's except its first convolution); norms are not."""


def trunk_layers(stream: StreamNet) -> dict[str, nn.Module]:
    """The layers of `stream`'s backbone that a shared trunk shares, by dotted path inside the backbone."""
    return {
        name: module
        for name, module in stream.backbone.named_modules()
        if isinstance(module, SHARED_LAYERS) and name != stream.spec.first_conv
    }


def tie_trunks(streams: Mapping[str, StreamNet]) -> dict[str, tuple[str, ...]]:
    """Make streams that name the same backbone run one trunk: the first of them (sorted) lends its layers to the rest.

    Returns backbone name -> the modalities sharing its trunk (only backbones that two or more streams name).
    """
    groups: dict[str, list[str]] = {}
    for modality in sorted(streams):
        groups.setdefault(streams[modality].backbone_name, []).append(modality)
    shared = {backbone: tuple(members) for backbone, members in groups.items() if len(members) > 1}
    for members in shared.values():
        owner = trunk_layers(streams[members[0]])
        for modality in members[1:]:
            for path, layer in owner.items():
                replace_module(streams[modality].backbone, path, layer)
    return shared


class SharedTrunkCoViAR(CoViAR):
    """A CoViAR whose streams of the same backbone share every layer but their stem, their norms and their classifier.

    `trunk_groups` maps each shared backbone to the modalities that run it. With one backbone for all three
    modalities this is one small network that reads I-frame, MV and residual.
    """

    def __init__(self, streams: Mapping[str, StreamNet], weights: Mapping[str, float] | None = None) -> None:
        super().__init__(streams, weights)
        self.trunk_groups = tie_trunks(self.streams)
        if not self.trunk_groups:
            names = {m: s.backbone_name for m, s in self.streams.items()}
            raise ConfigError(f"a shared trunk needs two or more streams of one backbone, got {names}")

    def sharing_streams(self) -> tuple[str, ...]:
        """Modalities whose stream shares its trunk with another stream."""
        return tuple(sorted(m for members in self.trunk_groups.values() for m in members))


def share_trunk(model: CoViAR) -> SharedTrunkCoViAR:
    """`model`'s streams and fusion weights as a SharedTrunkCoViAR (the first stream of each backbone keeps its trunk)."""
    return SharedTrunkCoViAR(dict(model.streams), model.fusion_weights)


def check_whole_stream_options(model: SharedTrunkCoViAR, frozen: Iterable[str], init: Iterable[str]) -> None:
    """Refuse `model.frozen` / `model.init` on a stream that shares its trunk: both act on whole streams.

    Freezing one such stream would freeze the trunk of every stream sharing it; copying a donor stream into it would
    overwrite their trunk too.
    """
    sharing = set(model.sharing_streams())
    for key, named in (("model.frozen", frozen), ("model.init", init)):
        clash = sorted(sharing & set(named))
        if clash:
            raise ConfigError(f"{key} names {clash}, which share their trunk (model.trunk: shared); "
                              "a whole-stream option would act on every stream sharing it")
