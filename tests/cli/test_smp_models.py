"""segmentation_models_pytorch models through the command line: train (--encoder-weights none and a
FILE), resume, export (onnx/openvino fp32+int8, the TensorRT engine-ready int8 graph), eval,
benchmark, info and Segmenter; and bad --arch/--encoder input (exit 2, nothing written)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgeseg.cli import main
from tests.helpers import make_dataset, run_cli

pytest.importorskip("segmentation_models_pytorch", reason="the smp extra is not installed")
pytest.importorskip("onnxruntime")

TINY = ["--img-size", "64", "--batch-size", "2", "--quiet", "--no-augment"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("data")
    return make_dataset(root / "train", n=4, size=(64, 64)), make_dataset(
        root / "val", n=2, size=(64, 64), seed=1
    )


@pytest.fixture(scope="module")
def runs(data: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory):
    """encoder -> its run, trained on first use and kept for the module (in whatever order the tests
    ask): one epoch, then --resume to two; mobilenet_v2 starts from a FILE of encoder weights."""
    import torch

    from edgeseg.models.registry import ModelSpec, build_model

    done: dict[str, tuple[Path, str, Path]] = {}

    def trained(encoder: str) -> tuple[Path, str, Path]:
        if encoder in done:
            return done[encoder]
        train, val = data
        out = tmp_path_factory.mktemp(encoder) / "run"
        weights = ["--encoder-weights", "none"]
        if encoder == "mobilenet_v2":
            torch.manual_seed(3)
            source = build_model(ModelSpec("smp:unet", 3, 3, {"encoder": encoder}))
            torch.save(source.encoder.state_dict(), out.parent / "enc.pt")
            weights = ["--encoder-weights", out.parent / "enc.pt"]
        args = [
            "train",
            "--arch",
            "smp:unet",
            "--encoder",
            encoder,
            *weights,
            "--data",
            train,
            "--val-data",
            val,
        ]
        assert main([str(a) for a in [*args, "--epochs", "1", "--out", out, *TINY]]) == 0
        assert main(["train", "--resume", str(out / "last.pt"), "--epochs", "2", "--quiet"]) == 0
        done[encoder] = (out, encoder, val)
        return done[encoder]

    return trained


@pytest.fixture(params=["resnet18", "mobilenet_v2"])
def run(request: pytest.FixtureRequest, runs):
    return runs(request.param)


def test_train_and_resume_record_the_architecture(run, capsys: pytest.CaptureFixture[str]):
    out, encoder, _ = run
    metrics = json.loads((out / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
    rc, text, err = run_cli(["info", out / "best.pt"], capsys)
    assert rc == 0, err
    assert f"smp:unet(encoder={encoder})" in text and "size multiple 32" in text


def test_eval_and_segmenter(run, capsys: pytest.CaptureFixture[str]):
    from edgeseg import Segmenter

    out, _, val = run
    rc, _, err = run_cli(["eval", out / "best.pt", "--data", val, "--json", out / "eval.json"], capsys)
    assert rc == 0, err
    miou = json.loads((out / "eval.json").read_text())["miou"]
    # the same code as training's validation: eval of best.pt on the val folder is the best epoch's
    assert miou == pytest.approx(json.loads((out / "metrics.json").read_text())["best_miou"], abs=1e-6)
    with Segmenter(out / "best.pt") as seg:
        assert seg(np.zeros((48, 80, 3), np.uint8)).mask.shape == (48, 80)


# Every CPU target and precision for resnet18; for mobilenet_v2 (depthwise convolutions) the INT8 ones,
# where its graph differs in what matters (its FP32 path is the same code, covered by resnet18).
EXPORTS = [("resnet18", t, p) for t in ("onnx", "openvino") for p in ("fp32", "int8")] + [
    ("mobilenet_v2", t, "int8") for t in ("onnx", "openvino")
]


@pytest.mark.slow
@pytest.mark.parametrize(("run", "target", "precision"), EXPORTS, indirect=["run"])
def test_export(run, target: str, precision: str, capsys: pytest.CaptureFixture[str]):
    pytest.importorskip("openvino") if target == "openvino" else None
    pytest.importorskip("nncf") if (target, precision) == ("openvino", "int8") else None
    from edgeseg import Segmenter

    out, _, val = run
    bundle, report = out / f"b-{target}-{precision}", out / f"export-{target}-{precision}.json"
    rc, _, err = run_cli(["export", out / "best.pt", "--target", target, "--precision", precision,
                          "--val-data", val, "--out", bundle, "--json", report],
                         capsys)  # fmt: skip
    assert rc == 0, err
    parity = json.loads(report.read_text())["parity"]
    assert parity["pixel_agreement"] >= (0.999 if precision == "fp32" else 0.9), parity
    manifest = json.loads((bundle / "edgeseg.json").read_text())
    assert manifest["model"]["arch"] == "smp:unet" and manifest["input"]["size_multiple"] == 32
    with Segmenter(bundle) as seg:
        assert seg(np.zeros((64, 64, 3), np.uint8)).mask.shape == (64, 64)


@pytest.mark.slow
def test_tensorrt_int8_graph_is_engine_ready(run, capsys: pytest.CaptureFixture[str]):
    from edgeseg.targets.tensorrt.graph import check_engine_ready

    out, _, _ = run
    bundle = out / "b-trt-int8"
    rc, _, err = run_cli(["export", out / "best.pt", "--target", "tensorrt", "--precision", "int8",
                          "--out", bundle], capsys)  # fmt: skip
    assert rc == 0, err
    assert check_engine_ready(bundle / "model.onnx", "int8") == []


@pytest.mark.slow
@pytest.mark.parametrize(("run", "target", "precision"), [("resnet18", "onnx", "fp32")], indirect=["run"])
def test_benchmark(run, target: str, precision: str, capsys: pytest.CaptureFixture[str]):
    """With --bundles, the onnx:fp32 bundle test_export made (it runs first) is reused."""
    out, _, val = run
    rc, _, err = run_cli(["benchmark", out / "best.pt", "--targets", f"{target}:{precision}", "--data", val,
                          "--runs", "2", "--warmup", "1", "--time-budget", "0", "--out", out / "bench",
                          "--bundles", out, "--json", out / "bench.json"], capsys)  # fmt: skip
    assert rc == 0, err
    rows = {r["name"]: r for r in json.loads((out / "bench.json").read_text())["rows"]}
    assert rows["onnx:fp32"]["agreement"] >= 0.999, rows["onnx:fp32"]
    if (out / f"b-{target}-{precision}").is_dir():
        assert rows["onnx:fp32"]["reused"] and "reusing" in err, err


def test_export_size_not_divisible_names_the_nearest(run, capsys: pytest.CaptureFixture[str]):
    out, encoder, _ = run
    rc, _, err = run_cli(["export", out / "best.pt", "--target", "onnx", "--img-size", "100x64",
                          "--out", out / "never"], capsys)  # fmt: skip
    assert rc == 2
    assert (
        f"--img-size 100x64 does not suit smp:unet(encoder={encoder}): width and height must divide by 32"
        in err
    )
    assert "e.g. 96x64" in err and not (out / "never").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--arch", "smp:nosuch"], "unknown architecture 'smp:nosuch'; choose from smp:deeplabv3"),
        (["--arch", "smp:unet", "--encoder", "resnet7"], "unknown --encoder 'resnet7' for smp:unet"),
        (["--arch", "segformerx"], "unknown --arch 'segformerx'; choose unet or smp:<arch>"),
        (
            ["--arch", "smp:unet", "--img-size", "48"],
            "does not divide by the model's stride 32; pass --img-size 64x64",
        ),
        (
            ["--arch", "smp:unet", "--encoder-weights", "missing.pt"],
            "--encoder-weights file 'missing.pt' does not exist",
        ),
    ],
)
def test_bad_arch_input_is_one_line_exit_2(tmp_path: Path, data, args, message, capsys):
    train, _ = data
    out = tmp_path / "run"
    rc, _, err = run_cli(["train", "--data", train, "--epochs", "1", "--out", out, "--quiet", *args], capsys)
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()
