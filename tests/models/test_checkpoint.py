from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from edgeseg.errors import InputError
from edgeseg.models.checkpoint import Checkpoint, Normalization, load_checkpoint, save_checkpoint
from edgeseg.models.unet import UNet


def _ckpt(model: UNet) -> Checkpoint:
    return Checkpoint(
        model_config=model.config,
        class_names=["road", "car"],
        normalization=Normalization((0.5,), (0.25,), "GRAY"),
        img_size=(48, 32),
        ignore_index=255,
        training={"best_miou": 0.5},
    )


def test_round_trip_keeps_weights_and_metadata(tmp_path: Path):
    model = UNet(1, 2, depth=2, width=4).eval()
    path = save_checkpoint(tmp_path / "m.pt", _ckpt(model), model)
    loaded = load_checkpoint(path)
    assert loaded.class_names == ["road", "car"]
    assert loaded.img_size == (48, 32) and loaded.ignore_index == 255
    assert loaded.normalization == Normalization((0.5,), (0.25,), "GRAY")
    assert loaded.training["best_miou"] == 0.5
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict[name]), name
    x = torch.randn(1, 1, 32, 48)
    with torch.no_grad():  # built channels_last: same weights, another conv algorithm, so not bit-exact
        torch.testing.assert_close(model(x), loaded.build_model()(x), rtol=1e-5, atol=1e-5)
    assert not list(tmp_path.glob("*.tmp")), "temporary file left behind"


class Evil:
    def __reduce__(self):  # pragma: no cover - would only run if unpickled
        return (print, ("pwned",))


def test_pickled_code_is_refused(tmp_path: Path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "edgeseg.checkpoint", "payload": Evil()}, path)
    with pytest.raises(InputError, match=r"refusing to load .*evil\.pt.*pickled Python objects"):
        load_checkpoint(path)


def test_plain_pickle_refused(tmp_path: Path):
    path = tmp_path / "plain.pt"
    path.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(InputError, match=r"plain\.pt"):
        load_checkpoint(path)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04garbage"])
def test_garbage_files_are_clear_errors(tmp_path: Path, content: bytes):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(InputError, match=r"bad\.pt"):
        load_checkpoint(path)


def test_truncated_checkpoint(tmp_path: Path):
    model = UNet(3, 2, depth=2, width=4)
    path = save_checkpoint(tmp_path / "m.pt", _ckpt(model), model)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"m\.pt"):
        load_checkpoint(path)


def test_state_dict_without_header_is_explained(tmp_path: Path):
    path = tmp_path / "sd.pt"
    torch.save(UNet(3, 2, depth=2, width=4).state_dict(), path)
    with pytest.raises(InputError, match="not an edgeseg checkpoint"):
        load_checkpoint(path)


def test_missing_file(tmp_path: Path):
    with pytest.raises(InputError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")


def test_failed_save_leaves_previous_file_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    model = UNet(3, 2, depth=2, width=4)
    path = save_checkpoint(tmp_path / "m.pt", _ckpt(model), model)
    before = path.read_bytes()

    def boom(obj, f, *a, **k):
        if hasattr(f, "write"):  # save_checkpoint writes through a file object
            f.write(b"partial")
        else:
            Path(f).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(path, _ckpt(model), model)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]
    assert zipfile.is_zipfile(io.BytesIO(before))


def test_written_files_get_the_umask_mode_not_mkstemps_0600(tmp_path: Path):
    import os
    import stat

    from edgeseg import _io

    umask = os.umask(0)
    os.umask(umask)
    path = tmp_path / "x.json"
    _io.write_json(path, {"a": 1})
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
