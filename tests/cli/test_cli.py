"""End to end through the command line: train -> eval -> info, resume, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import make_dataset, run_cli

TINY = ["--img-size", "32", "--depth", "2", "--width", "4", "--batch-size", "4", "--quiet"]


def test_train_then_eval_reports_the_same_miou(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    train_dir = make_dataset(tmp_path / "train", n=8)
    val_dir = make_dataset(tmp_path / "val", n=4, seed=1)
    run = tmp_path / "run"
    rc, out, err = run_cli(
        ["train", "--data", train_dir, "--val-data", val_dir, "--epochs", "2", "--out", run,
         "--json", tmp_path / "train.json", *TINY],
        capsys,
    )  # fmt: skip
    assert rc == 0, err
    for name in ("best.pt", "last.pt", "metrics.json", "curves.png", "samples.png"):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
    best = metrics["epochs"][metrics["best_epoch"] - 1]
    assert best["miou"] == metrics["best_miou"]
    summary = json.loads((tmp_path / "train.json").read_text())
    assert summary["best_checkpoint"] == str(run / "best.pt")

    rc, out, err = run_cli(
        ["eval", run / "best.pt", "--data", val_dir, "--json", tmp_path / "e.json"], capsys
    )
    assert rc == 0, err
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["miou"] == pytest.approx(metrics["best_miou"], abs=1e-12)
    assert report["images"] == 4 and set(report["iou_per_class"]) == {"class0", "class1", "class2"}
    assert f"mIoU {metrics['best_miou']:.4f}" in out

    rc, out, err = run_cli(["info", run / "best.pt"], capsys)
    assert rc == 0 and "UNet(in_channels=3, classes=3, depth=2, width=4" in out and "32x32 RGB" in out


def test_resume_continues_from_last_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    data = make_dataset(tmp_path / "d", n=8)
    run = tmp_path / "run"
    assert run_cli(["train", "--data", data, "--epochs", "1", "--out", run, *TINY], capsys)[0] == 0
    first = json.loads((run / "metrics.json").read_text())["epochs"]
    rc, _, err = run_cli(["train", "--resume", run / "last.pt", "--epochs", "2"], capsys)
    assert rc == 0, err
    epochs = json.loads((run / "metrics.json").read_text())["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert epochs[0] == first[0]  # the finished epoch is kept, not retrained
    rc, _, err = run_cli(["train", "--resume", run / "best.pt"], capsys)
    assert rc == 2 and "resume from last.pt" in err


def test_existing_run_is_not_overwritten(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    data = make_dataset(tmp_path / "d", n=6)
    run = tmp_path / "run"
    assert run_cli(["train", "--data", data, "--epochs", "1", "--out", run, *TINY], capsys)[0] == 0
    before = (run / "best.pt").read_bytes()
    rc, _, err = run_cli(["train", "--data", data, "--epochs", "1", "--out", run, *TINY], capsys)
    assert rc == 2 and "already holds checkpoints" in err
    assert (run / "best.pt").read_bytes() == before


def test_grayscale_binary_0_255_trains_out_of_the_box(tmp_path: Path):
    from edgeseg import load_checkpoint, train

    data = make_dataset(tmp_path / "gray", n=16, gray=True, binary_255=True)
    result = train(data=data, img_size=(32, 32), epochs=8, depth=2, width=8, batch_size=4,
                   out=str(tmp_path / "run"), quiet=True)  # fmt: skip
    ckpt = load_checkpoint(result.best_checkpoint)
    assert ckpt.model_config.in_channels == 1 and ckpt.model_config.classes == 2
    assert ckpt.normalization.color_order == "GRAY"
    assert ckpt.training["binary_255"] is True
    assert result.best_miou > 0.5  # brightness separates the classes: anything learnt beats chance


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--data", "{tmp}/missing"], "--data folder '{tmp}/missing' does not exist"),
        (
            ["train", "--data", "{data}", "--img-size", "30"],
            "--img-size 30x30 does not divide by 2**depth = 16; pass --img-size 32x32",
        ),
        (["train", "--data", "{data}", "--img-size", "abc"], "--img-size must be N or WxH"),
        (["train", "--data", "{data}", "--depth", "9"], "--depth"),
        (["train", "--bogus"], "No such option: --bogus"),
        (["train", "--upsample", "cubic"], "--upsample must be"),
        (["train", "--val-data", "{data}"], "--val-data needs --data"),
        (["train", "--classes", "3"], "--classes and --ignore-index describe a --data folder"),
        (["eval", "{tmp}/nope.pt", "--data", "{data}"], "checkpoint '{tmp}/nope.pt' does not exist"),
        (["eval", "{data}/images/img000.png", "--data", "{data}"], "img000.png"),
        (["train", "--data", "{data}", "--classes", "2"], "img000.png' holds class id 2"),
    ],
)
def test_bad_input_is_one_clear_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
):
    data = make_dataset(tmp_path / "d", n=4, size=(30, 30))
    fill = {"tmp": str(tmp_path), "data": str(data)}
    out_dir = tmp_path / "run"
    rc, _, err = run_cli(
        [a.format(**fill) for a in args] + ["--out", str(out_dir)] * (args[0] == "train"), capsys
    )
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("edgeseg: error: ")
    assert message.format(**fill) in lines[0]
    assert "Traceback" not in err
    assert not out_dir.exists() or not list(out_dir.glob("*.pt"))


def test_image_without_mask_names_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    data = make_dataset(tmp_path / "d", n=4)
    (data / "masks" / "img002.png").unlink()
    rc, _, err = run_cli(["train", "--data", data, "--out", tmp_path / "run", *TINY], capsys)
    assert rc == 2 and "img002" in err and len(err.strip().splitlines()) == 1


def test_console_entry_point_exit_code_and_no_traceback(tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "edgeseg", "train", "--data", str(tmp_path / "absent")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.fixture
def tiny_checkpoint(tmp_path: Path) -> Path:
    from edgeseg.models.checkpoint import Checkpoint, Normalization, save_checkpoint
    from edgeseg.models.unet import UNet

    model = UNet(3, 3, depth=2, width=4).eval()
    ckpt = Checkpoint(model.config, ["a", "b", "c"], Normalization((0.5,) * 3, (0.25,) * 3), (32, 32))
    return save_checkpoint(tmp_path / "tiny.pt", ckpt, model)


def test_export_then_info_on_the_bundle(tmp_path: Path, tiny_checkpoint: Path, capsys):
    pytest.importorskip("onnxruntime", reason="pip install 'edgeseg[onnx]'")
    bundle = tmp_path / "b"
    rc, out, err = run_cli(
        ["export", tiny_checkpoint, "--target", "onnx", "--out", bundle, "--json", tmp_path / "x.json"],
        capsys,
    )
    assert rc == 0, err
    assert "pixel agreement 100.0000%" in out
    report = json.loads((tmp_path / "x.json").read_text())
    assert report["parity"]["max_abs_logit_diff"] <= 1e-3
    assert sorted(p.name for p in bundle.iterdir()) == ["edgeseg.json", "model.onnx"]
    rc, out, err = run_cli(["info", bundle], capsys)
    assert rc == 0 and "onnx fp32" in out and "files verified" in out and "max |Δlogit|" in out
    # What ran is recorded by the export and shown; a model file says what computes it here.
    assert report["parity"]["executed_precision"] == "fp32"
    assert "  precision  fp32; the parity check computed it in fp32 (onnxruntime " in out
    rc, file_out, err = run_cli(["info", bundle / "model.onnx", "--json", tmp_path / "i.json"], capsys)
    assert rc == 0 and "  precision  fp32; computed here in fp32" in file_out, err
    assert json.loads((tmp_path / "i.json").read_text())["executed_precision"] == "fp32"
    # FP32 reproduces PyTorch: every class's masks agree, every edge is matched.
    classes = report["parity"]["classes"]
    assert set(v for v in classes["iou_vs_pytorch"].values() if v is not None) == {1.0}
    assert classes["boundary_f_vs_pytorch"] == 1.0 and classes["flips"] == []
    worst = classes["worst"][0]["class"]
    assert (
        f"  classes    worst {worst} (IoU vs PyTorch 1.0000)" in out
        and "boundary F (2 px) vs PyTorch 1.0000" in out
    )

    with (bundle / "model.onnx").open("ab") as fh:
        fh.write(b"tampered")
    rc, _, err = run_cli(["info", bundle], capsys)
    assert rc == 2 and "model.onnx' has been modified or is corrupt" in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--target", "tflite"], "unknown target 'tflite'"),
        (["--target", "onnx", "--precision", "fp64"], "fp64"),
        (["--target", "onnx", "--img-size", "30"], "divide by 4"),
    ],
)
def test_export_bad_options(tmp_path: Path, tiny_checkpoint: Path, capsys, extra: list[str], message: str):
    out_dir = tmp_path / "b"
    rc, _, err = run_cli(["export", tiny_checkpoint, "--out", out_dir, *extra], capsys)
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not out_dir.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_predict_writes_masks_and_overlays(tmp_path: Path, tiny_checkpoint: Path, capsys):
    pytest.importorskip("onnxruntime", reason="pip install 'edgeseg[onnx]'")
    from PIL import Image

    from edgeseg.overlay import class_colors
    from edgeseg.segmenter import Segmenter

    data = make_dataset(tmp_path / "d", n=2, size=(45, 37))  # odd size: masks come back at it
    bundle = tmp_path / "b"
    assert run_cli(["export", tiny_checkpoint, "--target", "onnx", "--out", bundle], capsys)[0] == 0
    out = tmp_path / "pred"
    rc, _, err = run_cli(
        [
            "predict",
            bundle,
            data / "images",
            "--backend",
            "onnxruntime",
            "--out",
            out,
            "--json",
            tmp_path / "p.json",
        ],
        capsys,
    )
    assert rc == 0, err
    assert sorted(p.name for p in out.iterdir()) == [
        f"img00{i}_{kind}.png" for i in (0, 1) for kind in ("color", "mask", "overlay")
    ]
    mask = np.array(Image.open(out / "img000_mask.png"))
    assert mask.shape == (37, 45) and mask.max() < 3
    with Segmenter(bundle, backend="onnxruntime", input_format="rgb") as seg:
        expected = seg(np.array(Image.open(data / "images" / "img000.png"))).mask
    assert np.array_equal(mask, expected)
    # The colour mask in the palette's colours, the class key in a panel on its right.
    color = np.array(Image.open(out / "img000_color.png"))
    assert np.array_equal(color[:37, :45], class_colors(3)[mask]) and color.shape[1] > 45
    report = json.loads((tmp_path / "p.json").read_text())
    assert len(report["images"]) == 2 and "onnxruntime" in report["backend"]
    assert report["images"][0]["color"] == str(out / "img000_color.png")
    assert abs(sum(report["images"][0]["class_fraction"].values()) - 1) < 1e-3


def test_predict_bad_inputs(tmp_path: Path, tiny_checkpoint: Path, capsys):
    rc, _, err = run_cli(["predict", tiny_checkpoint, tmp_path / "none.png", "--out", tmp_path / "o"], capsys)
    assert rc == 2 and "none.png' does not exist" in err
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    rc, _, err = run_cli(["predict", tiny_checkpoint, bad, "--out", tmp_path / "o"], capsys)
    assert rc == 2 and "bad.png" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())


def test_unwritable_out_is_exit_2_and_names_the_path(tmp_path: Path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    data = make_dataset(tmp_path / "d", n=6)
    rc, _, err = run_cli(["train", "--data", data, "--epochs", "1", "--out", blocker / "run", *TINY], capsys)
    assert rc == 2, err
    assert "file.txt' is not a writable folder; choose another --out" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert blocker.read_text() == "a file, not a folder"
    assert "epoch" not in err  # refused before any training


def test_eval_on_bundles_matches_the_checkpoint(tmp_path: Path, tiny_checkpoint: Path, capsys):
    pytest.importorskip("onnxruntime", reason="pip install 'edgeseg[onnx]'")
    data = make_dataset(tmp_path / "d", n=4)
    bundle = tmp_path / "b"
    assert run_cli(["export", tiny_checkpoint, "--target", "onnx", "--out", bundle], capsys)[0] == 0
    scores = {}
    for name, model in (("ckpt", tiny_checkpoint), ("bundle", bundle), ("onnx", bundle / "model.onnx")):
        rc, _, err = run_cli(["eval", model, "--data", data, "--json", tmp_path / f"{name}.json"], capsys)
        assert rc == 0, err
        scores[name] = json.loads((tmp_path / f"{name}.json").read_text())
    assert scores["bundle"]["images"] == 4 and scores["bundle"]["img_size"] == [32, 32]
    for name in ("bundle", "onnx"):
        assert abs(scores[name]["miou"] - scores["ckpt"]["miou"]) < 1e-3
        assert abs(scores[name]["pixel_accuracy"] - scores["ckpt"]["pixel_accuracy"]) < 1e-3


def test_warnings_print_as_one_line_like_errors(tmp_path: Path, tiny_checkpoint: Path, capsys):
    """A command's warnings are `edgeseg: warning: ...` lines, not Python's `file.py:N: UserWarning`
    with a source line; programs importing the library still get ordinary Python warnings."""
    pytest.importorskip("onnxruntime", reason="pip install 'edgeseg[onnx]'")
    import warnings

    calib = make_dataset(tmp_path / "calib", n=4, size=(64, 48))
    before = warnings.showwarning
    rc, _, err = run_cli(
        ["export", tiny_checkpoint, "--target", "onnx", "--precision", "int8", "--calib", calib,
         "--parity-images", "1", "--out", tmp_path / "b"],
        capsys,
    )  # fmt: skip
    assert rc == 0, err
    expected = (
        "edgeseg: warning: calibrating on 4 images; 100+ representative images give more reliable INT8 ranges"
    )
    assert expected in err.splitlines()
    assert "UserWarning" not in err and ".py:" not in err and "warnings.warn" not in err
    assert warnings.showwarning is before  # the CLI's display ends with the command

    from edgeseg.exporters.calibset import load_calibration
    from edgeseg.manifest import read_manifest

    with pytest.warns(UserWarning, match="calibrating on 4 images"):
        load_calibration(calib, read_manifest(tmp_path / "b"))


@pytest.mark.parametrize("command", ["info", "eval"])
def test_an_engine_file_is_a_tensorrt_model_not_a_checkpoint(tmp_path: Path, capsys, command: str):
    """The commands tell model files apart by `artifact_kind` (which knows .engine), not by suffix lists."""
    import importlib.util

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here")
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"\0" * 64)
    args = [command, engine] + (["--data", make_dataset(tmp_path / "d", n=1)] if command == "eval" else [])
    rc, _, err = run_cli(args, capsys)
    assert rc == 2 and len(err.splitlines()) == 1
    assert "needs the 'tensorrt' package" in err and "checkpoint" not in err


def test_predict_resize_kernel_torch_writes_the_same_masks(tiny_bundle, tmp_path, capsys) -> None:
    import numpy as np
    from PIL import Image

    from tests.helpers import run_cli

    bundle = tiny_bundle("onnx")
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8)).save(photos / "cam.png")
    masks = {}
    for kernel in ("pillow", "torch"):
        out = tmp_path / kernel
        rc, _, err = run_cli(["predict", bundle, photos, "--out", out, "--resize-kernel", kernel], capsys)
        assert rc == 0, err
        masks[kernel] = np.asarray(Image.open(out / "cam_mask.png"))
    assert masks["torch"].shape == (720, 1280)
    assert (masks["torch"] == masks["pillow"]).mean() >= 0.999
    rc, _, err = run_cli(
        ["predict", bundle, photos, "--out", tmp_path / "x", "--resize-kernel", "cv2"], capsys
    )
    assert rc == 2 and err.strip() == "edgeseg: error: resize_kernel must be one of pillow, torch; got 'cv2'"
    assert not (tmp_path / "x" / "cam_mask.png").exists()
