"""What an image means vs what its bytes say: EXIF orientation, lossy masks, float frames.

Every reader goes through edgeseg.data.imageio (datasets, predict, --calib, demo folders), so each
convention is checked once at the reader and once through a command that uses it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeseg.data import FolderDataset, read_image, read_mask
from edgeseg.errors import InputError
from tests.helpers import make_checkpoint, make_dataset, run_cli

ORIENTATION = 0x0112


def _displayed(h: int = 24, w: int = 40) -> np.ndarray:
    """A landscape picture whose left half is bright and right half dark: its turn is visible."""
    img = np.full((h, w, 3), 30, np.uint8)
    img[:, : w // 2] = 220
    return img


def _phone_jpeg(path: Path, displayed: np.ndarray) -> Path:
    """Store `displayed` as a phone does: the sensor's pixels (turned), with orientation 6 (turn 90
    degrees clockwise to show)."""
    sensor = np.rot90(displayed, k=1)  # counter-clockwise; orientation 6 turns it back clockwise
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    Image.fromarray(np.ascontiguousarray(sensor)).save(path, format="JPEG", quality=95, exif=exif)
    return path


def test_exif_orientation_is_applied_by_read_image(tmp_path: Path) -> None:
    shown = _displayed()
    path = _phone_jpeg(tmp_path / "phone.jpg", shown)
    with Image.open(path) as raw:
        assert raw.size == (shown.shape[0], shown.shape[1])  # the bytes hold the sensor's portrait
    img = read_image(path)
    assert img.shape == shown.shape
    assert np.abs(img.astype(int) - shown.astype(int)).mean() < 4  # JPEG noise only, not a turn


def test_dataset_with_a_phone_photo_fits_its_displayed_mask(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    shown = _displayed()
    _phone_jpeg(root / "images" / "a.jpg", shown)
    mask = (shown[:, :, 0] > 128).astype(np.uint8)  # labelled on the displayed photo
    Image.fromarray(mask).save(root / "masks" / "a.png")
    ds = FolderDataset(root, num_classes=2)
    image, got = ds[0]
    assert image.shape[:2] == mask.shape and np.array_equal(got, mask)
    assert image[:, :5].mean() > 150 and image[:, -5:].mean() < 80  # bright half on the left, as shown


def test_predict_writes_the_mask_in_display_orientation(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    ckpt = make_checkpoint(tmp_path / "m.pt", size=(32, 32))
    photos = tmp_path / "photos"
    photos.mkdir()
    shown = _displayed()
    _phone_jpeg(photos / "a.jpg", shown)
    rc, _, err = run_cli(["predict", ckpt, photos, "--out", tmp_path / "pred"], capsys)
    assert rc == 0, err
    mask = np.asarray(Image.open(tmp_path / "pred" / "a_mask.png"))
    assert mask.shape == shown.shape[:2]


@pytest.mark.parametrize("name", ["a.jpg", "a.png"])  # a JPEG renamed .png is still lossy
def test_jpeg_masks_are_refused_with_one_line(tmp_path: Path, name: str) -> None:
    root = make_dataset(tmp_path / "data", n=2)
    (root / "masks" / "img000.png").unlink()
    mask = np.zeros((32, 32), np.uint8)
    mask[8:20, 8:20] = 2
    Image.fromarray(mask).save(root / "masks" / name.replace("a", "img000"), format="JPEG")
    with pytest.raises(InputError, match=r"mask '.*img000\.(jpg|png)' is stored as JPEG.*PNG"):
        FolderDataset(root)
    if name.endswith(".png"):
        with pytest.raises(InputError, match="lossy"):
            read_mask(root / "masks" / "img000.png")


def test_demo_folder_source_says_it_skips_jpeg_masks(tmp_path: Path) -> None:
    pytest.importorskip("cv2", reason="the demo needs OpenCV: pip install 'edgeseg[demo]'")
    from edgeseg.demo.sources import FolderSource

    root = make_dataset(tmp_path / "data", n=2)
    Image.open(root / "masks" / "img001.png").save(root / "masks" / "img001.jpg", format="JPEG")
    (root / "masks" / "img001.png").unlink()
    with pytest.warns(UserWarning, match=r"1 mask\(s\) in .* are JPEG .*not used as ground truth"):
        FolderSource(root)


def test_train_refuses_a_jpeg_mask_before_training(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = make_dataset(tmp_path / "data", n=4)
    Image.open(root / "masks" / "img001.png").save(root / "masks" / "img001.jpg", format="JPEG")
    (root / "masks" / "img001.png").unlink()
    rc, _, err = run_cli(["train", "--data", root, "--epochs", "1", "--out", tmp_path / "run"], capsys)
    assert rc == 2
    assert err.count("\n") == 1 and "is stored as JPEG" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_smeared_masks_warn_when_the_class_count_is_inferred(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "data", n=2, classes=3)
    for name in ("img000.png", "img001.png"):
        # What a JPEG round trip does to an id mask: the edges of each region pick up nearby values.
        m = np.asarray(Image.open(root / "masks" / name)).copy()
        edge = np.zeros_like(m, dtype=bool)
        edge[:-1] |= m[:-1] != m[1:]
        ys, xs = np.nonzero(edge)
        m[ys, xs] = (np.arange(ys.size) % 20 + 3).astype(np.uint8)
        Image.fromarray(m).save(root / "masks" / name)
    with pytest.warns(UserWarning, match=r"distinct ids.*lossily"):
        FolderDataset(root)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InputError, match="holds class id"):
            FolderDataset(root, num_classes=3)  # declared: stray ids are an error, no warning
        FolderDataset(make_dataset(tmp_path / "clean", n=2, classes=3))  # clean masks: no warning


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from edgeseg import Segmenter

    ckpt = make_checkpoint(tmp_path_factory.mktemp("seg") / "m.pt", size=(32, 32), seed=3)
    with Segmenter(ckpt, backend="torch") as seg:
        yield seg


def test_float_frame_in_0_1_gives_the_uint8_frames_mask(segmenter) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    want = segmenter(frame, return_probs=True)
    black = segmenter(np.zeros_like(frame), return_probs=True).probabilities
    assert np.abs(want.probabilities - black).max() > 1e-3  # the model's output follows the pixels
    for scaled in (frame.astype(np.float32) / 255.0, frame.astype(np.float64)):
        got = segmenter(scaled, return_probs=True)
        assert np.array_equal(got.mask, want.mask)
        np.testing.assert_allclose(got.probabilities, want.probabilities, atol=1e-5)
    batch = segmenter.predict_batch([frame.astype(np.float32) / 255.0], return_probs=True)
    np.testing.assert_allclose(batch[0].probabilities, want.probabilities, atol=1e-5)


def test_normalised_tensor_as_frame_is_refused(segmenter) -> None:  # type: ignore[no-untyped-def]
    frame = np.random.default_rng(1).normal(0, 1, (32, 32, 3)).astype(np.float32)
    with pytest.raises(InputError, match=r"not a normalised tensor"):
        segmenter(frame)
    with pytest.raises(InputError, match=r"0\.\.255"):
        segmenter(np.full((32, 32, 3), 300.0, np.float32))
