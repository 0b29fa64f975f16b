"""A foreign ONNX file through the command line: export, eval and predict with the options that
describe it, and bad input as one line, exit 2, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import make_checkpoint, make_dataset, make_foreign_onnx, run_cli

FACTS = [
    "--classes",
    "road,car,sky",
    "--mean",
    "0.5,0.4,0.3",
    "--std",
    "0.25,0.2,0.3",
    "--color-order",
    "rgb",
]


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("foreign-cli")
    return {
        "fixed": make_foreign_onnx(root / "fixed.onnx"),
        "dynamic": make_foreign_onnx(root / "dynamic.onnx", dynamic=True),
        "two": make_foreign_onnx(root / "two.onnx", variant="two_inputs"),
        "data": make_dataset(root / "data", n=3, size=(48, 32), classes=3),
    }


def test_export_eval_predict_a_foreign_onnx(foreign: dict[str, Path], tmp_path: Path, capsys):
    pytest.importorskip("onnxruntime")
    bundle = tmp_path / "bundle"
    rc, out, err = run_cli(
        ["export", foreign["dynamic"], "--target", "onnx", "--img-size", "48x32", "--out", bundle,
         "--json", tmp_path / "x.json", *FACTS],
        capsys,
    )  # fmt: skip
    assert rc == 0, err
    assert "parity onnx/fp32 vs the source ONNX on onnxruntime" in out and "pixel agreement 100.0000%" in out
    summary = json.loads((tmp_path / "x.json").read_text())
    assert (
        summary["parity"]["reference"].startswith("the source ONNX")
        and summary["parity"]["pixel_agreement"] == 1.0
    )
    rc, out, _ = run_cli(["info", bundle], capsys)
    assert (
        rc == 0 and f"source     {foreign['dynamic']} (ONNX" in out and "parity     vs the source ONNX" in out
    )

    # eval: the source itself (options given) and its bundle (facts from the manifest) score alike.
    rc, _, err = run_cli(
        ["eval", foreign["dynamic"], "--data", foreign["data"], "--img-size", "48x32",
         "--json", tmp_path / "e1.json", *FACTS],
        capsys,
    )  # fmt: skip
    assert rc == 0, err
    rc, _, err = run_cli(["eval", bundle, "--data", foreign["data"], "--json", tmp_path / "e2.json"], capsys)
    assert rc == 0, err
    e1, e2 = (json.loads((tmp_path / f"e{i}.json").read_text()) for i in (1, 2))
    assert e1["miou"] == pytest.approx(e2["miou"], abs=1e-6) and set(e1["iou_per_class"]) == {
        "road",
        "car",
        "sky",
    }

    preds = tmp_path / "pred"
    rc, out, err = run_cli(
        ["predict", foreign["fixed"], foreign["data"] / "images", "--out", preds, *FACTS], capsys
    )
    assert rc == 0, err
    assert sorted(p.name for p in preds.iterdir())[:3] == [
        "img000_color.png",
        "img000_mask.png",
        "img000_overlay.png",
    ]
    assert len(list(preds.iterdir())) == 9


@pytest.mark.parametrize(
    ("source", "extra", "message"),
    [
        (
            "fixed",
            ["--mean", "0.5,0.5,0.5"],
            "carries no edgeseg metadata: pass --classes, --std, --color-order",
        ),
        ("two", FACTS, "has 2 inputs ('pixel_values', 'extra'); edgeseg exports models with one image input"),
        ("fixed", [*FACTS, "--mean", "0.5,0.5"], "--mean has 2 values but the model's input has 3 channels"),
        ("fixed", [*FACTS, "--classes", "4"], "outputs 3 classes but --classes gives 4"),
        ("fixed", [*FACTS, "--std", "0.2,nan,0.2"], "--std takes finite comma-separated numbers"),
        ("dynamic", FACTS, "has a dynamic input size: give --img-size WxH"),
        ("checkpoint", ["--mean", "0.5,0.5,0.5"], "--mean apply to an ONNX source only"),
    ],
)
def test_export_bad_foreign_input_is_one_line_exit_2(
    foreign: dict[str, Path], tmp_path: Path, capsys, source: str, extra: list[str], message: str
):
    src = make_checkpoint(tmp_path / "ck.pt") if source == "checkpoint" else foreign[source]
    out = tmp_path / "out" / "bundle"
    rc, stdout, err = run_cli(["export", src, "--target", "onnx", "--out", out, *extra], capsys)
    assert rc == 2, err
    assert err.startswith("edgeseg: error: ") and message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err and stdout == ""
    assert not (tmp_path / "out").exists()


def test_eval_foreign_onnx_without_options_names_them(foreign: dict[str, Path], capsys):
    rc, _, err = run_cli(["eval", foreign["fixed"], "--data", foreign["data"]], capsys)
    assert rc == 2 and "on the command line --mean, --std, --color-order" in err and err.count("\n") == 1
