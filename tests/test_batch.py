"""The batch rule: a command over many files does every file it can read, names each one it cannot
in one line, says what it did, and exits 2 when it skipped any; and one listing of a folder's images
(`edgeseg.data.list_images`) for every reader, so junk that training skips is skipped everywhere."""

from __future__ import annotations

import ast
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import make_dataset, run_cli

ROOT = Path(__file__).resolve().parents[1]


def _truncate(path: Path) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


def _add_junk(folder: Path) -> None:
    """What real folders hold beside their images: macOS resource forks and metadata, hidden files,
    Windows thumbnails, notes, a subfolder named like an image. None of it may be read as an image."""
    (folder / "._img000.png").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (folder / ".hidden.png").write_bytes(b"not a png")
    (folder / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (folder / "notes.txt").write_text("labelled by hand\n")
    (folder / "sub.png").mkdir()


@pytest.fixture
def junk_data(tmp_path: Path) -> Path:
    data = make_dataset(tmp_path / "data", n=3)
    _add_junk(data / "images")
    _add_junk(data / "masks")
    return data


# Every reader of an image folder, as what it reads: the names of the images it would use. A new
# reader joins this table (and the listing check below finds one that lists folders by itself).
def _training(data: Path) -> list[str]:
    from edgeseg.data import FolderDataset

    return [p.name for p, _ in FolderDataset(data).items]  # train, --val-data, benchmark --data


def _eval(data: Path) -> list[str]:
    from edgeseg.data import FolderDataset

    ds = FolderDataset(data, skip_unreadable=True)
    assert not ds.skipped
    return [p.name for p, _ in ds.items]


def _calib(data: Path) -> list[str]:
    from edgeseg.exporters.calibset import _image_files

    return [p.name for p in _image_files(data)]  # what load_calibration reads (also the doctor's)


def _calib_images_folder(data: Path) -> list[str]:
    from edgeseg.exporters.calibset import _image_files

    return [p.name for p in _image_files(data / "images")]


def _predict(data: Path) -> list[str]:
    from edgeseg.cli.predict import _collect_images

    return [p.name for p in _collect_images([data / "images"])]


def _demo(data: Path) -> list[str]:
    pytest.importorskip("cv2", reason="the demo needs OpenCV: pip install 'edgeseg[demo]'")
    from edgeseg.demo.sources import FolderSource, SourceEnded

    source = FolderSource(data)
    source.open()
    names = [p.name for p in source.files]
    frames, truths = 0, 0
    while True:
        try:
            _, truth = source.read()
        except SourceEnded:
            break
        frames, truths = frames + 1, truths + (truth is not None)
    assert frames == truths == len(names) and not source.skipped
    return names


READERS: dict[str, Callable[[Path], list[str]]] = {
    "training": _training,
    "eval": _eval,
    "calib-dataset": _calib,
    "calib-images-folder": _calib_images_folder,
    "predict": _predict,
    "demo-folder": _demo,
}


@pytest.mark.parametrize("reader", READERS, ids=list(READERS))
def test_every_reader_skips_the_files_training_skips(junk_data: Path, reader: str) -> None:
    assert READERS[reader](junk_data) == ["img000.png", "img001.png", "img002.png"]


# Modules that list folders for other things than images (bundle files, lock temporaries, engine
# caches); every other listing of a folder goes through edgeseg.data.list_images.
_LISTS_OTHER_THINGS = {
    "edgeseg/data/files.py": "the listing itself",
    "edgeseg/_claims.py": "a destination's temporaries",
    "edgeseg/_reuse.py": "a folder's files, for its content digest",
    "edgeseg/bench/reuse.py": "the bundles in a --bundles folder",
    "edgeseg/_paths.py": "the model files in a folder given as a model, for the message",
    "edgeseg/manifest.py": "a bundle's files",
    "edgeseg/exporters/run.py": "whether a folder is empty",
    "edgeseg/targets/tensorrt/cache.py": "cached engines",
    "benchmarks/_bench.py": "open file descriptors",
}
_LISTING_CALLS = {"iterdir", "glob", "rglob", "listdir", "scandir", "walk"}


def test_no_module_lists_an_image_folder_by_itself() -> None:
    found = []
    for path in sorted([*(ROOT / "edgeseg").rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py")]):
        rel = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in _LISTING_CALLS
                and rel not in _LISTS_OTHER_THINGS
            ):
                found.append(f"{rel}:{node.lineno} .{node.func.attr}()")
    assert not found, f"list image folders with edgeseg.data.list_images: {found}"


# ------------------------------------------------------------------------------------ predict
@pytest.fixture
def bundle(tiny_bundle: Callable[..., Path]) -> Path:
    pytest.importorskip("onnxruntime", reason="pip install 'edgeseg[onnx]'")
    return tiny_bundle("onnx")


def _folder_with_bad_files(tmp_path: Path, n: int = 12) -> tuple[Path, list[str]]:
    data = make_dataset(tmp_path / "data", n=n, size=(40, 30))
    _truncate(data / "images" / "img001.png")  # a header, then nothing: decoding fails
    (data / "images" / "img004.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    _add_junk(data / "images")
    return data, ["img001.png", "img004.png"]


def test_predict_writes_every_readable_image_and_names_the_rest_in_both_modes(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, bad = _folder_with_bad_files(tmp_path)
    good = sorted(p.stem for p in (data / "images").glob("img*.png") if p.name not in bad)
    masks = {}
    for mode in ("latency", "throughput"):
        out, report = tmp_path / mode, tmp_path / f"{mode}.json"
        rc, stdout, err = run_cli(
            ["predict", bundle, data / "images", "--out", out, "--mode", mode, "--json", report], capsys
        )
        assert rc == 2, err
        lines = err.strip().splitlines()
        assert len(lines) == len(bad) + 1, err  # one line per skipped file, then the summary
        for name, line in zip(bad, lines, strict=False):
            assert line.startswith("edgeseg: warning: skipped image") and name in line
        assert lines[-1].startswith("edgeseg: error: 2 of 12 images could not be read"), lines[-1]
        assert "the other 10 were segmented" in lines[-1] and str(out) in lines[-1]
        assert f"files for 10 image(s) to {out}; skipped 2 unreadable image(s)" in stdout
        assert sorted(p.name for p in out.iterdir()) == sorted(
            f"{s}_{k}.png" for s in good for k in ("mask", "overlay", "color")
        )
        summary = json.loads(report.read_text())
        assert summary["written"] == 10 and [Path(s["path"]).name for s in summary["skipped"]] == bad
        assert all("truncated or not an image" in s["reason"] for s in summary["skipped"])
        masks[mode] = {p.name: np.asarray(Image.open(p)) for p in sorted(out.glob("*_mask.png"))}
    assert masks["latency"].keys() == masks["throughput"].keys()
    for name, mask in masks["latency"].items():
        assert np.array_equal(mask, masks["throughput"][name]), name


def test_predict_with_no_readable_image_is_one_error_per_file_and_writes_nothing(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    for name in ("a.png", "b.jpg"):
        (folder / name).write_bytes(b"garbage")
    rc, _, err = run_cli(["predict", bundle, folder, "--out", tmp_path / "o"], capsys)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 3, err
    assert "none of the 2 images could be read" in lines[-1]
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())


# --------------------------------------------------------------------------------------- eval
@pytest.mark.parametrize("model", ["checkpoint", "bundle"])
def test_eval_scores_the_readable_pairs_and_names_the_rest(
    model: str, tiny_ckpt: Path, bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tiny_ckpt if model == "checkpoint" else bundle
    data = make_dataset(tmp_path / "data", n=8, size=(64, 48), classes=4)
    clean = tmp_path / "clean"
    shutil.copytree(data, clean)
    _truncate(data / "images" / "img002.png")  # a whole header: found only when decoded
    (data / "images" / "img004.png").write_bytes(b"not an image")  # no header at all
    _truncate(data / "masks" / "img006.png")
    _add_junk(data / "images")
    for stem in ("img002", "img004", "img006"):
        for sub in ("images", "masks"):
            (clean / sub / f"{stem}.png").unlink()
    rc, _, err = run_cli(["eval", path, "--data", clean, "--json", tmp_path / "clean.json"], capsys)
    assert rc == 0, err
    rc, stdout, err = run_cli(["eval", path, "--data", data, "--json", tmp_path / "e.json"], capsys)
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 4 and all(ln.startswith("edgeseg: warning: skipped image") for ln in lines[:3]), err
    assert "cannot read mask" in err and "img006.png" in err
    assert lines[-1].startswith("edgeseg: error: 3 of 8 images could not be read"), lines[-1]
    assert "the other 5 were scored" in lines[-1] and "mIoU" in stdout
    got = json.loads((tmp_path / "e.json").read_text())
    want = json.loads((tmp_path / "clean.json").read_text())
    assert got["images"] == want["images"] == 5
    assert got["miou"] == want["miou"] and got["iou_per_class"] == want["iou_per_class"]
    assert sorted(Path(s["path"]).name for s in got["skipped"]) == ["img002.png", "img004.png", "img006.png"]
    assert want["skipped"] == []


def test_training_still_refuses_an_unreadable_file(tmp_path: Path) -> None:
    """Training and the export gates take no partial data: the batch rule is for commands whose
    results are per file (the refusal names the file before any work, as before)."""
    from edgeseg.data import FolderDataset
    from edgeseg.errors import InputError

    data = make_dataset(tmp_path / "data", n=3)
    _truncate(data / "masks" / "img001.png")
    with pytest.raises(InputError, match=r"img001\.png"):
        FolderDataset(data)


# --------------------------------------------------------------------------------------- demo
def test_demo_folder_source_shows_the_readable_images_and_names_the_rest(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("cv2", reason="the demo needs OpenCV: pip install 'edgeseg[demo]'")
    data, bad = _folder_with_bad_files(tmp_path, n=6)
    args = ["demo", bundle, "--source", data, "--headless", "--no-compare", "--backend", "onnxruntime"]
    rc, stdout, err = run_cli([*args, "--json", tmp_path / "d.json"], capsys)
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert [ln for ln in lines if "skipped image" in ln] == lines[:2] and all(
        name in line for name, line in zip(bad, lines, strict=False)
    ), err
    assert lines[-1].startswith("edgeseg: error: 2 images could not be read"), lines[-1]
    summary = json.loads((tmp_path / "d.json").read_text())
    assert summary["frames"] == 4 and summary["ended"] == "source_ended"
    assert [Path(s["path"]).name for s in summary["skipped"]] == bad
    assert "skipped 2 unreadable file(s)" in stdout
    # Replayed, a bad file is named once, not on every pass.
    rc, _, err = run_cli([*args, "--loop", "--max-frames", "12"], capsys)
    assert rc == 2 and err.count("skipped image") == 2, err
    # Nothing readable: one line per file and the end, with or without --loop.
    for name in ("img000.png", "img002.png", "img003.png", "img005.png"):
        (data / "images" / name).write_bytes(b"broken")
    for extra in ([], ["--loop"]):
        rc, _, err = run_cli([*args, *extra], capsys)
        assert rc == 2 and "none of the 6 images could be read" in err.strip().splitlines()[-1], err
