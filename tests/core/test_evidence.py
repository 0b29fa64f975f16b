"""A gate or figure without evidence does not pass (edgeseg._evidence): every command that reports
an accuracy figure or checks an accuracy gate, given labelled data with no labelled pixel or with
one, figures that come out NaN, or data (or a second model) of other classes, exits 2 with one line
that names what is missing, and writes nothing. `test_every_command_is_classified` makes a new
command join the table below (or say why it reports no accuracy figure)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import make_dataset, run_cli

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

Args = Callable[[dict[str, Path], Path, Path], list[object]]
DEMO = ["--headless", "--backend", "onnxruntime", "--threads", "1"]

INT8 = ["--target", "onnx", "--precision", "int8"]

# Every command with an accuracy figure or gate, as it is run on a labelled folder D.
COMMANDS: dict[str, Args] = {
    "eval checkpoint": lambda a, d, tmp: ["eval", a["ckpt"], "--data", d],
    "eval bundle": lambda a, d, tmp: ["eval", a["bundle"], "--data", d],
    "export parity": lambda a, d, tmp: [
        "export", a["ckpt"], "--target", "onnx", "--val-data", d, "--out", tmp / "out"
    ],
    "export --max-drop": lambda a, d, tmp: [
        "export", a["ckpt"], *INT8, "--val-data", d, "--max-drop", "1", "--out", tmp / "out"
    ],
    "export --max-class-drop": lambda a, d, tmp: [
        "export", a["ckpt"], *INT8, "--val-data", d, "--max-class-drop", "0", "--out", tmp / "out"
    ],
    "benchmark": lambda a, d, tmp: [
        "benchmark", a["ckpt"], "--targets", "onnx:fp32", "--data", d, "--runs", "1", "--warmup", "0",
        "--out", tmp / "out",
    ],
    "demo ground truth": lambda a, d, tmp: ["demo", a["bundle"], "--source", d, "--no-compare", *DEMO],
}  # fmt: skip
# The commands that report no accuracy figure of their own, and why.
NO_FIGURES = {
    "info": "shows what a manifest records",
    "predict": "writes masks",
    "doctor": "checks graphs",
    "build-engine": "builds engines",
    "quickstart": "runs train, export, benchmark and demo on synthetic scenes, each checked here",
    "train": "its val mIoU: test_training_refuses_val_data_without_evidence",
}


def _masks(root: Path, fill: int, labelled: int) -> Path:
    """A 3-image dataset whose masks are all `fill` except `labelled` pixels of class 1 in the first."""
    make_dataset(root, n=3, size=(32, 32))
    for i, path in enumerate(sorted((root / "masks").glob("*.png"))):
        mask = np.full((32, 32), fill, np.uint8)
        if i == 0:
            mask.flat[:labelled] = 1
        Image.fromarray(mask).save(path)
    return root


def _other_classes(root: Path) -> Path:
    make_dataset(root, n=3, size=(32, 32))
    (root / "classes.txt").write_text("\n".join(f"k{i}" for i in range(11)) + "\n")
    return root


DATA: dict[str, Callable[[Path], Path]] = {
    "all ignored": lambda root: _masks(root, 255, 0),
    "one pixel": lambda root: _masks(root, 255, 1),
    "nan figures": lambda root: make_dataset(root, n=3, size=(32, 32)),
    "other classes": _other_classes,
}
# What the one line must say for each case.
SAYS = {
    "all ignored": ("too little evidence", "no labelled pixels"),
    "one pixel": ("too little evidence", "labelled pixels", "at least 1024 needed"),
    "nan figures": ("is not a finite number",),
    "other classes": ("has 4 classes", "has 11 classes"),
}


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 4-class checkpoint whose ignore index is 255, its FP32 ONNX bundle, and an 11-class one."""
    import torch

    from edgeseg.exporters import ExportConfig, export
    from edgeseg.models.checkpoint import Checkpoint, Normalization, save_checkpoint
    from edgeseg.models.unet import UNet

    root = tmp_path_factory.mktemp("evidence")

    def checkpoint(path: Path, classes: int) -> Path:
        torch.manual_seed(0)
        model = UNet(3, classes, depth=2, width=4)
        ckpt = Checkpoint(
            model_config=model.config,
            class_names=[f"c{i}" for i in range(classes)],
            normalization=Normalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "RGB"),
            img_size=(64, 48),
            ignore_index=255,
        )
        return save_checkpoint(path, ckpt, model)

    ckpt = checkpoint(root / "c4.pt", 4)
    bundle = export(ckpt, ExportConfig(target="onnx", parity_images=1, out=str(root / "bundle"))).bundle
    return {"ckpt": ckpt, "bundle": Path(bundle), "ckpt11": checkpoint(root / "c11.pt", 11)}


def _nan_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every confusion matrix's totals come out NaN, as a metric bug or a NaN-producing model would."""
    from edgeseg.evaluation.metrics import ConfusionMatrix

    real = ConfusionMatrix.compute
    nan = float("nan")

    def compute(self: ConfusionMatrix):  # type: ignore[no-untyped-def]
        return dataclasses.replace(real(self), miou=nan, dice=nan, pixel_accuracy=nan)

    monkeypatch.setattr(ConfusionMatrix, "compute", compute)


def _refused(rc: int, out: str, err: str, says: tuple[str, ...]) -> str:
    errors = [line for line in err.splitlines() if line.startswith("edgeseg: error:")]
    assert rc == 2, (rc, out, err)
    assert len(errors) == 1 and "Traceback" not in err, err
    line = errors[0]
    for phrase in says:
        assert phrase in line, (phrase, line)
    return line


@pytest.mark.usefixtures("small_ceilings")
@pytest.mark.parametrize("case", sorted(DATA))
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_figure_or_gate_without_evidence_is_refused(
    command: str,
    case: str,
    assets: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = DATA[case](tmp_path / "data")
    if case == "nan figures":
        _nan_figures(monkeypatch)
    rc, out, err = run_cli(COMMANDS[command](assets, data, tmp_path), capsys)
    _refused(rc, out, err, SAYS[case])
    assert not (tmp_path / "out").exists() or command == "benchmark"  # no bundle is left behind
    if case == "other classes":
        assert "--classes" not in err  # the user gave no --classes: the model's classes are named


def test_every_command_is_classified() -> None:
    from edgeseg.cli import _command_names

    fake = {"ckpt": Path("c"), "bundle": Path("b")}
    covered = {str(args(fake, Path("d"), Path("t"))[0]) for args in COMMANDS.values()}
    assert _command_names() == covered | set(NO_FIGURES), "add the new command to COMMANDS or NO_FIGURES"


def test_demo_refuses_a_baseline_of_other_classes(
    assets: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("cv2")
    args = ["demo", assets["bundle"], "--baseline", assets["ckpt11"], "--max-frames", "2", "--frame-size",
            "96x72", *DEMO]  # fmt: skip
    line = _refused(*run_cli(args, capsys), ("has 4 classes", "has 11 classes", "--baseline"))
    assert str(assets["ckpt11"]) in line


def test_the_per_class_gate_needs_a_judged_class() -> None:
    """Enough labelled pixels for an mIoU, spread over many classes each under the floor a class
    needs to be judged: --max-class-drop has nothing to measure, so it does not pass."""
    from edgeseg._evidence import MIN_CLASS_PIXELS, MIN_PIXELS
    from edgeseg.errors import InputError
    from edgeseg.evaluation.classwise import require_judged

    classes = MIN_PIXELS // (MIN_CLASS_PIXELS - 1) + 1
    counts = np.full(classes, MIN_CLASS_PIXELS - 1)
    assert counts.sum() >= MIN_PIXELS
    names = [f"k{i}" for i in range(classes)]
    with pytest.raises(InputError, match="--max-class-drop has no evidence on --val-data 'v': no class has"):
        require_judged(counts, names, "--max-class-drop", "--val-data 'v'")
    counts[3] = MIN_CLASS_PIXELS
    require_judged(counts, names, "--max-class-drop", "--val-data 'v'")  # one judged class is enough


def test_the_readme_states_the_minimum_the_code_applies() -> None:
    from edgeseg._evidence import MIN_CLASS_PIXELS, MIN_PIXELS

    readme = " ".join((Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8").split())
    assert f"**{MIN_PIXELS} pixels**" in readme and f"at least {MIN_CLASS_PIXELS} of them" in readme


@pytest.mark.parametrize("case", ["all ignored", "one pixel"])
def test_training_refuses_val_data_without_evidence(case: str, tmp_path: Path, capsys) -> None:
    """The val mIoU picks the best checkpoint: val data without evidence is refused before training."""
    train = make_dataset(tmp_path / "train", n=4, size=(32, 32))
    val = DATA[case](tmp_path / "val")
    tiny = ["--img-size", "32", "--depth", "2", "--width", "4", "--quiet"]
    args = ["train", "--data", train, "--val-data", val, "--ignore-index", "255", "--epochs", "1",
            "--out", tmp_path / "run", *tiny]  # fmt: skip
    _refused(*run_cli(args, capsys), SAYS[case])
    assert not (tmp_path / "run").exists()
