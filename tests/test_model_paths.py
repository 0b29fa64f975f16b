"""Model paths: a folder given where a model file is expected says it is a folder and what it holds
(every command that takes a model), and a bundle replaced through a symbolic link leaves nothing
beside it."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import make_dataset, run_cli

Args = Callable[[Path, Path, Path], list[Any]]  # (run folder, dataset, a bundle) -> CLI args

# Every command and option that takes a model (checkpoint, bundle, .onnx, .xml): given the run folder
# instead of the checkpoint inside it, the usual slip.
COMMANDS: dict[str, Args] = {
    "export": lambda run, data, b: ["export", run, "--target", "onnx", "--out", run.parent / "exported"],
    "eval": lambda run, data, b: ["eval", run, "--data", data],
    "predict": lambda run, data, b: ["predict", run, data / "images", "--out", run.parent / "p"],
    "benchmark": lambda run, data, b: [
        "benchmark",
        run,
        "--targets",
        "onnx:fp32",
        "--out",
        run.parent / "bm",
    ],
    "info": lambda run, data, b: ["info", run],
    "doctor": lambda run, data, b: ["doctor", run],
    "train-resume": lambda run, data, b: ["train", "--resume", run],
    "demo": lambda run, data, b: ["demo", run, "--headless", "--max-frames", "1"],
    "demo-baseline": lambda run, data, b: ["demo", b, "--baseline", run, "--headless", "--max-frames", "1"],
    "build-engine": lambda run, data, b: ["build-engine", run],
}


@pytest.fixture(scope="module")
def bundle(tiny_bundle: Callable[..., Path]) -> Path:
    pytest.importorskip("onnxruntime", reason="pip install 'edgeseg[onnx]'")
    return tiny_bundle("onnx")


@pytest.mark.parametrize("command", COMMANDS, ids=list(COMMANDS))
def test_a_folder_given_as_a_model_says_so_and_what_it_holds(
    command: str, tiny_ckpt: Path, bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if command.startswith("demo"):
        pytest.importorskip("cv2", reason="the demo needs OpenCV: pip install 'edgeseg[demo]'")
    run = tmp_path / "runs" / "x"
    run.mkdir(parents=True)
    shutil.copy(tiny_ckpt, run / "best.pt")
    (run / "metrics.json").write_text("{}")
    data = make_dataset(tmp_path / "data", n=2)
    rc, _, err = run_cli(COMMANDS[command](run, data, bundle), capsys)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1, err
    assert f"'{run}' is a folder, not " in lines[0] and f"'{run / 'best.pt'}'" in lines[0], lines[0]
    assert "does not exist" not in lines[0] and "metrics.json" not in lines[0]


def test_python_entry_points_say_the_same(tiny_ckpt: Path, tmp_path: Path) -> None:
    from edgeseg import Segmenter
    from edgeseg.errors import InputError
    from edgeseg.models.checkpoint import load_checkpoint

    shutil.copy(tiny_ckpt, tmp_path / "last.pt")
    for call in (lambda: Segmenter(tmp_path), lambda: load_checkpoint(tmp_path)):
        with pytest.raises(InputError, match=r"is a folder, not .*last\.pt"):
            call()


# ------------------------------------------------------------------------------- replacing folders
def _bundle_like(path: Path, tag: str) -> Path:
    path.mkdir(parents=True)
    (path / "edgeseg.json").write_text(json.dumps({"tag": tag}))
    return path


@pytest.mark.parametrize("kind", ["absent", "folder", "link-to-folder", "dangling-link", "link-to-file"])
def test_replace_folder_leaves_nothing_beside_and_never_follows_a_link(kind: str, tmp_path: Path) -> None:
    from edgeseg._io import replace_folder

    parent = tmp_path / "out"
    parent.mkdir()
    elsewhere = _bundle_like(tmp_path / "elsewhere" / "v1", "old")
    dest = parent / "current"
    if kind == "folder":
        _bundle_like(dest, "old")
    elif kind == "link-to-folder":
        dest.symlink_to(elsewhere, target_is_directory=True)
    elif kind == "dangling-link":
        dest.symlink_to(tmp_path / "gone")
    elif kind == "link-to-file":
        dest.symlink_to(elsewhere / "edgeseg.json")
    new = _bundle_like(parent / ".current.1234abcd.tmp", "new")
    replace_folder(new, dest)
    assert dest.is_dir() and not dest.is_symlink()
    assert json.loads((dest / "edgeseg.json").read_text()) == {"tag": "new"}
    assert sorted(p.name for p in parent.iterdir()) == ["current"]  # no .current.*.old, no temporary
    assert json.loads((elsewhere / "edgeseg.json").read_text()) == {"tag": "old"}  # a link's target stays


def test_export_overwrite_through_a_link_leaves_no_old_folder(
    tiny_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("onnxruntime", reason="pip install 'edgeseg[onnx]'")
    old = _bundle_like(tmp_path / "bundles" / "v1", "old")
    link = tmp_path / "current"
    link.symlink_to(old, target_is_directory=True)
    rc, _, err = run_cli(
        ["export", tiny_ckpt, "--target", "onnx", "--out", link, "--overwrite", "--parity-images", "1"],
        capsys,
    )
    assert rc == 0, err
    assert sorted(os.listdir(tmp_path)) == ["bundles", "current"], os.listdir(tmp_path)
    assert not link.is_symlink() and (link / "model.onnx").is_file()
    assert json.loads((old / "edgeseg.json").read_text()) == {"tag": "old"}
