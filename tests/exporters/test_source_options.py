"""The data options every export source takes: a checkpoint trained by edgeseg, a module brought in
with `import_model` and a foreign ONNX file are checked on labelled data with an ignore label the
same way, and every refusal's advice about it is an option the same command accepts."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeseg.manifest import read_manifest
from tests.helpers import make_checkpoint, make_dataset, make_foreign_onnx, run_cli

SIZE = (48, 32)
CLASSES = 4  # c0..c3; in the "void" data, class 3 is what the labels leave unlabelled
ONNX_FACTS = [
    "--classes",
    "c0,c1,c2,c3",
    "--mean",
    "0.5,0.4,0.3",
    "--std",
    "0.25,0.2,0.3",
    "--color-order",
    "RGB",
]
KINDS = ("checkpoint", "imported", "onnx")


def _imported(path: Path) -> Path:
    import torch
    from torch import nn

    import edgeseg

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, CLASSES, 1)).eval()
    names = [f"c{i}" for i in range(CLASSES)]
    return edgeseg.import_model(net, path, classes=names, img_size=SIZE, mean=(0.5,) * 3, std=(0.25,) * 3)


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sources")
    return {
        "checkpoint": make_checkpoint(root / "best.pt", classes=CLASSES, size=SIZE),
        "imported": _imported(root / "mine.pt"),
        "onnx": make_foreign_onnx(root / "foreign.onnx", size=SIZE, classes=CLASSES),
    }


def _relabel(root: Path, mark: int, classes_txt: list[str] | None) -> Path:
    """A labelled folder whose masks hold `mark` on a border (unlabelled pixels), ids below it else."""
    make_dataset(root, n=3, size=SIZE, classes=min(CLASSES, mark))
    for mask_path in sorted((root / "masks").glob("*.png")):
        mask = np.array(Image.open(mask_path))
        mask[:3, :] = mark
        Image.fromarray(mask).save(mask_path)
    if classes_txt is not None:
        (root / "classes.txt").write_text("\n".join(classes_txt) + "\n")
    return root


def _export_args(kind: str, src: Path, data: Path, out: Path) -> list[object]:
    facts = ONNX_FACTS if kind == "onnx" else []
    return ["export", src, "--target", "onnx", "--val-data", data, "--out", out, *facts]


def _advised(err: str) -> list[str]:
    found = re.findall(r"pass (--ignore-index \d+)", err)
    assert found, f"no --ignore-index advice in: {err}"
    return found[0].split()


@pytest.mark.parametrize(
    ("labels", "mark", "names"),
    [("unlabelled-mark", 255, None), ("void-class", 3, ["c0", "c1", "c2"])],
)
@pytest.mark.parametrize("kind", KINDS)
def test_ignore_label_advice_is_accepted_by_every_source(
    sources: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, labels: str,
    mark: int, names: list[str] | None,
):  # fmt: skip
    """VOC-style masks (255 around objects) and CamVid-style ones (11 classes + void, the model's last
    class): the refusal names the --ignore-index that fits, and the same command then exports."""
    pytest.importorskip("onnxruntime")
    data = _relabel(tmp_path / "val", mark, names)
    args = _export_args(kind, sources[kind], data, tmp_path / "bundle")
    rc, _, err = run_cli(args, capsys)
    assert rc == 2 and "Traceback" not in err
    assert "--classes" not in err.replace("give a --classes", "")  # never an option the user did not give
    advice = _advised(err)
    assert advice == ["--ignore-index", str(mark)]
    assert not (tmp_path / "bundle").exists()
    rc, out, err = run_cli([*args, *advice], capsys)
    assert rc == 0, err
    manifest = read_manifest(tmp_path / "bundle")
    assert manifest.ignore_index == mark
    parity = manifest.parity or {}
    assert parity["miou_pytorch_vs_gt"] is not None and "mIoU vs truth" in out
    if labels == "void-class":
        # The model's void class has no truth (the labels leave it unlabelled): not scored.
        assert parity["classes"]["iou_pytorch_vs_gt"]["c3"] is None
        assert parity["classes"]["gt_pixels"]["c3"] == 0


def test_checkpoint_refuses_network_facts_but_takes_the_ignore_label(
    sources: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    args = ["export", sources["checkpoint"], "--target", "onnx", "--out", tmp_path / "b"]
    rc, _, err = run_cli([*args, "--classes", "4"], capsys)
    assert rc == 2 and "--classes apply to an ONNX source only" in err
    rc, _, err = run_cli([*args, "--ignore-index", "7"], capsys)
    assert rc == 0, err
    assert read_manifest(tmp_path / "b").ignore_index == 7
    import edgeseg  # the Python entry point takes it for a model file too

    result = edgeseg.export(sources["checkpoint"], target="onnx", ignore_index=9, out=str(tmp_path / "c"))
    assert result.manifest.ignore_index == 9


def test_import_model_records_the_ignore_label(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """A model imported with ignore_index is checked on such data without any option."""
    pytest.importorskip("onnxruntime")
    from torch import nn

    import edgeseg
    from edgeseg.errors import InputError
    from edgeseg.models.checkpoint import load_checkpoint

    net = nn.Conv2d(3, CLASSES, 1).eval()
    kwargs = {"classes": CLASSES, "img_size": SIZE, "mean": (0.5,) * 3, "std": (0.25,) * 3}
    with pytest.raises(InputError, match=r"ignore_index must be a label id"):
        edgeseg.import_model(net, tmp_path / "bad.pt", ignore_index=-1, **kwargs)  # type: ignore[arg-type]
    assert not (tmp_path / "bad.pt").exists()
    path = edgeseg.import_model(net, tmp_path / "m.pt", ignore_index=255, **kwargs)  # type: ignore[arg-type]
    assert load_checkpoint(path).ignore_index == 255
    data = _relabel(tmp_path / "val", 255, None)
    rc, _, err = run_cli(
        ["export", path, "--target", "onnx", "--val-data", data, "--out", tmp_path / "b"], capsys
    )
    assert rc == 0, err
    assert read_manifest(tmp_path / "b").ignore_index == 255


def test_default_bundles_of_imported_models_are_named_after_their_files(tmp_path: Path):
    """Two models imported into one folder export, by default, to two folders (not both to
    imported-onnx-fp32); a trained checkpoint keeps its architecture's name."""
    pytest.importorskip("onnxruntime")
    from edgeseg.exporters import ExportConfig, export

    a, b = _imported(tmp_path / "road.pt"), _imported(tmp_path / "lane.pt")
    config = ExportConfig(target="onnx", parity_images=1)
    bundles = [export(path, config).bundle for path in (a, b)]
    assert [p.name for p in bundles] == ["road-onnx-fp32", "lane-onnx-fp32"]
    ckpt = make_checkpoint(tmp_path / "best.pt", classes=CLASSES, size=SIZE)
    assert export(ckpt, config).bundle.name == "unet-onnx-fp32"
