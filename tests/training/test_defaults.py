"""The training defaults that benchmarks/README.md measured: which augmentations apply, the
learning-rate schedule's floor, and the options that select them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeseg.data import DEFAULT_AUGMENT_OPS, AugmentConfig
from edgeseg.errors import InputError
from edgeseg.training import TrainConfig, build_datasets, cosine_with_warmup
from tests.helpers import make_dataset, run_cli


@pytest.mark.parametrize(
    ("ops", "expected"),
    [
        ("none", AugmentConfig(hflip=0, vflip=0, rot90=False, scale=(1, 1), brightness=0, contrast=0)),
        ("flip", AugmentConfig(hflip=0.5, vflip=0, rot90=False, scale=(1, 1), brightness=0, contrast=0)),
        (" Zoom , vflip", AugmentConfig(hflip=0, vflip=0.5, rot90=False, brightness=0, contrast=0)),
        ("rot90,color", AugmentConfig(hflip=0, vflip=0, rot90=True, scale=(1, 1))),
    ],
)
def test_augment_ops_switch_exactly_the_named_augmentations(ops: str, expected: AugmentConfig):
    assert AugmentConfig.from_ops(ops) == expected


def test_unknown_augmentation_is_an_input_error():
    with pytest.raises(InputError, match=r"unknown augmentation 'blur'; choose none or .*flip, vflip"):
        AugmentConfig.from_ops("flip,blur")


def test_training_views_apply_only_the_chosen_augmentations(tmp_path: Path):
    data = make_dataset(tmp_path / "d", n=6)
    base_cfg = {"data": str(data), "val_fraction": 0.5}
    plain, _, _ = build_datasets(TrainConfig(**base_cfg, augment_ops="none"))
    flipped, _, _ = build_datasets(TrainConfig(**base_cfg, augment_ops="flip"))
    mirrored = 0
    for epoch in range(4):
        plain.set_epoch(epoch)
        flipped.set_epoch(epoch)
        for j in range(len(plain)):
            image, mask = plain[j]
            original = plain.base[plain.indices[j]]
            assert np.array_equal(image, original[0]) and np.array_equal(mask, original[1])
            f_image, f_mask = flipped[j]
            same = np.array_equal(f_image, image) and np.array_equal(f_mask, mask)
            mirror = np.array_equal(f_image, image[:, ::-1]) and np.array_equal(f_mask, mask[:, ::-1])
            assert same or mirror  # nothing but a left-right flip, image and mask alike
            mirrored += mirror and not same
    assert mirrored > 0  # 12 draws at p = 0.5: all unflipped has probability 1 / 4096


def test_default_augment_ops_are_the_training_default():
    assert TrainConfig().augment_ops == DEFAULT_AUGMENT_OPS
    AugmentConfig.from_ops(DEFAULT_AUGMENT_OPS)  # the default names only known augmentations


@pytest.mark.parametrize("floor", [0.01, 0.5, 1.0])
def test_schedule_warms_up_then_decays_to_its_floor(floor: float):
    factor = cosine_with_warmup(100, 10, floor=floor)
    assert factor(0) == pytest.approx(0.1) and factor(9) == pytest.approx(1.0)
    assert factor(10) == pytest.approx(1.0) and factor(100) == pytest.approx(floor)
    middle = factor(55)  # halfway through the decay: halfway between 1 and the floor
    assert middle == pytest.approx((1 + floor) / 2)


def test_bad_augment_ops_option_is_one_line_and_writes_nothing(tmp_path: Path, capsys):
    data = make_dataset(tmp_path / "d", n=4)
    out = tmp_path / "run"
    rc, _, err = run_cli(["train", "--data", data, "--augment-ops", "flip,shear", "--out", out], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "unknown augmentation 'shear'" in err and not out.exists()


def test_sqrt_class_weights_are_the_root_of_median_frequency_weights(tmp_path: Path):
    from edgeseg.training.losses import median_frequency_weights
    from edgeseg.training.setup import resolve_class_weights

    data = make_dataset(tmp_path / "d", n=6)
    cfg = TrainConfig(data=str(data), val_fraction=0.5, class_weights="sqrt")
    train, _, info = build_datasets(cfg)
    masks = [train.base[i][1] for i in train.indices]
    mfb = median_frequency_weights(masks, 3)
    assert max(mfb) / min(mfb) > 1.5  # the set is imbalanced enough for the root to matter
    assert resolve_class_weights(cfg, train, info) == pytest.approx([w**0.5 for w in mfb], rel=1e-12)
    assert resolve_class_weights(TrainConfig(class_weights="auto"), train, info) == pytest.approx(mfb)


@pytest.mark.parametrize(("rare_pixels", "weighted"), [(11, False), (9, True)])
def test_default_class_weights_are_the_root_only_when_a_class_is_4x_rarer(rare_pixels: int, weighted: bool):
    from types import SimpleNamespace

    from edgeseg.training.losses import median_frequency_weights
    from edgeseg.training.setup import resolve_class_weights

    # 10x10 masks, every class in every mask: 40 px of class 1 (the median class), the rest split
    # between 0 (the most frequent) and 2
    flat = np.array([0] * (60 - rare_pixels) + [1] * 40 + [2] * rare_pixels, np.uint8)
    masks = [np.random.default_rng(i).permutation(flat).reshape(10, 10) for i in range(3)]
    train = SimpleNamespace(base=[(None, m) for m in masks], indices=range(3))
    info = {"num_classes": 3, "ignore_index": None}
    mfb = median_frequency_weights(masks, 3)
    assert max(mfb) == pytest.approx(40 / rare_pixels)  # 3.6x rarer than the median class, or 4.4x
    got = resolve_class_weights(TrainConfig(), train, info)
    assert TrainConfig().class_weights == "sqrt-if-imbalanced"
    if weighted:
        assert got == pytest.approx([w**0.5 for w in mfb], rel=1e-12)
    else:
        assert got is None
    assert resolve_class_weights(TrainConfig(class_weights="sqrt"), train, info) == pytest.approx(
        [w**0.5 for w in mfb], rel=1e-12
    )


@pytest.mark.parametrize("floor", [None, 0.2])
def test_a_run_ends_at_the_schedule_floor(tmp_path: Path, floor: float | None):
    from edgeseg.training import train

    data = make_dataset(tmp_path / "d", n=6)
    extra = {} if floor is None else {"lr_floor": floor}
    result = train(data=str(data), img_size=(32, 32), depth=2, width=4, epochs=2, lr=1e-3,
                   out=str(tmp_path / "run"), quiet=True, **extra)  # fmt: skip
    expected = 1e-3 * (TrainConfig().lr_floor if floor is None else floor)
    assert result.history[-1]["lr"] == pytest.approx(expected, rel=1e-9)


def test_a_run_saved_before_the_floor_option_resumes_on_its_own_schedule():
    saved = TrainConfig(lr_floor=0.5).to_dict()
    assert TrainConfig.from_dict(saved).lr_floor == 0.5
    del saved["lr_floor"]  # what a last.pt of edgeseg 0.3 holds
    assert TrainConfig.from_dict(saved).lr_floor == 0.01
