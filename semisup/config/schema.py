"""The recipe schema: frozen dataclasses, one per TOML section.

Defaults live here and only here. Each field's metadata may carry a range
(``ge``, ``gt``, ``le``, ``lt``) that :mod:`semisup.config.load` enforces, and a
``doc`` string shown in error messages. A recipe is read into :class:`Recipe`;
nothing else in the package reads TOML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal


def spec(default: Any = ..., *, ge: float | None = None, gt: float | None = None,
         le: float | None = None, lt: float | None = None, doc: str = "", factory: Any = None) -> Any:
    """A dataclass field with an optional numeric range and a short description.

    ``default=...`` (and no ``factory``) makes the key required; ``factory``
    builds mutable defaults (``dict``).
    """
    meta = {"ge": ge, "gt": gt, "le": le, "lt": lt, "doc": doc}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    if default is ...:
        return field(metadata=meta)
    if isinstance(default, (list, dict, set)):
        raise TypeError("use tuples for sequence defaults (recipes are frozen)")
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class RunConfig:
    """``[run]``: naming, seeding and where the run happens."""

    name: str = spec("run", doc="prefix of the run directory runs/<name>-<timestamp>")
    seed: int = spec(0, ge=0, doc="seeds weights, sampling and augmentation: the same seed on the same machine "
                                  "and precision repeats a run exactly")
    device: str = spec("auto", doc='"auto", "cpu", "cuda" or "cuda:N"')
    precision: Literal["auto", "fp32", "bf16", "fp16"] = spec(
        "auto", doc="auto: bf16 autocast on CPUs that support it, AMP on CUDA, else fp32")
    out_dir: Path = spec(Path("runs"), doc="parent folder of run directories")
    sync_batchnorm: bool = spec(False, doc="data-parallel runs on GPUs: BatchNorm statistics over every "
                                           "process's batch (else every process takes rank 0's before each forward)")
    parallel: Literal["ddp", "fsdp"] = spec(
        "ddp", doc='under torchrun: "ddp" (every process holds the whole model; DistributedDataParallel averages '
                   'gradients) or "fsdp" (FSDP2: parameters, gradients and optimiser states sharded across the '
                   'processes, encoder block by block, for encoders too big for one GPU; no EMA teacher)')
    compile: Literal["off", "inductor", "aot_eager", "eager"] = spec(
        "off", doc='torch.compile the encoder: "inductor" fuses its kernels (on CPUs it needs a C++ compiler; the '
                   'first steps of each shape compile, minutes for a ResNet); "eager" and "aot_eager" only capture '
                   'its graphs, to find what breaks them; weights and checkpoints are the same either way')


@dataclass(frozen=True)
class DataConfig:
    """``[data]``: where the samples are, in which layout, and how frames are taken."""

    root: Path = spec(doc="dataset folder")
    format: Literal["folder", "demo", "demo-shots", "demo-moves", "movienet", "movieshots", "shards"] = spec(
        "folder", doc='"folder" (labels.csv + frames/<id>/), "demo", "demo-shots" or "demo-moves" (built at root '
                      'on first use), '
                      '"movienet" or "movieshots" (their own layouts), "shards" (`semisup data shard`; root a '
                      'folder or an object-store URL such as s3://bucket/prefix)')
    labels_file: str = spec("labels.csv", doc="folder/demo: CSV file inside root")
    split_file: str = spec("", doc='movienet: "split.csv" by default; movieshots: the official '
                                   'v1_split_trailer.json when present, else "split.csv"')
    meta_dir: str = spec("meta", doc="movienet: folder of <imdb_id>.json metadata")
    keyframes_dir: str = spec("keyframes", doc="movienet: folder of <imdb_id>/shot_NNNN_img_K.jpg")
    annotations: str = spec("v1_full_trailer.json", doc="movieshots: the annotation file")
    clips_dir: str = spec("trailer", doc="movieshots: folder of <imdb_id>/shot_<NNNN>.mp4 clips")
    image_size: int = spec(224, ge=16, le=1024, doc="square side the frames are cropped to")
    max_frames: int = spec(20, ge=1, doc="random frames per labeled sample in training")
    eval_frames: int = spec(20, ge=1, doc="evenly spaced frames per sample in evaluation")
    index: str = spec("", doc="the dataset index (`semisup data index ROOT`): folders are listed from it, not "
                              "read one by one; empty: ROOT/semisup-index.parquet when it exists, else the folders "
                              "are listed")
    shard_cache: str = spec("", doc="shards: where a remote dataset's shards are kept once downloaded (size it "
                                    "to the dataset); empty: ~/.cache/semisup/shards/<hash of the URL>")
    num_workers: int = spec(2, ge=0, doc="decoding processes per loader")
    decoder: Literal["pyav", "torchcodec"] = spec(
        "pyav", doc='reads videos: "pyav" (installed with semisup) or "torchcodec" (pip install '
                    '"semisup[torchcodec]"; needs FFmpeg\'s shared libraries, e.g. apt install ffmpeg); both seek to '
                    "the keyframe before each picked frame and return exactly that frame")
    features: str = spec("", doc="a feature cache (`semisup features`): train and evaluate from the frozen "
                                 "encoder's cached frame features instead of frames; empty: frames")
    max_unreadable: float = spec(0.2, ge=0, le=1, doc="the run stops when a larger share of the trailers of "
                                                      "a stream (labeled train, unlabeled, val, test) has no "
                                                      "readable frame; 1 = never (unless none is readable)")


@dataclass(frozen=True)
class TaskConfig:
    """``[[tasks]]``: one supervised task, its labels read from a CSV column or JSON key."""

    name: str = spec(doc="task name, used in reports")
    column: str = spec("", doc="CSV column or JSON key; defaults to the task name")
    kind: Literal["multilabel", "multiclass"] = spec(
        "multilabel", doc="multilabel: any number of labels per sample (Asymmetric Loss); "
                          "multiclass: exactly one (cross-entropy)")
    labels: tuple[str, ...] = spec((), doc="label vocabulary; empty: read from the data")
    separator: str = spec("|", doc="separates labels inside a cell")
    unknown_labels: Literal["error", "drop"] = spec(
        "error", doc="a label outside `labels` stops the run, or is dropped")
    top_labels: int = spec(0, ge=0, doc="keep only the N most frequent labels (0: all); others are dropped")
    rename: dict[str, str] = spec(factory=dict, doc='renames raw labels, e.g. {"Science Fiction" = "Sci-Fi"}; '
                                            '"" drops a label')
    aggregator: str = spec("", doc="how the task reads a trailer's frames in time order: mean, max, attention, "
                                   "gru, lstm, transformer, a plug-in or package.module:Class; "
                                   'empty: model.pooling')
    aggregator_options: Any = spec(None, doc="the aggregator's options table, e.g. {hidden = 128, "
                                             'readout = "max"} (checked against its Options)')
    label_smoothing: float = spec(0.0, ge=0.0, lt=1.0, doc="multiclass: share of the target spread over classes")
    focal_gamma: float = spec(0.0, ge=0.0, doc="multiclass: > 0 weighs each sample by (1 - p_true)^gamma (focal loss)")
    class_balance: float = spec(0.0, ge=0.0, lt=1.0, doc="multiclass: beta of class-balanced weights from the "
                                                         "labeled train counts (0 = off; 0.999 is usual)")
    logit_adjustment: float = spec(0.0, ge=0.0, doc="multiclass: tau of logit adjustment by the class prior "
                                                    "(0 = off; 1 is usual)")
    reversed_labels: dict[str, str] = spec(
        factory=dict, doc='multiclass, read in order: the class a clip of each class becomes played backwards, e.g. '
                          '{Push = "Pull", Pull = "Push", Static = "Static", Motion = "Motion"}; half the labeled '
                          "clips of the listed classes are played backwards, relabelled, so what a clip shows "
                          "cannot tell the directions apart ({} = off)")

    @property
    def csv_column(self) -> str:
        return self.column or self.name


@dataclass(frozen=True)
class ModelConfig:
    """``[model]``: the shared encoder, temporal pooling and task heads."""

    encoder: str = spec("resnet50", doc='timm model name, or a torchvision video network that reads a clip\'s '
                                         'frames together: "torchvision:r2plus1d_18", "torchvision:mc3_18" or '
                                         '"torchvision:r3d_18"')
    pretrained: bool | Path = spec(
        False, doc="false, true (timm hub) or a path to a local state dict")
    trainable_stages: int | Literal["all"] = spec(
        1, ge=0, doc='how many of the last encoder stages train: 0..N or "all"')
    pooling: Literal["mean", "max"] = spec("mean", doc="the aggregator of tasks that name none")
    head_hidden: int = spec(512, ge=1, doc="hidden width of each task head (a two-layer MLP on the trailer feature)")
    head_dropout: float = spec(0.2, ge=0.0, lt=1.0, doc="dropout before each task head's last layer")
    channels_last: bool = spec(True, doc="channels-last memory format for the encoder (faster convolutions on "
                                         "CPUs and GPUs)")
    frame_differences: bool = spec(
        False, doc="also feed each frame's difference to the previous frame of its clip, through a second "
                   "stem convolution (TSN's RGB-diff): the encoder sees motion. No measurable cost; on the "
                   "cross-source movement benchmark (docs: shot types) movement macro-F1 0.41 vs 0.33 without (1 seed)")
    temporal_shift: float = spec(
        0.0, ge=0.0, le=0.5, doc="TSM: share of channels shifted in from the previous frame (and as many from "
                                 "the next) in the residual blocks that train; 0 = off, 0.125 as in the paper. No parameters; on "
                                 "the cross-source movement benchmark macro-F1 0.37 vs 0.33 without, Pull F1 0 (1 seed)")


@dataclass(frozen=True)
class PretextConfig:
    """``[[pretext]]``: one self-supervised task on unlabeled frames.

    Keys other than the ones below are the task's own options (for
    ``sesemi``: ``transforms``); they are validated against the task's
    ``Options`` dataclass and stored in :attr:`options`.
    """

    name: str = spec(doc="registered pretext task, e.g. sesemi")
    weight: float = spec(1.0, ge=0.0, doc="loss weight in joint mode")
    lr: float = spec(0.0, ge=0.0, doc="Adam learning rate; 0 means optim.lr")
    head_hidden: int = spec(256, ge=1, doc="hidden width of the task's head")
    head_dropout: float = spec(0.0, ge=0.0, lt=1.0, doc="dropout before the head's last layer")
    frames_per_trailer: int = spec(4, ge=1, doc="random frames taken from each unlabeled trailer")
    options: Any = spec(None, doc="task-specific options (filled in by the loader)")


@dataclass(frozen=True)
class ConsistencyConfig:
    """``[[consistency]]``: one consistency objective on unlabeled clips, through the task heads
    (FixMatch, Mean Teacher, a plug-in).

    Keys other than the ones below are the method's own options (for
    ``fixmatch``: ``threshold``, ``positive``, ``negative``, ``keep``,
    ``memory``, ``momentum``, ``teacher``), validated against its ``Options``.
    """

    name: str = spec(doc="fixmatch, mean-teacher, an installed plug-in or package.module:Class")
    weight: float = spec(1.0, ge=0.0, doc="the unlabeled loss weight (lambda_u): its loss joins the supervised "
                                          "loss times this")
    start_epoch: float = spec(0.0, ge=0.0, doc="epochs of training before it starts (a supervised warm-up "
                                               "gives the teacher something to teach)")
    warmup_epochs: float = spec(0.0, ge=0.0, doc="then the weight ramps up linearly from 0 over this many epochs")
    own_optimizer: bool = spec(False, doc="separate mode: step its loss with its own Adam instead of adding it "
                                          "to the supervised loss (Adam would then undo its weight)")
    lr: float = spec(0.0, ge=0.0, doc="own_optimizer: its Adam's learning rate; 0 means optim.lr")
    frames_per_trailer: int = spec(4, ge=1, doc="frames of each unlabeled clip")
    options: Any = spec(None, doc="method-specific options (filled in by the loader)")


@dataclass(frozen=True)
class EmaConfig:
    """``[ema]``: an exponential moving average of the model's weights, the teacher of Mean
    Teacher and of FixMatch with ``teacher = "ema"`` (kept with defaults when they need it)."""

    decay: float = spec(0.999, gt=0.0, lt=1.0, doc="the EMA decay once ramped up (min(decay, 1 - 1/(step + 1)))")
    evaluate: bool = spec(True, doc="validate, keep as best.pt and evaluate the teacher's weights, as the "
                                    "papers do")


@dataclass(frozen=True)
class LossConfig:
    """``[loss]``: Asymmetric Loss for multi-label tasks (Ben-Baruch et al. 2021).

    ``reduction = "batchmean"`` sums over labels and averages over samples:
    the loss scale does not depend on the batch size, but grows with the
    number of labels. ``"mean"`` also averages over labels.
    """

    gamma_neg: float = spec(4.0, ge=0.0, doc="focusing exponent on negatives (ASL: larger ignores more easy negatives)")
    gamma_pos: float = spec(1.0, ge=0.0, doc="focusing exponent on positives")
    clip: float = spec(0.05, ge=0.0, lt=1.0, doc="probability margin shifted onto negatives")
    eps: float = spec(1e-8, gt=0.0, lt=1.0, doc="floor of the probabilities inside the logarithms")
    reduction: Literal["batchmean", "mean"] = spec(
        "batchmean", doc='"batchmean": sum over labels, mean over samples; "mean": mean over both')


@dataclass(frozen=True)
class OptimConfig:
    """``[optim]``: Adam optimisers and the learning-rate schedule.

    ``mode = "separate"``: one Adam over the task heads plus the trainable
    encoder, stepping on the labeled loss, and one Adam per pretext task over
    its head plus the trainable encoder, stepping on its loss.
    ``mode = "joint"``: one Adam over everything on the weighted sum of losses.
    """

    mode: Literal["separate", "joint"] = spec(
        "separate", doc='"separate": one Adam per objective (task heads, each pretext task); "joint": one Adam on '
                        'the weighted sum, as in the SESEMI paper')
    lr: float = spec(1e-3, gt=0.0, doc="Adam learning rate of every optimiser that names none")
    weight_decay: float = spec(0.0, ge=0.0, doc="Adam weight decay")
    schedule: Literal["constant", "cosine"] = spec(
        "cosine", doc="learning-rate schedule over the training steps, after the warm-up")
    warmup_epochs: float = spec(0.0, ge=0.0, doc="epochs of linear learning-rate warm-up from 0")
    grad_clip: float = spec(0.0, ge=0.0, doc="max gradient norm; 0 disables clipping")


@dataclass(frozen=True)
class TrainConfig:
    """``[train]``: epochs, batch sizes and checkpointing.

    An epoch is one pass over the unlabeled trailers (the labeled ones cycle);
    without pretext tasks or consistency methods it is one pass over the
    labeled trailers. ``epoch_over = "labeled"`` makes it a pass over the
    labeled trailers in every case (the unlabeled ones cycle): a run then takes
    as many labeled steps as a supervised run of the same epochs, whatever the
    size of the unlabeled pool.
    """

    epochs: int = spec(10, ge=1, doc="passes over the pool named by epoch_over")
    epoch_over: Literal["unlabeled", "labeled"] = spec(
        "unlabeled", doc="one epoch is a pass over these trailers (the other stream cycles); \"labeled\": as "
                         "many labeled steps as a supervised run of the same epochs, whatever the unlabeled pool's "
                         "size")
    labeled_batch_size: int = spec(8, ge=1, doc="labeled trailers per step")
    unlabeled_batch_size: int = spec(16, ge=1, doc="unlabeled trailers per step")
    eval_batch_size: int = spec(16, ge=1, doc="trailers per evaluation batch")
    pretext_on_labeled: bool = spec(False, doc="also feed labeled train trailers to the pretext tasks")
    balance: Literal["none", "undersample", "oversample", "repeat-factor"] = spec(
        "none", doc="re-balance the labeled stream by balance_task's classes, drawn afresh each pass: undersample "
                    "(cap classes at the median count), oversample (fill up to the largest), repeat-factor")
    balance_task: str = spec("", doc="the task to balance; empty: the first multiclass task (repeat-factor: "
                                     "the first task)")
    repeat_threshold: float = spec(0.1, gt=0.0, le=1.0, doc="repeat-factor: labels rarer than this share repeat")
    checkpoint_minutes: float = spec(10.0, gt=0.0, doc="also save last.pt inside an epoch this often")


@dataclass(frozen=True)
class PretrainConfig:
    """``[pretrain]``: contrastive pretraining of the encoder (SimCLR, with lightly)
    on unlabeled frames, before the labeled fine-tuning of the rest of the recipe.

    Two augmented views of every frame go through the encoder and a projection
    head; NT-Xent pulls the views of a frame together and pushes the other
    frames of the batch away. The encoder then fine-tunes as the recipe says.
    """

    method: Literal["simclr"] = spec(
        "simclr", doc="the pretraining method (SimCLR: lightly's projection head and NT-Xent loss)")
    epochs: int = spec(20, ge=1, doc="passes over the pretraining frames")
    batch_size: int = spec(128, ge=2, doc="frames per step (each gives two views)")
    frames_per_trailer: int = spec(4, ge=1, doc="random frames taken from each trailer per epoch")
    include_labeled: bool = spec(True, doc="also use the labeled train trailers' frames (never their labels)")
    trainable_stages: int | Literal["all", "auto"] = spec(
        "auto", ge=0, doc='"auto": the stages fine-tuning trains (model.trainable_stages)')
    temperature: float = spec(0.2, gt=0.0, doc="NT-Xent temperature")
    projection_hidden: int = spec(512, ge=1, doc="hidden width of the projection head")
    projection_dim: int = spec(128, ge=1, doc="output width of the projection head (where NT-Xent compares views)")
    lr: float = spec(1e-3, gt=0.0, doc="Adam learning rate")
    weight_decay: float = spec(1e-6, ge=0.0, doc="Adam weight decay")
    schedule: Literal["constant", "cosine"] = spec("cosine", doc="learning-rate schedule after the warm-up")
    warmup_epochs: float = spec(0.0, ge=0.0, doc="epochs of linear learning-rate warm-up from 0")
    crop_scale_min: float = spec(0.2, gt=0.0, le=1.0, doc="smallest area of the random resized crop")
    color_jitter: float = spec(0.5, ge=0.0, doc="colour jitter strength (0 turns it off)")
    grayscale: float = spec(0.2, ge=0.0, le=1.0, doc="probability of a grayscale view")
    blur: float = spec(0.5, ge=0.0, le=1.0, doc="probability of a Gaussian blur")
    knn_k: int = spec(20, ge=1, doc="neighbours of the kNN monitor (labeled train -> val)")
    checkpoint_minutes: float = spec(10.0, gt=0.0,
                                     doc="also save pretrain/checkpoints/last.pt inside an epoch this often")


@dataclass(frozen=True)
class AugmentConfig:
    """``[augment]``: training augmentation of the labeled and pretext frames (kornia,
    on the device). Evaluation never augments; SimCLR's views are set in ``[pretrain]``."""

    crop_scale_min: float = spec(0.8, gt=0.0, le=1.0, doc="smallest area of the random resized crop (1 = no crop)")
    rotation: float = spec(15.0, ge=0.0, le=180.0, doc="largest rotation in degrees (0 = none)")
    hflip: float = spec(0.5, ge=0.0, le=1.0, doc="probability of a left-right flip of labeled frames (0 for text, "
                                                 "logos or digits); pretext frames are never flipped")
    per_clip: Literal["auto", "always", "never"] = spec(
        "auto", doc="draw crop, rotation and flip once per clip for all its frames; auto: for the labeled frames "
                    "when a task's aggregator reads time order, for the pretext frames when a pretext task does")
    scene_motion: float = spec(0.0, ge=0.0, le=1.0, doc="chance that a labeled clip drawn per clip gets an object "
                                                        "moving through it while the camera holds (a patch of "
                                                        "another shot, in a straight line): motion that is not the "
                                                        "camera's, for tasks that read time; 0 = never. Cross-source movement benchmark: 0.5 with "
                                                        "synthetic moves, macro-F1 0.578 vs 0.525 without both (3 "
                                                        "seeds)")
    strong_colour: bool = spec(True, doc="consistency methods' strong view: its photometric operations (colour, "
                                         "posterize, solarize, sharpness, equalize, grayscale); false keeps only "
                                         "random erasing, for labels carried by colour (a horror grade)")


@dataclass(frozen=True)
class SyntheticMovesConfig:
    """``[synthetic_moves]``: film labeled clips of a source class (Static) again as pushes,
    pulls or pans with a virtual camera, labelled with the move's class, mixed into the
    labeled stream (see :mod:`semisup.data.synthetic`). Off unless the section is present.
    Costs a zoom of the drawn clips (decoded larger); on the cross-source movement benchmark
    (docs: shot types), with scene motion: macro-F1 0.578 vs 0.525, Push F1 0.38 vs 0.34 (3 seeds)."""

    task: str = spec(doc="the multiclass movement task whose label a move sets, e.g. movement")
    moves: dict[str, str] = spec(doc='class -> camera move (push, pull or motion), e.g. {Push = "push", '
                                     'Pull = "pull"}; a converted clip becomes one of them, drawn uniformly')
    sources: tuple[str, ...] = spec(("Static",), doc="classes of the task whose clips are filmed again")
    rate: float = spec(0.3, ge=0.0, le=1.0, doc="chance that a source clip is converted, each time it is drawn")
    zoom: tuple[float, ...] = spec((1.4, 2.0), doc="range of a push's or pull's zoom (start / end window width)")
    drift: float = spec(0.08, ge=0.0, le=0.5, doc="how far a zoom's centre drifts, a share of the frame")
    keep_labels: tuple[str, ...] = spec((), doc="other tasks whose labels a move leaves valid (e.g. genres); "
                                                "a converted clip's other labels are left out of the loss")


@dataclass(frozen=True)
class EvalConfig:
    """``[eval]``: decision rules reported at the end of a run."""

    top_k: tuple[int, ...] = spec((1, 2, 3, 4, 5), doc="k values of the top-k rule")
    threshold: float = spec(0.5, gt=0.0, lt=1.0, doc="the rounding rule's threshold")


@dataclass(frozen=True)
class Recipe:
    """A whole recipe. Sections absent from the TOML take their defaults."""

    data: DataConfig
    tasks: tuple[TaskConfig, ...]
    run: RunConfig = field(default_factory=RunConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    pretext: tuple[PretextConfig, ...] = ()
    consistency: tuple[ConsistencyConfig, ...] = ()
    ema: EmaConfig | None = None
    pretrain: PretrainConfig | None = None
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    synthetic_moves: SyntheticMovesConfig | None = None
    eval: EvalConfig = field(default_factory=EvalConfig)
