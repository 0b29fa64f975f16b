"""Outputs never clobber inputs or files a command did not write; two runs never share a destination.

Every command is listed once in COMMANDS with its inputs and output options; the tests point each
output option at the command's own inputs, at folders holding them and at a user's existing files,
and check that the command refuses before doing any work: exit code 2, one line, the workspace
byte for byte unchanged. A new command (or output option) belongs in COMMANDS.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from edgeseg._claims import claim, lock_path
from edgeseg.errors import InputError
from tests.helpers import make_checkpoint, make_dataset, run_cli


@dataclass(frozen=True)
class Workspace:
    root: Path
    ckpt: Path
    data: Path
    photos: Path
    user_file: Path  # a file of the user's that no command made
    bundle_like: Path  # a folder standing in for a bundle (refusals come before it is read)

    def inputs(self) -> list[Path]:
        return [self.ckpt, self.data, self.photos, self.bundle_like]


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    root = tmp_path_factory.mktemp("ws")
    ckpt = make_checkpoint(root / "run" / "best.pt", size=(32, 32))
    data = make_dataset(root / "data", n=2)
    photos = root / "photos"
    photos.mkdir()
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(photos / "a.png")
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(photos / "a_mask.png")  # the user's own mask
    user_file = root / "notes.json"
    user_file.write_text('{"mine": true}\n')
    bundle_like = root / "bundle"
    bundle_like.mkdir()
    (bundle_like / "edgeseg.json").write_text("{}")
    return Workspace(root, ckpt, data, photos, user_file, bundle_like)


# command -> (arguments without the outputs, {output option: default value}); values are callables
# of the workspace so one table serves every test.
Args = Callable[[Workspace], list[object]]
COMMANDS: dict[str, tuple[Args, tuple[str, ...]]] = {
    "predict": (lambda w: ["predict", w.ckpt, w.photos], ("--out", "--json")),
    "export": (lambda w: ["export", w.ckpt, "--target", "onnx"], ("--out", "--json")),
    "train": (lambda w: ["train", "--data", w.data, "--epochs", "1"], ("--out", "--json")),
    "eval": (lambda w: ["eval", w.ckpt, "--data", w.data], ("--json",)),
    "info": (lambda w: ["info", w.ckpt], ("--json",)),
    "benchmark": (lambda w: ["benchmark", w.ckpt, "--targets", "onnx:fp32"], ("--out", "--json")),
    "demo": (
        lambda w: ["demo", w.ckpt, "--source", w.data, "--headless", "--max-frames", "1"],
        ("--save", "--json"),
    ),
    "build-engine": (lambda w: ["build-engine", w.bundle_like], ("--json",)),
    "quickstart": (lambda w: ["quickstart", "--epochs", "1"], ("--json",)),
}


def _tree_digest(root: Path) -> dict[str, str]:
    """Every file under `root` with its content hash, and every folder: what a refusal must keep."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


def _refused(ws: Workspace, args: list[object], capsys: pytest.CaptureFixture) -> str:
    before = _tree_digest(ws.root)
    rc, out, err = run_cli(args, capsys)
    assert rc == 2, (args, out, err)
    assert err.startswith("edgeseg: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert _tree_digest(ws.root) == before, f"{args} changed the workspace"
    return err


def _cases() -> list[tuple[str, str]]:
    return [(cmd, opt) for cmd, (_, opts) in COMMANDS.items() for opt in opts]


# quickstart reads no files: no input for an output to equal.
READERS = [(cmd, opt) for cmd, opt in _cases() if cmd != "quickstart"]
# A folder --out is checked file by file in test_predict_never_replaces_user_files; export's --out is
# a bundle folder, replaced only with --overwrite.
SINGLE_FILE_OUTPUTS = [(cmd, opt) for cmd, opt in _cases() if opt != "--out" or cmd == "export"]


def test_the_case_lists_leave_out_only_what_they_say() -> None:
    assert {c for c, _ in _cases()} - {c for c, _ in READERS} == {"quickstart"}
    assert {o for _, o in _cases()} == {o for _, o in SINGLE_FILE_OUTPUTS}


@pytest.mark.parametrize(("command", "option"), READERS)
def test_output_equal_to_an_input_is_refused(
    ws: Workspace, command: str, option: str, capsys: pytest.CaptureFixture
) -> None:
    base = COMMANDS[command][0](ws)
    inputs = [a for a in base if isinstance(a, Path)]
    assert inputs, f"{command} reads no files: leave it out of READERS"
    for target in inputs:
        err = _refused(ws, [*base, option, target], capsys)
        assert option in err


@pytest.mark.parametrize(("command", "option"), SINGLE_FILE_OUTPUTS)
def test_existing_file_is_not_replaced_without_the_flag(
    ws: Workspace, command: str, option: str, capsys: pytest.CaptureFixture
) -> None:
    base = COMMANDS[command][0](ws)
    target: Path = ws.bundle_like if option == "--out" else ws.user_file
    err = _refused(ws, [*base, option, target], capsys)
    assert "already exists" in err and ("--overwrite" in err or "--exist-ok" in err), err


def test_predict_never_replaces_user_files(ws: Workspace, capsys: pytest.CaptureFixture) -> None:
    # The example: photos/a_mask.png is the user's, --out photos would replace it.
    err = _refused(ws, ["predict", ws.ckpt, ws.photos, "--out", ws.photos], capsys)
    assert "is also the input IMAGE_OR_DIR" in err
    err = _refused(ws, ["predict", ws.ckpt, ws.photos / "a.png", "--out", ws.photos], capsys)
    assert "a_mask.png" in err  # not an input itself, but part of the input folder
    # Into a folder holding someone else's a_mask.png: refused without --overwrite.
    other = ws.root / "elsewhere"
    other.mkdir(exist_ok=True)
    (other / "a_mask.png").write_bytes(b"not mine")
    try:
        err = _refused(ws, ["predict", ws.ckpt, ws.photos / "a.png", "--out", other], capsys)
        assert "already exists; pass --overwrite" in err
        rc, _, err = run_cli(["predict", ws.ckpt, ws.photos / "a.png", "--out", other, "--overwrite"], capsys)
        assert rc == 0, err
        assert (other / "a_mask.png").read_bytes() != b"not mine"
    finally:
        for p in other.iterdir():
            p.unlink()
        other.rmdir()


def test_export_into_a_folder_holding_its_checkpoint_is_refused(
    ws: Workspace, capsys: pytest.CaptureFixture
) -> None:
    err = _refused(
        ws, ["export", ws.ckpt, "--target", "onnx", "--out", ws.ckpt.parent, "--overwrite"], capsys
    )
    assert "holds the input CHECKPOINT" in err


def test_two_outputs_of_one_run_may_not_collide(ws: Workspace, capsys: pytest.CaptureFixture) -> None:
    same = ws.root / "same.mp4"
    err = _refused(
        ws,
        ["demo", ws.ckpt, "--source", ws.data, "--headless", "--max-frames", "1", "--save", same,
         "--json", same],
        capsys,
    )  # fmt: skip
    assert "both write" in err


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_property_outputs_among_inputs_and_existing_files_are_refused(
    ws: Workspace, capsys: pytest.CaptureFixture, data: st.DataObject
) -> None:
    command, option = data.draw(st.sampled_from(_cases()))
    base = COMMANDS[command][0](ws)
    own = [a for a in base if isinstance(a, Path)]  # this command's inputs, files and folders
    existing = sorted(p for p in ws.root.rglob("*") if p.is_file())  # anyone's files, inputs or not
    candidates = [*own, *existing]
    target = data.draw(st.sampled_from(candidates))
    _refused(ws, [*base, option, target], capsys)  # a file where a folder goes is refused too


# ------------------------------------------------------------------------------------ two runs
def test_claim_has_exactly_one_holder_among_racing_threads(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    barrier = threading.Barrier(4)
    release = threading.Event()
    won: list[int] = []
    lost: list[str] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            with claim(dest):
                won.append(i)
                release.wait(10)
        except InputError as exc:
            lost.append(str(exc))
            if len(lost) == 3:
                release.set()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert len(won) == 1 and len(lost) == 3
    assert all("is being written by another edgeseg run" in m for m in lost)
    assert not lock_path(dest).exists()  # released by the winner


def test_two_exports_to_one_destination_one_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import edgeseg.exporters.run as parity  # export calls measure_parity there
    from edgeseg.exporters import ExportConfig, export
    from edgeseg.manifest import read_manifest

    ckpt = make_checkpoint(tmp_path / "m.pt", size=(32, 32))
    dest = tmp_path / "bundle"
    cfg = ExportConfig(target="onnx", out=str(dest), overwrite=True, parity_images=1)
    lost: list[BaseException] = []
    real = parity.measure_parity

    def parity_with_a_rival(*args, **kwargs):  # type: ignore[no-untyped-def]
        # The first export holds the claim here, its artifact half-made: a second one starts now.
        def rival() -> None:
            try:
                export(ckpt, cfg)  # --overwrite does not let it replace a bundle being written
            except BaseException as exc:
                lost.append(exc)

        t = threading.Thread(target=rival)
        t.start()
        t.join(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(parity, "measure_parity", parity_with_a_rival)
    result = export(ckpt, cfg)
    assert len(lost) == 1 and isinstance(lost[0], InputError), lost
    assert re.search(r"--out '.*bundle' is being written by another edgeseg run", str(lost[0]))
    assert result.bundle == dest
    read_manifest(dest, verify=True)  # the winner's bundle, intact
    assert not lock_path(dest).exists()


@pytest.mark.parametrize(
    "args",
    [
        lambda w, d: ["export", w.ckpt, "--target", "onnx", "--out", d],
        lambda w, d: ["predict", w.ckpt, w.photos / "a.png", "--out", d],
        lambda w, d: ["train", "--data", w.data, "--epochs", "1", "--out", d],
        lambda w, d: ["benchmark", w.ckpt, "--targets", "onnx:fp32", "--out", d],
        lambda w, d: ["quickstart", "--out", d, "--epochs", "1"],
    ],
    ids=["export", "predict", "train", "benchmark", "quickstart"],
)
def test_a_destination_held_by_a_live_run_is_refused(
    ws: Workspace,
    tmp_path: Path,
    args: Callable[[Workspace, Path], list[object]],
    capsys: pytest.CaptureFixture,
) -> None:
    dest = tmp_path / "dest"
    with claim(dest):  # this process is alive: the claim is held
        rc, _, err = run_cli(args(ws, dest), capsys)
    assert rc == 2, err
    assert "is being written by another edgeseg run" in err and err.count("\n") == 1
    assert not dest.exists()


def test_import_model_to_a_path_being_written_is_refused(tmp_path: Path) -> None:
    import torch

    from edgeseg import import_model

    dest = tmp_path / "mine.pt"
    with claim(dest, "path"), pytest.raises(InputError, match="being written by another edgeseg run"):
        import_model(
            torch.nn.Conv2d(3, 2, 1), dest, classes=2, img_size=(16, 16), mean=(0.5,) * 3, std=(0.5,) * 3
        )
    assert not dest.exists()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_claim_of_a_killed_run_is_cleaned_and_reported(tmp_path: Path) -> None:
    dest = tmp_path / "bundle"
    code = (
        "import sys, time; from edgeseg._claims import claim\n"
        "with claim(sys.argv[1]) as c:\n"
        "    tmp = sys.argv[2]; c.track(tmp); __import__('os').mkdir(tmp); print('held', flush=True)\n"
        "    time.sleep(60)\n"
    )
    leftover = tmp_path / ".bundle.0123abcd.tmp"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(dest), str(leftover)], stdout=subprocess.PIPE, env=env
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"held"
    with pytest.raises(InputError, match="being written by another edgeseg run"), claim(dest):
        pass
    proc.kill()  # SIGKILL: no cleanup runs
    proc.wait()
    assert lock_path(dest).exists() and leftover.is_dir()
    with (
        pytest.warns(UserWarning, match=r"ended without finishing; removed its lock and 1 unfinished"),
        claim(dest),
    ):
        assert not leftover.exists()
    assert not lock_path(dest).exists()


def test_stale_claim_inside_a_run_folder_removes_half_written_files(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / ".last.pt.ab12cd34.tmp").write_bytes(b"half")  # an atomic write cut off by SIGKILL
    (run / "notes.tmp").write_text("the user's")
    lock_path(run).write_text(f'{{"pid": {_dead_pid()}, "host": "{os.uname().nodename}", "partial": []}}')
    with pytest.warns(UserWarning, match="ended without finishing"), claim(run):
        pass
    assert not (run / ".last.pt.ab12cd34.tmp").exists()
    assert (run / "notes.tmp").read_text() == "the user's"


def test_export_cli_after_a_killed_export_succeeds_with_one_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    ckpt = make_checkpoint(tmp_path / "m.pt", size=(32, 32))
    dest = tmp_path / "bundle"
    leftover = tmp_path / ".bundle.deadbeef.tmp"
    leftover.mkdir()
    (leftover / "model.onnx").write_bytes(b"half")
    lock_path(dest).write_text(
        f'{{"pid": {_dead_pid()}, "host": "{os.uname().nodename}", "since": "earlier", '
        f'"partial": ["{leftover}"]}}'
    )
    rc, _, err = run_cli(["export", ckpt, "--target", "onnx", "--out", dest, "--parity-images", "1"], capsys)
    assert rc == 0, err
    assert "edgeseg: warning:" in err and "ended without finishing" in err and "Traceback" not in err
    assert not leftover.exists() and (dest / "edgeseg.json").is_file()
