"""Arguments that would silently mean something else: a str where a sequence is taken (Python
iterates "ab" as "a", "b"), an empty choice taken as "all", 255 borders taken as a class, a batch of
one image that BatchNorm cannot train on, a read-only frame."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from edgeseg.errors import InputError
from tests.helpers import make_dataset, run_cli


# ---------------------------------------------------------------- a str where a sequence is taken
def _import_model(tmp: Path, ckpt: Path, **kw: Any) -> Any:
    import torch

    from edgeseg import import_model

    args = {"classes": ["a", "b"], "img_size": (32, 32), "mean": (0.5, 0.5, 0.5), "std": (0.2, 0.2, 0.2)}
    return import_model(torch.nn.Conv2d(3, 2, 1), tmp / "m.pt", **{**args, **kw})


def _segmenter(tmp: Path, ckpt: Path, **kw: Any) -> Any:
    from edgeseg import Segmenter

    return Segmenter(ckpt, **kw).close()


def _dataset(tmp: Path, ckpt: Path, **kw: Any) -> Any:
    from edgeseg.data import FolderDataset

    return FolderDataset(make_dataset(tmp / "d", n=2), **kw)


def _synthetic(tmp: Path, ckpt: Path, **kw: Any) -> Any:
    from edgeseg.data import SyntheticDataset

    return SyntheticDataset(2, **kw)


def _source_facts(tmp: Path, ckpt: Path, **kw: Any) -> Any:
    from edgeseg.exporters.source import SourceFacts

    return SourceFacts(**kw).class_names()


def _export_config(tmp: Path, ckpt: Path, **kw: Any) -> Any:
    from edgeseg.exporters import ExportConfig, export

    return export(ckpt, ExportConfig(target="onnx", out=str(tmp / "b"), **kw))


def _ort_providers(tmp: Path, ckpt: Path, **kw: Any) -> Any:
    pytest.importorskip("onnxruntime", reason="pip install 'edgeseg[onnx]'")
    from edgeseg.targets.onnx.backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(tmp / "m.onnx", **kw)


# Every public parameter that takes a sequence of names, numbers or a size, given a str.
STRING_AS_SEQUENCE: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {
    "import_model-classes": (_import_model, {"classes": "ab"}),
    "import_model-mean": (_import_model, {"mean": "0.5"}),
    "import_model-std": (_import_model, {"std": "123"}),
    "import_model-img_size": (_import_model, {"img_size": "64"}),
    "Segmenter-class_names": (_segmenter, {"class_names": "abcd"}),
    "Segmenter-mean": (_segmenter, {"mean": "123"}),
    "Segmenter-std": (_segmenter, {"std": "123"}),
    "Segmenter-img_size": (_segmenter, {"img_size": "64"}),
    "FolderDataset-class_names": (_dataset, {"class_names": "abc"}),
    "FolderDataset-img_size": (_dataset, {"img_size": "32"}),
    "SyntheticDataset-img_size": (_synthetic, {"img_size": "32"}),
    "SourceFacts-classes": (_source_facts, {"classes": "ab"}),
    "ExportConfig-img_size": (_export_config, {"img_size": "64"}),
    "onnxruntime-providers": (_ort_providers, {"providers": "CPUExecutionProvider"}),
}


@pytest.mark.parametrize("case", STRING_AS_SEQUENCE, ids=list(STRING_AS_SEQUENCE))
def test_a_str_is_refused_where_a_sequence_is_taken(case: str, tiny_ckpt: Path, tmp_path: Path) -> None:
    call, kwargs = STRING_AS_SEQUENCE[case]
    name, value = next(iter(kwargs.items()))
    with pytest.raises(InputError) as info:
        call(tmp_path, tiny_ckpt, **kwargs)
    message = str(info.value)
    assert f"{name} must be" in message and repr(value) in message and "\n" not in message, message
    assert not (tmp_path / "m.pt").exists() and not (tmp_path / "b").exists()


def test_lists_and_tuples_still_work(tiny_ckpt: Path, tmp_path: Path) -> None:
    from edgeseg import Segmenter
    from edgeseg.data import SyntheticDataset

    assert SyntheticDataset(1, [32, 48]).img_size == (32, 48)
    with Segmenter(tiny_ckpt, class_names=("w", "x", "y", "z"), mean=[0.4] * 3, std=(0.2, 0.2, 0.2)) as seg:
        assert list(seg.class_names) == ["w", "x", "y", "z"]
    path = _import_model(tmp_path, tiny_ckpt, classes=["road", "sky"], img_size=[32, 32])
    assert Path(path).is_file()


# ------------------------------------------------------------------ an empty choice is not "all"
def _value_params() -> list[tuple[str, Any]]:
    """Every option that takes a value and every argument, of every command."""
    from edgeseg.cli import command

    return [
        (name, p)
        for name, sub in sorted(command().commands.items())  # type: ignore[attr-defined]
        for p in sub.params
        if not getattr(p, "is_flag", False) and p.name != "help"
    ]


VALUE_PARAMS = _value_params()


@pytest.mark.parametrize(
    ("command", "param"), VALUE_PARAMS, ids=[f"{c}-{p.opts[0].lstrip('-')}" for c, p in VALUE_PARAMS]
)
def test_every_option_refuses_an_empty_value(
    command: str,
    param: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from edgeseg.cli import command as cli

    monkeypatch.chdir(tmp_path)
    args: list[Any] = [command]
    for p in cli().commands[command].params:  # type: ignore[attr-defined]
        if p.param_type_name == "argument":
            args.append("" if p is param else "x")
    if param.param_type_name == "option":
        args += [param.opts[0], *[""] * max(param.nargs, 1)]
    rc, _, err = run_cli(args, capsys)
    assert rc == 2 and "an empty value is not a choice" in err and len(err.strip().splitlines()) == 1, err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("value", [",", " , "])
def test_targets_naming_no_target_are_refused_not_taken_as_all(
    value: str, tiny_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for command in (["benchmark", tiny_ckpt], ["quickstart"]):
        rc, _, err = run_cli([*command, "--targets", value, "--out", tmp_path / "out"], capsys)
        assert rc == 2 and "names no target" in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "out").exists()


def test_empty_choices_in_python_are_not_all() -> None:
    from edgeseg.bench.run import parse_targets
    from edgeseg.exporters.doctor_run import _choices

    assert len(parse_targets(None)) == len(parse_targets("all")) > 3
    for empty in ((), [], "", [""]):
        with pytest.raises(InputError, match="names no target"):
            parse_targets(empty)
    assert len(_choices(None, None)[0]) > 1
    with pytest.raises(InputError):
        _choices("", None)


# ------------------------------------------------------------------------------ VOC-style borders
def _masks(root: Path, ids: list[int], border: int, dtype: Any = np.uint8, n: int = 3) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        mask = np.zeros((24, 24), dtype)
        for k, c in enumerate(ids):
            mask[1 + k, 2 + 3 * i : 20] = c  # one row per class: up to 21 of them fit
        mask[0, :] = mask[:, 0] = border  # the unlabelled rim VOC draws around objects
        Image.fromarray(np.full((24, 24, 3), 40 * i, np.uint8)).save(root / "images" / f"{i}.png")
        Image.fromarray(mask).save(root / "masks" / f"{i}.png")
    return root


@pytest.mark.parametrize(
    ("ids", "border", "dtype"),
    [(list(range(21)), 255, np.uint8), ([0, 1], 255, np.uint8), ([0, 1, 2, 3], 65535, np.uint16)],
    ids=["voc-21-classes", "binary-0-1-255", "16-bit-65535"],
)
def test_an_isolated_border_id_is_refused_with_the_ignore_hint(
    ids: list[int], border: int, dtype: Any, tmp_path: Path
) -> None:
    from edgeseg.data import FolderDataset

    data = _masks(tmp_path / "d", ids, border, dtype)
    with pytest.raises(InputError) as info:
        FolderDataset(data)
    message = str(info.value)
    assert f"--ignore-index {border}" in message and f"{border + 1}-class model" in message, message
    ds = FolderDataset(data, ignore_index=border)
    assert ds.num_classes == max(ids) + 1
    assert FolderDataset(data, num_classes=border + 1).num_classes == border + 1  # said on purpose


def test_an_ignore_id_next_to_the_classes_is_still_a_class(tmp_path: Path) -> None:
    """CamVid's 11 (void) right after the classes 0..10 is not flagged: no gap says it is special."""
    from edgeseg.data import FolderDataset

    assert FolderDataset(_masks(tmp_path / "d", list(range(11)), 11)).num_classes == 12


def test_train_refuses_voc_borders_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _masks(tmp_path / "d", list(range(21)), 255, n=4)
    rc, _, err = run_cli(
        ["train", "--data", data, "--img-size", "24x24", "--epochs", "1", "--out", tmp_path / "r"], capsys
    )
    assert rc == 2 and "--ignore-index 255" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------------ batches of one image
def test_a_network_that_cannot_train_on_one_image_is_found_before_training(tmp_path: Path) -> None:
    import torch

    from edgeseg.models.batchnorm import single_value_batchnorm
    from edgeseg.models.unet import UNet

    assert single_value_batchnorm(UNet(3, 2, depth=2, width=4), 3, (32, 32)) is None

    class GlobalBranch(torch.nn.Module):  # DeepLabV3's ASPP pooling branch, in small
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
            self.pool = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.BatchNorm2d(4))
            self.head = torch.nn.Conv2d(4, 2, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            return self.head(y + self.pool(y))

    net = GlobalBranch().train()
    before = net.pool[1].running_mean.clone()
    assert single_value_batchnorm(net, 3, (32, 24)) == "'pool.1' (BatchNorm2d)"
    assert net.training and torch.equal(net.pool[1].running_mean, before)  # nothing changed
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        net(torch.zeros(1, 3, 24, 32))  # what training would have hit at its first step


def test_train_deeplabv3plus_with_batch_size_1_is_refused_up_front(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("segmentation_models_pytorch", reason="pip install 'edgeseg[smp]'")
    data = make_dataset(tmp_path / "d", n=6, size=(64, 64))
    args = ["train", "--data", data, "--arch", "smp:deeplabv3plus", "--encoder-weights", "none"]
    rc, _, err = run_cli(
        [*args, "--batch-size", "1", "--img-size", "64", "--epochs", "1", "--out", tmp_path / "r"], capsys
    )
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert "cannot train on batches of one image" in err and "--batch-size 2 or more" in err
    assert "ValueError" not in err and not (tmp_path / "r" / "last.pt").exists()


# --------------------------------------------------------------------------------- read-only frames
@pytest.mark.parametrize("kernel", ["pillow", "torch"])
def test_a_read_only_frame_gives_no_warning_and_the_same_mask(kernel: str, tiny_ckpt: Path) -> None:
    from edgeseg import Segmenter

    frame = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    frozen = frame.copy()
    frozen.setflags(write=False)
    with Segmenter(tiny_ckpt, resize_kernel=kernel) as seg:
        expected = seg(frame).mask
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            got = seg(frozen).mask
            also = seg(np.broadcast_to(frame[:1], frame.shape)).mask  # read-only by construction
    assert np.array_equal(got, expected) and also.shape == expected.shape


def test_read_only_arrays_become_tensors_without_a_warning(tiny_ckpt: Path) -> None:
    from edgeseg.evaluation.evaluate import predict_masks
    from edgeseg.models.checkpoint import load_checkpoint
    from edgeseg.runtimes import create_backend

    ckpt = load_checkpoint(tiny_ckpt)
    images = np.zeros((1, 48, 64, 3), np.uint8)
    images.setflags(write=False)
    x = np.zeros((1, 3, 48, 64), np.float32)
    x.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        predict_masks(ckpt.build_model(), images, ckpt.normalization)
        with create_backend("torch", tiny_ckpt) as backend:
            backend.infer({backend.input_specs[0].name: x})
