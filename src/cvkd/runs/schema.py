"""The configuration of one run (`cvkd train` / `cvkd distill`), as dataclasses loaded from YAML by `cvkd.config`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # the transforms import torch: `cvkd --help` and `cvkd info` must not
    from cvkd.data.transforms import Rendering


@dataclass
class DataConfig:
    """Where the videos are and how samples are drawn from them."""

    root: str = ""  # a cvkd dataset folder: classes.txt and <split>.csv (written by `cvkd synth` / `cvkd prepare`)
    train_split: str = "train"  # the list trained on (<root>/<split>.csv)
    val_split: str = "val"  # the list that chooses best.pt (absent: no validation)
    test_split: str = "test"  # the list `cvkd test` scores by default
    segments: int = 3  # TSN segments per training sample
    val_segments: int = 5  # cheaper validation protocol: centre frames, one centre crop
    crop_size: int = 224  # side of the square crop every stream sees, pixels
    batch_size: int = 32  # global batch of one optimiser step, split over processes (and optim.grad_accumulation)
    workers: int = 2  # data-loader processes per training process
    accumulate: bool = True  # accumulate MV/residual back to the I-frame (CoViAR)
    # A video that cannot be read during training: "substitute" warns once (naming it) and uses the next readable
    # video's sample; "raise" stops. Evaluation always raises: a test score must cover every listed video.
    bad_videos: Literal["raise", "substitute"] = "substitute"
    # CoViAR parity switches (docs/comparison.md): the defaults are cvkd's; the configs/ucf101 and configs/hmdb51
    # recipes set CoViAR's. mv_resize "coviar": clip the MV field to +-20 px, then resize it without rescaling.
    mv_resize: Literal["rescale", "coviar"] = "rescale"
    iframe_jitter: bool = False  # CoViAR's HLS colour jitter of I-frames in training
    iframe_jitter_test: bool = False  # the same jitter when validating and testing (CoViAR's test.py jitters too)
    # Crop scales of a training sample (one crop serves every modality it holds): "shared" = the scales every modality
    # of the sample allows (an I-frame student taught by MV/residual teachers loses 0.66); "student" = those of the
    # trained streams only (the teachers score the same crop; CoViAR's I-frame scales 1 .875 .75 .66 for an I-frame
    # student)
    crop_scales: Literal["shared", "student"] = "shared"
    # A motion source outside the frame (accumulated MV and residual): "clamp" to the border (cvkd; the codec extends
    # edges the same way) or "keep" the pixel's previous mapping (CoViAR's loader)
    outside: Literal["clamp", "keep"] = "clamp"
    # Horizontal mirroring: of half the training samples, and of five of the ten test crops. Turn it off when classes
    # are directional (a swipe to the left mirrored is a swipe to the right), or give the pairs a mirror swaps in
    # flip_label_map ({swipe_left: swipe_right}; the reverse is implied): a mirrored training sample then carries the
    # mapped label, and the ten-crop test takes its five mirrored crops unmirrored.
    flip: bool = True
    flip_label_map: dict[str, str] = field(default_factory=dict)  # class -> the class its mirror image shows
    # What a segment divides: "index" = the decoded pictures (display order), "time" = the time they span, each
    # segment taking the picture shown then; for sparse timestamps or variable frame rate (`cvkd info` says which)
    sampling: Literal["index", "time"] = "index"
    allow_empty_classes: bool = False  # train although some class has no training video on disk (else refused)
    # Where training samples become network inputs: "worker" = in the loader workers (float32 tensors); "device" = the
    # workers send the view's raw crop window (uint8 pictures, int16 MV and residuals, every random draw made) and the
    # training device resizes, mirrors, jitters and maps it, batched (the same inputs: docs/benchmarks.md, "Rendering
    # on the device"). Teachers' own renderings, the teacher cache and validation follow it (cvkd test: workers)
    render: Literal["worker", "device"] = "worker"

    def rendering(self, train: bool) -> Rendering:
        """The parity switches that shape inputs, for training (`train`) or for validation and testing."""
        from cvkd.data.transforms import Rendering

        mirror = self.flip if train else self.flip and not self.flip_label_map
        return Rendering(self.mv_resize, self.iframe_jitter if train else self.iframe_jitter_test, self.outside,
                         mirror, self.sampling)

    def flip_labels(self, classes: tuple[str, ...]) -> dict[int, int]:
        """flip_label_map as label indices, both ways; ConfigError naming an unknown or self-mapped class."""
        from cvkd.errors import ConfigError

        pairs: dict[int, int] = {}
        for left, right in self.flip_label_map.items():
            for name in (left, right):
                if name not in classes:
                    raise ConfigError(f"data.flip_label_map: {name!r} is not a class of the dataset")
            if left == right:
                raise ConfigError(f"data.flip_label_map: {left!r} is mapped to itself")
            a, b = classes.index(left), classes.index(right)
            for source, target in ((a, b), (b, a)):
                if pairs.get(source, target) != target:
                    raise ConfigError(f"data.flip_label_map: {classes[source]!r} is mapped to two classes")
                pairs[source] = target
        return pairs


@dataclass
class ModelConfig:
    """The network: one stream per modality, fused late."""

    streams: dict[str, str] = field(default_factory=lambda: {"iframe": "resnet18"})  # modality -> backbone
    pretrained: str | None = None  # None, "imagenet" or a local torchvision state_dict
    dropout: float = 0.0  # dropout before each stream's classifier
    fusion_weights: dict[str, float] = field(default_factory=dict)  # stream -> weight; unnamed streams keep 2:1:1
    # choose the fusion weights at every validation by cvkd fuse --search's grid on the validation scores; the chosen
    # weights go into that epoch's checkpoints (test, predict and export use them) and the log (fusion_weights)
    fusion_search: bool = False
    init: dict[str, str] = field(default_factory=dict)  # modality -> run dir or checkpoint to copy that stream from
    frozen: list[str] = field(default_factory=list)  # streams kept as initialised (e.g. reused teacher streams)
    # "shared": streams naming the same backbone run one trunk (own stem, norms and classifier each; one small network
    # that reads every modality when all name one backbone); "separate": one network per stream (CoViAR)
    trunk: Literal["separate", "shared"] = "separate"
    # the mv stream's 2-channel first conv: "averaged" = the ImageNet RGB kernel averaged over its channels (with
    # pretrained weights; torchvision's init otherwise); "random" = PyTorch's default Conv2d init (CoViAR)
    mv_first_conv: Literal["averaged", "random"] = "averaged"


@dataclass
class OptimConfig:
    """CoViAR's recipe: Adam, per-layer learning-rate multipliers, step decay."""

    lr: float = 1e-3  # Adam's base learning rate (times the layer multipliers)
    epochs: int = 10
    val_every: int = 1  # validate (and pick best.pt) after every N-th epoch and after the last one
    # write last.pt (with log.jsonl and summary.json) after every N-th epoch, after an improving validation and after
    # the last epoch; a killed run resumes from the last one written. best.pt is written only after a validation
    # that improved (without a validation split: after the last epoch)
    checkpoint_every: int = 1
    # also keep each last.pt written as epoch-NNNN.pt in the run folder, only the newest K of them (older ones are
    # deleted once the new one is on disk); 0 keeps none
    keep_last: int = 0
    lr_steps: list[int] = field(default_factory=list)  # epochs at which the learning rate is multiplied by lr_decay
    lr_decay: float = 0.1  # multiplier applied at each of lr_steps
    weight_decay: float = 1e-4  # Adam's L2 weight decay
    eps: float = 1e-3  # Adam's epsilon (CoViAR: 1e-3)
    # "coviar": classifier x1, first conv / input BN x0.1 (MV, residual), rest x0.01 (for ImageNet-initialised nets);
    # "uniform": every layer at lr (for networks trained from scratch, e.g. on the synthetic benchmark offline).
    layer_lr: Literal["coviar", "uniform"] = "coviar"
    # stream -> its own base learning rate (CoViAR trains each stream at its own; e.g. {iframe: 3e-4, mv: 1e-2}): every
    # multiplier of that stream applies to it instead of lr; unnamed streams keep lr. The schedule is shared.
    stream_lr: dict[str, float] = field(default_factory=dict)
    # decay the weights of BatchNorm (and other norm) layers too, sparing only biases (CoViAR); default: norms undecayed
    norm_weight_decay: bool = False
    # micro-batches per optimiser step: each process runs data.batch_size / (processes x grad_accumulation) clips at a
    # time and the optimiser steps once per global batch of data.batch_size, on any number of processes (a global
    # batch that does not divide so is refused); BatchNorm normalises each micro-batch on its own
    grad_accumulation: int = 1
    # the learning rate for a global batch other than the one lr was tuned for (timm's rule): "linear" = lr x
    # data.batch_size / lr_reference_batch, "sqrt" = lr x its square root, "none" = lr as given; stream_lr too
    lr_scaling: Literal["none", "linear", "sqrt"] = "none"
    lr_reference_batch: int = 0  # the global batch lr (and stream_lr) was tuned for; needed by linear and sqrt


@dataclass
class DistillConfig:
    """Knowledge distillation: which teachers, which strategy, and whether to cache teacher outputs."""

    teachers: list[str] = field(default_factory=list)  # RUN, RUN:stream or RUN:fused
    strategy: str = "none"  # none, kd or a multi-teacher strategy (docs/strategies.md)
    params: dict[str, Any] = field(default_factory=dict)  # strategy hyper-parameters (temperature, alpha, ...)
    cache: bool = False  # precompute teacher logits for a fixed set of views per video
    cache_views: int = 4  # views per video in the cache
    # precision of live teachers' forward pass; "auto" = the training's (amp_dtype under amp on CUDA, bfloat16 on the
    # CPU with amp_dtype bfloat16, float32 otherwise)
    teacher_precision: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    # a fused teacher (RUN:fused) teaches its 2:1:1 sum divided by the sum of its fusion weights (False: the raw sum)
    normalise_fused: bool = False
    # student output (a stream, or "fused": adds a term on its 2:1:1 fused logits) -> the teachers it learns from
    # (`mv`, `fused`, `RUN:mv`); an output not named learns from every teacher (cvkd.engine.routes)
    stream_teachers: dict[str, list[str]] = field(default_factory=dict)
    # multi-teacher feature hints beside the logit strategy: hint_weight * mean over hinting teachers of the MSE between
    # the student's spatial map (through a learned adapter per teacher) and the teacher's map; 0 turns them off
    hint_weight: float = 0.0
    hint_teachers: list[str] = field(default_factory=list)  # who hints (names as in stream_teachers); empty: every teacher
    hint_kernel: int = 1  # the adapters' conv: 1 (1x1) or 3 (3x3)
    # with distill.cache and hints or a feature term: teacher maps are cached too (float32), average-pooled to this
    # size x size (0: each teacher's own size)
    cache_map_size: int = 0
    # a strategy's warm-up taken from a longer published schedule (DKD: 20 of mdistiller's 240 epochs) keeps that
    # share of this run's optim.epochs (at least 1) unless distill.params sets it (the demo's short runs)
    scale_warmup: bool = False


@dataclass
class LogConfig:
    """What a run logs beside log.jsonl (one row per epoch, always written)."""

    # also write log.jsonl's scalars (step = epoch) as TensorBoard events in RUN/tensorboard/, when log.jsonl is
    # written; needs the optional extra: pip install 'cvkd[tensorboard]'
    tensorboard: bool = False


@dataclass
class RunConfig:
    """Everything one training or distillation run needs; written next to its outputs as config.yaml."""

    name: str = "run"  # the run folder's name under output_dir
    output_dir: str = "runs"  # where run folders are created
    seed: int = 0  # initial weights, sampled views and shuffling follow it
    device: str = "auto"  # auto, cpu, cuda, cuda:1, ...
    amp: bool = True  # mixed precision: float16 on CUDA (with a GradScaler); bfloat16 on CUDA or CPU with amp_dtype
    amp_dtype: Literal["float16", "bfloat16"] = "float16"  # bfloat16 needs no GradScaler (Ampere and newer, CPUs)
    channels_last: bool = True  # on CUDA: the student, the live teachers and every input batch in channels-last memory
    # torch.compile the trained streams (each stream's forward; a feature-map term runs them uncompiled) with this
    # backend: inductor (needs a C++ compiler on the CPU, Triton on CUDA), aot_eager, eager, ...
    compile: bool = False
    compile_backend: str = "inductor"
    cudnn_benchmark: bool = True  # let cuDNN pick the fastest kernels for the fixed input sizes (CUDA only)
    # Steps whose loss is not finite are skipped (the weights stay as they were) and counted in the log; this many in a
    # row stop the run with one line (a float16 overflow is rare and passes; a diverged run does not)
    max_nonfinite_steps: int = 20
    log_every: int = 20  # batches between progress-bar updates of the loss
    # under torchrun: how long a process waits at a collective (a barrier, a gradient all-reduce) for the others
    # before the job fails, in minutes. It must exceed the longest work one process does while another waits: rank
    # 0's checkpoint writes, the uneven end of a sharded pass (the teacher cache: a batch per view), loading teachers
    # (docs/recipes.md, "The teacher cache as its own job"). torch's default is 10 min for NCCL, 30 for gloo
    dist_timeout_minutes: float = 30.0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    log: LogConfig = field(default_factory=LogConfig)
