"""What a training run is set up from: its typed config, datasets, device and run folder.

Split from the loop (edgeseg.training.loop) so each stays focused; the public names are re-exported
by edgeseg.training."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from edgeseg._claims import lock_path
from edgeseg._evidence import Evidence, labelled_hint
from edgeseg._guards import check_number
from edgeseg._paths import Output, check_outputs, resolved
from edgeseg.data import Augment, AugmentConfig, DatasetView, FolderDataset, SyntheticDataset, split_indices
from edgeseg.data.transforms import DEFAULT_AUGMENT_OPS
from edgeseg.errors import InputError
from edgeseg.models.registry import ModelSpec, round_to_stride

SYNTHETIC_SIZE = (128, 128)
# auto_batch_size: aim for at least this many optimizer steps per epoch, within these batch sizes.
MIN_STEPS_PER_EPOCH = 8
MIN_AUTO_BATCH, MAX_AUTO_BATCH = 4, 16
DICE_CLASSES = ("present", "foreground", "all_foreground")
# The default class weighting: the square root of median frequency balancing, when some class is at
# least IMBALANCED times rarer than the median class (camvid-mini's 11 classes: 9x over all 123
# frames, 98x over 24 of them; thin curves on 5-10 % of the pixels: 5-10x), else none (the
# synthetic scenes: 1.5x). benchmarks/README.md has the runs: +2.2 points of val mIoU on the camvid
# frames, level on thin curves, 0.5 points lower on the synthetic scenes.
SQRT_IF_IMBALANCED = "sqrt-if-imbalanced"
IMBALANCED = 4.0
# The --class-weights names computed from the training masks, and every name the option takes
# (besides a list of numbers).
FROM_MASKS = ("auto", "sqrt", SQRT_IF_IMBALANCED)
CLASS_WEIGHT_NAMES = ("none", *FROM_MASKS)


def auto_batch_size(n_train: int, world_size: int = 1) -> int:
    """The batch size per process that gives `n_train` images at least MIN_STEPS_PER_EPOCH optimizer
    steps per epoch: the largest power of two <= n_train / (MIN_STEPS_PER_EPOCH * world_size),
    clamped to [MIN_AUTO_BATCH, MAX_AUTO_BATCH]. A fixed batch of 16 gives 24 images one step an
    epoch; below 4, batch norm's statistics of 2 images swing the model from epoch to epoch (small
    sets get fewer than 8 steps rather than that). benchmarks/README.md has the runs that chose
    these numbers."""
    per_step = n_train / (MIN_STEPS_PER_EPOCH * max(1, world_size))
    batch = MIN_AUTO_BATCH
    while batch * 2 <= min(per_step, MAX_AUTO_BATCH):
        batch *= 2
    return batch


@dataclass
class TrainConfig:
    """Every training option; `edgeseg train` flags map one to one onto these fields."""

    data: str | None = None  # dataset folder; None = the built-in synthetic dataset
    val_data: str | None = None  # None = a seeded split of `data`
    classes: int | None = None  # None = classes.txt or the largest mask id + 1
    img_size: tuple[int, int] | None = None  # (width, height); None = the data's own size
    epochs: int = 8
    batch_size: int | None = None  # None = auto_batch_size(number of training images)
    lr: float = 3e-3
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.05
    # After the warm-up the lr stays at its peak, then a cosine takes it to lr * lr_floor over the
    # last decay_fraction of the steps (1.0 = every step after the warm-up): a short run is still
    # learning until the decay starts, and ends on settled weights (benchmarks/README.md).
    lr_floor: float = 0.0
    decay_fraction: float = 0.25
    # Exponential moving average of the weights (and batch-norm statistics), its time constant in
    # epochs; 0 = off. Both the raw and the averaged weights are scored every epoch; best.pt holds
    # the average's best epoch (the raw weights' when the average is off) and says which.
    ema_epochs: float = 3.0
    dice_weight: float = 1.0  # loss = CE + dice_weight * (1 - soft Dice)
    # Dice averaged over: all_foreground (every class but 0) | foreground (those of them present in
    # the batch) | present (every class present, background too)
    dice_classes: str = "all_foreground"
    ignore_index: int | None = None
    depth: int = 4
    width: int = 16
    upsample: str = "transpose"
    arch: str = "unet"  # "unet" or "smp:<arch>" (edgeseg.models.registry)
    encoder: str | None = None  # smp: the encoder; None = edgeseg.models.smp.DEFAULT_ENCODER
    encoder_weights: str = "none"  # smp: none, imagenet (SMP's download) or a state-dict FILE
    val_fraction: float = 0.2
    synthetic_train: int = 320
    synthetic_val: int = 128
    augment: bool = True
    augment_ops: str = DEFAULT_AUGMENT_OPS  # which of edgeseg.data.AUGMENT_OPS apply when augment is on
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # mixed precision, CUDA only
    bf16: bool = False  # bf16 autocast on CPU (see benchmarks/train_bf16.py for when it pays)
    # none | auto (median frequency balancing) | sqrt (its root) | sqrt-if-imbalanced | w1,w2,...
    class_weights: str = SQRT_IF_IMBALANCED
    patience: int | None = None  # stop after this many epochs without a better val mIoU
    tensorboard: bool = False  # TensorBoard event files beside metrics.json
    workers: int = 0
    out: str | None = None  # None = runs/train, or runs/train2, ... if that already holds a run
    exist_ok: bool = False
    resume: str | None = None
    quiet: bool = False

    def __post_init__(self) -> None:
        # NaN passes every range check (all comparisons with it are False): check_number refuses it.
        check_number(self.lr, "--lr", minimum=0.0, min_open=True)
        check_number(self.weight_decay, "weight_decay", minimum=0.0)
        check_number(self.warmup_fraction, "warmup_fraction", minimum=0.0, maximum=1.0)
        check_number(self.val_fraction, "val_fraction", minimum=0.0, maximum=1.0, min_open=True)
        check_number(self.decay_fraction, "decay_fraction", minimum=0.0, maximum=1.0)
        check_number(self.ema_epochs, "ema_epochs", minimum=0.0)
        if self.dice_classes not in DICE_CLASSES:
            raise InputError(
                f"dice_classes must be one of {', '.join(DICE_CLASSES)}; got '{self.dice_classes}'"
            )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["img_size"] = list(self.img_size) if self.img_size else None
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        # A run saved before the floor was an option decayed to 1 %: resuming it keeps its schedule.
        kwargs.setdefault("lr_floor", 0.01)
        # Runs saved before these options: their cosine spans the run, no weight average, Dice over
        # the classes present.
        kwargs.setdefault("decay_fraction", 1.0)
        kwargs.setdefault("ema_epochs", 0.0)
        kwargs.setdefault("dice_classes", "present")
        if kwargs.get("img_size"):
            kwargs["img_size"] = tuple(kwargs["img_size"])
        return cls(**kwargs)


@dataclass
class TrainResult:
    run_dir: Path
    best_checkpoint: Path
    last_checkpoint: Path
    best_miou: float
    best_epoch: int
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def build_datasets(cfg: TrainConfig) -> tuple[Any, Any, dict[str, Any]]:
    """Train and val views (train augmented) plus what the checkpoint must record about the data."""

    stride = model_spec(cfg, 3, 2).stride
    if cfg.data is None:
        if cfg.val_data is not None:
            raise InputError("--val-data needs --data (the synthetic dataset makes its own val split)")
        if cfg.classes is not None or cfg.ignore_index is not None:
            raise InputError(
                "--classes and --ignore-index describe a --data folder; the built-in synthetic dataset "
                "has its own 4 classes and no unlabelled pixels"
            )
        size = cfg.img_size or SYNTHETIC_SIZE
        check_img_size(size, stride, depth_option=cfg.arch == "unet")
        base = SyntheticDataset(cfg.synthetic_train + cfg.synthetic_val, img_size=size, seed=cfg.seed)
        train_idx = list(range(cfg.synthetic_train))
        val_idx = list(range(cfg.synthetic_train, len(base)))
        val_base = base
    else:
        base = FolderDataset(
            cfg.data, img_size=cfg.img_size, num_classes=cfg.classes, ignore_index=cfg.ignore_index
        )
        check_img_size(base.img_size, stride, given=cfg.img_size is not None, depth_option=cfg.arch == "unet")
        if cfg.val_data is not None:
            val_base = FolderDataset(
                cfg.val_data,
                img_size=base.img_size,
                num_classes=base.num_classes,
                ignore_index=cfg.ignore_index,
                channels=base.channels,
                class_names=base.class_names,
            )
            train_idx, val_idx = list(range(len(base))), list(range(len(val_base)))
        else:
            val_base = base
            train_idx, val_idx = split_indices(len(base), cfg.val_fraction, cfg.seed)
    if isinstance(val_base, FolderDataset):
        # The val mIoU picks the best epoch: like every figure it needs evidence (edgeseg._evidence).

        counts = [val_base.labelled_per_image[i] for i in val_idx]
        where = (
            f"--val-data '{cfg.val_data}'" if cfg.val_data is not None else f"the val split of '{cfg.data}'"
        )
        hint = labelled_hint(cfg.ignore_index)
        Evidence("labelled pixels", sum(counts), sum(c > 0 for c in counts), hint=hint).require(
            f"the val mIoU on {where}"
        )
    augment = Augment(AugmentConfig.from_ops(cfg.augment_ops)) if cfg.augment else None
    train = DatasetView(base, train_idx, transform=augment, seed=cfg.seed)
    val = DatasetView(val_base, val_idx, transform=None, seed=cfg.seed)
    info = {
        "class_names": list(base.class_names),
        "num_classes": base.num_classes,
        "channels": base.channels,
        "img_size": tuple(base.img_size),
        "ignore_index": base.ignore_index,
        "binary_255": bool(getattr(base, "binary_255", False)),
    }
    return train, val, info


def resolve_class_weights(cfg: TrainConfig, train: Any, info: dict[str, Any]) -> list[float] | None:
    """The cross-entropy class weights `cfg.class_weights` asks for: None, the given list, or
    median frequency balancing over the training masks at training size, unaugmented (auto), or
    its square root (sqrt: the same order of classes, a 100x weight becomes 10x), or that root only
    when the classes are imbalanced (sqrt-if-imbalanced, the default: some class's median
    frequency weight is IMBALANCED or more, i.e. it is that many times rarer than the median
    class; else None)."""
    from edgeseg.training.losses import class_weights_from_spec, median_frequency_weights

    if cfg.class_weights not in FROM_MASKS:
        return class_weights_from_spec(cfg.class_weights, info["num_classes"])
    masks = (train.base[i][1] for i in train.indices)
    weights = median_frequency_weights(masks, info["num_classes"], info["ignore_index"])
    if cfg.class_weights == "auto":
        return weights
    if cfg.class_weights == SQRT_IF_IMBALANCED and max(weights) < IMBALANCED:
        return None
    return [w**0.5 for w in weights]


def model_spec(cfg: TrainConfig, channels: int, classes: int) -> ModelSpec:
    """The registry spec of the network `cfg` trains on data with `channels` and `classes`."""
    if cfg.arch == "unet":
        kwargs: dict[str, Any] = {"depth": cfg.depth, "width": cfg.width, "upsample": cfg.upsample}
    elif cfg.arch.startswith("smp:"):
        from edgeseg.models.smp import DEFAULT_ENCODER

        kwargs = {"encoder": cfg.encoder if cfg.encoder is not None else DEFAULT_ENCODER}
    else:
        raise InputError(f"unknown --arch '{cfg.arch}'; choose unet or smp:<arch> (e.g. smp:unet)")
    if cfg.encoder is not None and cfg.arch == "unet":
        raise InputError("--encoder applies to smp:<arch> models; edgeseg's unet takes --depth/--width")
    spec = ModelSpec(cfg.arch, channels, classes, kwargs)
    from edgeseg.models.registry import family_of

    family_of(spec).check(spec)  # unknown arch/encoder: one line naming the valid ones, before data
    return spec


def new_model(cfg: TrainConfig, spec: ModelSpec) -> Any:
    """The freshly initialised network to train: random weights, or `--encoder-weights` applied."""
    from edgeseg.models.registry import build_model

    model = build_model(spec)
    if spec.family == "smp":
        from edgeseg.models.smp import init_encoder

        model = init_encoder(model, spec, cfg.encoder_weights)
    elif cfg.encoder_weights.lower() != "none":
        raise InputError("--encoder-weights applies to smp:<arch> models")
    return model


def check_img_size(
    size: tuple[int, int], stride: int, *, given: bool = True, depth_option: bool = True
) -> None:
    """InputError naming the nearest valid size when `size` does not divide by `stride`;
    `depth_option` says whether the command has a --depth to suggest too."""
    w, h = size
    if w % stride or h % stride:
        hint = f"{round_to_stride(w, stride)}x{round_to_stride(h, stride)}"
        what = "--img-size" if given else "the images' own size"
        rule = f"2**depth = {stride}" if depth_option else f"the model's stride {stride}"
        raise InputError(
            f"{what} {w}x{h} does not divide by {rule}; pass --img-size {hint}"
            + (" (or a smaller --depth)" if depth_option else "")
        )


RUN_FILES = ("best.pt", "last.pt", "metrics.json", "curves.png", "samples.png")


def prepare_run_dir(cfg: TrainConfig) -> Path:
    """The run folder, checked: no output over an input, no file replaced without --exist-ok (a
    resumed run continues in its own folder, which it replaces by design)."""
    out = next_free_dir(Path("runs/train")) if cfg.out is None else Path(cfg.out)
    in_place = cfg.resume is not None and resolved(cfg.resume).parent == resolved(out)
    weights = cfg.encoder_weights if Path(cfg.encoder_weights).is_file() else None
    inputs = [("--data", cfg.data), ("--val-data", cfg.val_data), ("--encoder-weights", weights)]
    if cfg.resume is not None and not in_place:
        inputs.append(("--resume", cfg.resume))
    # Resuming writes into the run's own folder; any other folder is a new destination, checked as one.
    if not in_place and not cfg.exist_ok and any((out / n).exists() for n in ("best.pt", "last.pt")):
        raise InputError(
            f"run folder '{out}' already holds checkpoints; pass another --out, --exist-ok to "
            f"overwrite, or --resume {out / 'last.pt'} to continue"
        )
    check_outputs(
        inputs,
        [Output("--out", out, "folder", RUN_FILES)],
        overwrite=cfg.exist_ok or in_place,
        overwrite_flag="--exist-ok",
    )
    if cfg.out is None:
        return out
    if out.exists() and not out.is_dir():
        raise InputError(f"--out '{out}' exists and is not a folder")
    # Fail before training, not at the first checkpoint: the nearest existing ancestor must be a
    # writable folder (the run folder itself is created only when there is something to write).
    parent = out
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise InputError(
            f"cannot create run folder '{out}': '{parent}' is not a writable folder; choose another --out"
        )
    return out


def next_free_dir(base: Path, markers: tuple[str, ...] = ("best.pt", "last.pt")) -> Path:
    """`base`, or `base2`, `base3`, ... : the first that holds none of `markers` (default: checkpoints)."""
    candidate, n = base, 1
    # A folder another run has claimed (still empty while it starts) is taken too.
    while any((candidate / f).exists() for f in markers) or lock_path(candidate).exists():
        n += 1
        candidate = base.with_name(f"{base.name}{n}")
    return candidate
