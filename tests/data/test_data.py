"""Tests for edgeseg.data: image/mask I/O, the folder dataset's checks, synthetic scenes, augmentation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeseg.data import (
    SYNTHETIC_CLASSES,
    Augment,
    AugmentConfig,
    DatasetView,
    FolderDataset,
    SyntheticDataset,
    default_normalization,
    normalize,
    parse_img_size,
    read_image,
    read_mask,
    render_scene,
    resize_image,
    resize_mask,
    split_indices,
)
from edgeseg.errors import InputError

CAMVID = Path(__file__).resolve().parents[3] / "shared/data/camvid-mini"


def _rgb(h: int = 24, w: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _ids(h: int = 24, w: int = 32, n: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, (h, w), dtype=np.uint8)


Pair = tuple[np.ndarray | Image.Image, np.ndarray | Image.Image]


def make_folder(
    root: Path, pairs: dict[str, Pair], image_suffix: str = ".png", classes: list[str] | None = None
) -> Path:
    """Write ROOT/images/<stem><suffix> and ROOT/masks/<stem>.png for each (image, mask) pair."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for stem, (image, mask) in pairs.items():
        img = image if isinstance(image, Image.Image) else Image.fromarray(image)
        img.save(root / "images" / f"{stem}{image_suffix}")
        msk = mask if isinstance(mask, Image.Image) else Image.fromarray(mask)
        msk.save(root / "masks" / f"{stem}.png")
    if classes is not None:
        (root / "classes.txt").write_text("\n".join(classes) + "\n\n")
    return root


# -- imageio ------------------------------------------------------------------------------------


def test_read_image_modes(tmp_path: Path) -> None:
    rgb = _rgb()
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    out = read_image(tmp_path / "rgb.png")
    assert out.dtype == np.uint8 and out.shape == (24, 32, 3)
    np.testing.assert_array_equal(out, rgb)

    gray = rgb[:, :, 0]
    Image.fromarray(gray).save(tmp_path / "gray.png")
    assert read_image(tmp_path / "gray.png").shape == (24, 32, 1)
    np.testing.assert_array_equal(read_image(tmp_path / "gray.png", channels=3)[:, :, 2], gray)
    assert read_image(tmp_path / "rgb.png", channels=1).shape == (24, 32, 1)

    rgba = np.dstack([rgb, np.full((24, 32), 7, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.png"), rgb)

    Image.fromarray(np.dstack([gray, gray])).save(tmp_path / "la.png")
    np.testing.assert_array_equal(read_image(tmp_path / "la.png")[:, :, 0], gray)

    pal = Image.new("P", (4, 2))
    pal.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    pal.putdata([0, 1, 0, 1, 1, 1, 0, 0])
    pal.save(tmp_path / "pal.png")
    out = read_image(tmp_path / "pal.png")
    assert out.shape == (2, 4, 3)
    assert tuple(out[0, 0]) == (255, 0, 0) and tuple(out[0, 1]) == (0, 255, 0)


def test_read_image_high_depth(tmp_path: Path) -> None:
    deep = np.array([[0, 257 * 100, 65535]], dtype=np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    out = read_image(tmp_path / "deep.png")
    assert out.dtype == np.uint8 and out.shape == (1, 3, 1)
    assert out[0, :, 0].tolist() == [0, 100, 255]

    Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32)).save(tmp_path / "float.tif")
    assert read_image(tmp_path / "float.tif")[0, :, 0].tolist() == [0, 128, 255]


@pytest.mark.parametrize("content", [b"", b"not an image at all", "truncated"])
def test_read_image_bad_files(tmp_path: Path, content: bytes | str) -> None:
    path = tmp_path / "images" / "bad.png"
    path.parent.mkdir()
    if content == "truncated":
        Image.fromarray(_rgb(64, 64)).save(path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path.write_bytes(content)
    with pytest.raises(InputError, match="re-export or remove it") as exc:
        read_image(path)
    assert str(path) in str(exc.value)
    with pytest.raises(InputError, match=r"missing\.png.*file not found"):
        read_image(tmp_path / "missing.png")


def test_read_mask_conventions(tmp_path: Path) -> None:
    ids = _ids(n=5)
    Image.fromarray(ids).save(tmp_path / "ids.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "ids.png"), ids)

    pal = Image.fromarray(ids, mode="L").convert("P")  # palette image whose indices we then set
    pal.putpalette(list(np.random.default_rng(1).integers(0, 256, 768)))
    pal.putdata(ids.ravel().tolist())
    pal.save(tmp_path / "pal.png")
    assert Image.open(tmp_path / "pal.png").mode == "P"
    np.testing.assert_array_equal(read_mask(tmp_path / "pal.png"), ids)

    wide = (ids.astype(np.uint16) * 300).astype(np.uint16)
    Image.fromarray(wide).save(tmp_path / "wide.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "wide.png"), wide)

    Image.fromarray(np.dstack([ids] * 3)).save(tmp_path / "equal_rgb.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "equal_rgb.png"), ids)

    colour = np.dstack([ids * 40, ids * 10, ids]).astype(np.uint8)
    Image.fromarray(colour).save(tmp_path / "colour.png")
    with pytest.raises(InputError, match=r"colour\.png.*colour image.*one channel"):
        read_mask(tmp_path / "colour.png")


def test_resize_shapes_and_nearest() -> None:
    img = _rgb(24, 32)
    assert resize_image(img, (32, 24)) is img
    assert resize_image(img, (40, 20)).shape == (20, 40, 3)
    assert resize_image(img[:, :, :1], (40, 20)).shape == (20, 40, 1)
    mask = np.array([[0, 300], [2, 11]], dtype=np.int64)
    big = resize_mask(mask, (4, 6))
    assert big.shape == (6, 4) and big.dtype == np.int64
    assert set(np.unique(big)) == {0, 300, 2, 11}  # nearest: no invented values
    np.testing.assert_array_equal(big[:3, :2], 0)
    np.testing.assert_array_equal(big[3:, 2:], 11)


@pytest.mark.parametrize(
    ("frame_hw", "size_wh"),
    [
        ((720, 1280), (128, 128)),  # camera frame to the quickstart's input
        ((719, 1281), (320, 240)),  # odd sizes: strips only where the frame row is whole
        ((1080, 1920), (320, 240)),
        ((480, 640), (1280, 960)),  # enlarging
        ((700, 400), (64, 700)),  # taller output than input rows per strip
    ],
)
@pytest.mark.parametrize("channels", [3, 1, 0])  # 0: an HxW plane
def test_resize_in_strips_is_bit_identical(frame_hw, size_wh, channels, monkeypatch) -> None:
    from edgeseg.data import imageio

    monkeypatch.setattr(imageio, "_PARALLEL_MIN_PIXELS", 0)
    monkeypatch.setattr(imageio, "usable_cores", lambda: 3)  # three strips even on a 2-core CI box
    shape = (*frame_hw, channels) if channels else frame_hw
    img = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    one, strips = resize_image(img, size_wh), resize_image(img, size_wh, parallel=True)
    assert strips.shape == one.shape and strips.dtype == np.uint8
    assert np.array_equal(strips, one)


def test_resize_in_strips_works_in_a_forked_child() -> None:
    """A DataLoader worker is a fork of a process whose strip threads do not exist in the child."""
    import multiprocessing

    img = np.random.default_rng(0).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    expected = resize_image(img, (128, 128))
    assert np.array_equal(resize_image(img, (128, 128), parallel=True), expected)  # pool now exists
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("this platform cannot fork")
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        got = pool.apply_async(resize_image, (img, (128, 128)), {"parallel": True}).get(timeout=60)
    assert np.array_equal(got, expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("256", (256, 256)), ("480x352", (480, 352)), ("480X352", (480, 352)), ("480,352", (480, 352))],
)
def test_parse_img_size_good(text: str, expected: tuple[int, int]) -> None:
    assert parse_img_size(text) == expected


@pytest.mark.parametrize("text", ["", "0", "256x0", "-5", "abc", "1.5", "3x4x5", "x256"])
def test_parse_img_size_bad(text: str) -> None:
    with pytest.raises(InputError, match=r"--img-size must be N or WxH.*got '") as exc:
        parse_img_size(text)
    assert f"'{text}'" in str(exc.value)


# -- FolderDataset ------------------------------------------------------------------------------


def test_folder_basic_ids_and_resize(tmp_path: Path) -> None:
    pairs = {f"s{i}": (_rgb(seed=i), _ids(seed=i)) for i in (2, 0, 1)}
    pairs["s1"][1][0, 0] = 3  # the largest id appears once: num_classes must still cover it
    root = make_folder(tmp_path / "d", pairs, image_suffix=".jpg")
    ds = FolderDataset(root)
    assert len(ds) == 3 and [p[0].stem for p in ds.items] == ["s0", "s1", "s2"]
    assert ds.num_classes == 4 and ds.class_names == ["class0", "class1", "class2", "class3"]
    assert ds.channels == 3 and ds.img_size == (32, 24) and not ds.binary_255
    image, mask = ds[1]
    assert image.shape == (24, 32, 3) and image.dtype == np.uint8
    assert mask.dtype == np.int64
    np.testing.assert_array_equal(mask, pairs["s1"][1])

    small = FolderDataset(root, img_size=(40, 16))  # non-square, different aspect
    image, mask = small[0]
    assert image.shape == (16, 40, 3) and mask.shape == (16, 40)
    assert set(np.unique(mask)) <= {0, 1, 2}
    image[:] = 0  # caller edits must not reach the cache
    assert small[0][0].any()
    with pytest.raises(IndexError):
        small[3]


def test_folder_binary_255_and_ignore(tmp_path: Path) -> None:
    binary = {f"b{i}": (_rgb(seed=i), _ids(n=2, seed=i) * 255) for i in range(2)}
    ds = FolderDataset(make_folder(tmp_path / "bin", binary))
    assert ds.binary_255 and ds.num_classes == 2
    np.testing.assert_array_equal(ds[0][1], binary["b0"][1] // 255)

    ignored = {"a": (_rgb(), np.where(_ids(n=3) == 2, 255, _ids(n=3)).astype(np.uint8))}
    root = make_folder(tmp_path / "ign", ignored)
    ds = FolderDataset(root, ignore_index=255)
    assert not ds.binary_255 and ds.num_classes == 2 and ds.ignore_index == 255
    np.testing.assert_array_equal(ds[0][1], ignored["a"][1])  # 255 kept as is for the loss to skip

    three = {"a": (_rgb(), np.where(_ids() == 2, 255, 0).astype(np.uint8))}
    with pytest.raises(InputError, match=r"class id 255 but num_classes is 3.*--classes.*--ignore-index"):
        FolderDataset(make_folder(tmp_path / "three", three), num_classes=3)


def test_folder_palette_and_equal_rgb_masks(tmp_path: Path) -> None:
    ids = _ids(n=4)
    pal = Image.new("P", (32, 24))
    pal.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0] + [0] * 756)
    pal.putdata(ids.ravel().tolist())
    root = make_folder(tmp_path / "d", {"p": (_rgb(), pal), "q": (_rgb(), np.dstack([ids] * 3))})
    ds = FolderDataset(root)
    assert ds.num_classes == 4
    np.testing.assert_array_equal(ds[0][1], ids)
    np.testing.assert_array_equal(ds[1][1], ids)


def test_folder_gray_and_channels(tmp_path: Path) -> None:
    gray = {f"g{i}": (_rgb(seed=i)[:, :, 0], _ids(seed=i)) for i in range(2)}
    root = make_folder(tmp_path / "gray", gray)
    ds = FolderDataset(root)
    assert ds.channels == 1 and ds[0][0].shape == (24, 32, 1)
    assert FolderDataset(root, channels=3)[0][0].shape == (24, 32, 3)

    mixed = {"g": (_rgb()[:, :, 0], _ids()), "c": (_rgb(), _ids())}
    ds = FolderDataset(make_folder(tmp_path / "mixed", mixed))
    assert ds.channels == 3 and all(ds[i][0].shape == (24, 32, 3) for i in range(2))
    assert FolderDataset(tmp_path / "mixed", channels=1)[1][0].shape == (24, 32, 1)


def test_folder_classes_txt(tmp_path: Path) -> None:
    pairs = {"a": (_rgb(), _ids(n=2))}
    root = make_folder(tmp_path / "d", pairs, classes=["road", "car", "person"])
    ds = FolderDataset(root)
    assert ds.num_classes == 3 and ds.class_names == ["road", "car", "person"]
    assert FolderDataset(root, num_classes=3).class_names == ["road", "car", "person"]
    with pytest.raises(InputError, match=r"classes\.txt.*3 classes.*--classes is 5"):
        FolderDataset(root, num_classes=5)
    assert FolderDataset(root, class_names=["x", "y"]).class_names == ["x", "y"]

    # A train/ folder picks up the classes.txt its parent shares with val/.
    make_folder(tmp_path / "split" / "train", pairs)
    (tmp_path / "split" / "classes.txt").write_text("bg\nfg\n")
    assert FolderDataset(tmp_path / "split" / "train").class_names == ["bg", "fg"]


def test_folder_value_out_of_range_names_file(tmp_path: Path) -> None:
    pairs = {"ok": (_rgb(), _ids(n=2)), "bad": (_rgb(), _ids(n=2) * 7)}
    root = make_folder(tmp_path / "d", pairs)
    with pytest.raises(InputError) as exc:
        FolderDataset(root, num_classes=2)
    msg = str(exc.value)
    assert "bad.png" in msg and "class id 7" in msg and "num_classes is 2" in msg
    assert "--classes" in msg and "--ignore-index" in msg
    assert FolderDataset(root, num_classes=2, ignore_index=7).num_classes == 2
    assert FolderDataset(root).num_classes == 8


def _expect_error(root: Path, *needles: str, **kwargs: object) -> None:
    with pytest.raises(InputError) as exc:
        FolderDataset(root, **kwargs)  # type: ignore[arg-type]
    for needle in needles:
        assert needle in str(exc.value), (needle, str(exc.value))


def test_folder_layout_errors(tmp_path: Path) -> None:
    _expect_error(tmp_path / "nope", "nope", "does not exist")
    (tmp_path / "file").write_text("x")
    _expect_error(tmp_path / "file", "is not a folder")
    (tmp_path / "noimg" / "masks").mkdir(parents=True)
    _expect_error(tmp_path / "noimg", "images/")
    (tmp_path / "nomask" / "images").mkdir(parents=True)
    _expect_error(tmp_path / "nomask", "masks/")
    (tmp_path / "empty" / "images").mkdir(parents=True)
    (tmp_path / "empty" / "masks").mkdir()
    (tmp_path / "empty" / "images" / "notes.txt").write_text("x")
    _expect_error(tmp_path / "empty", "no images", str(tmp_path / "empty" / "images"))


def test_folder_pairing_errors(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "a", {"cat": (_rgb(), _ids())})
    Image.fromarray(_rgb()).save(root / "images" / "dog.png")
    _expect_error(root, "dog.png", "has no mask", str(root / "masks" / "dog.png"))

    root = make_folder(tmp_path / "b", {"cat": (_rgb(), _ids())})
    Image.fromarray(_ids()).save(root / "masks" / "stray.png")
    _expect_error(root, "stray.png", "has no image")

    root = make_folder(tmp_path / "c", {"cat": (_rgb(), _ids())})
    Image.fromarray(_ids(20, 30)).save(root / "masks" / "cat.png")
    _expect_error(root, "cat.png", "30x20", "32x24")

    root = make_folder(tmp_path / "d", {"a": (_rgb(), _ids()), "b": (_rgb(30, 40), _ids(30, 40))})
    _expect_error(root, "b.png", "40x30", "32x24", "--img-size")
    assert FolderDataset(root, img_size=(32, 32))[1][1].shape == (32, 32)

    root = make_folder(tmp_path / "e", {"a": (_rgb(), np.dstack([_ids(), _ids(seed=1), _ids()]))})
    _expect_error(root, str(root / "masks" / "a.png"), "colour image")


def test_folder_unreadable_files(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "m", {"a": (_rgb(), _ids()), "b": (_rgb(), _ids())})
    (root / "masks" / "b.png").write_bytes(b"garbage")
    _expect_error(root, str(root / "masks" / "b.png"), "cannot read mask")

    # A truncated image passes construction (only its header is read) and fails when read.
    root = make_folder(tmp_path / "i", {"a": (_rgb(64, 64), _ids(64, 64)), "b": (_rgb(64, 64), _ids(64, 64))})
    path = root / "images" / "b.png"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    ds = FolderDataset(root)
    assert ds[0][0].shape == (64, 64, 3)
    with pytest.raises(InputError, match="truncated") as exc:
        ds[1]
    assert str(path) in str(exc.value)


def test_folder_without_cache(tmp_path: Path) -> None:
    pairs = {"a": (_rgb(), _ids(n=2) * 255)}
    ds = FolderDataset(make_folder(tmp_path / "d", pairs), cache=False, img_size=(16, 12))
    for _ in range(2):
        image, mask = ds[0]
        assert image.shape == (12, 16, 3) and set(np.unique(mask)) <= {0, 1}


@pytest.mark.skipif(not CAMVID.is_dir(), reason=f"camvid-mini sample data not found at {CAMVID}")
def test_camvid_mini() -> None:
    ds = FolderDataset(CAMVID / "val", ignore_index=11, img_size=(480, 352))
    assert len(ds) == 34 and ds.num_classes == 11 and ds.channels == 3
    assert ds.class_names[0] == "sky" and ds.class_names[-1] == "bicyclist"
    image, mask = ds[0]
    assert image.shape == (352, 480, 3) and mask.shape == (352, 480)
    assert set(np.unique(mask)) <= set(range(12)) and (mask == 11).any()


# -- synthetic ----------------------------------------------------------------------------------


def test_synthetic_deterministic_and_varied() -> None:
    ds = SyntheticDataset(length=30, img_size=(96, 64), seed=3)
    assert ds.num_classes == 4 and ds.class_names == list(SYNTHETIC_CLASSES) and ds.channels == 3
    image, mask = ds[5]
    assert image.shape == (64, 96, 3) and image.dtype == np.uint8
    assert mask.shape == (64, 96) and mask.dtype == np.int64
    again = SyntheticDataset(length=30, img_size=(96, 64), seed=3)[5]
    np.testing.assert_array_equal(image, again[0])
    np.testing.assert_array_equal(mask, again[1])
    assert not np.array_equal(image, ds[6][0])
    assert not np.array_equal(image, SyntheticDataset(length=30, img_size=(96, 64), seed=4)[5][0])
    with pytest.raises(IndexError):
        ds[30]


def test_synthetic_scenes_have_all_classes() -> None:
    seen: set[int] = set()
    for i in range(20):
        image, mask = render_scene(np.random.default_rng([0, i]), (128, 128))
        assert mask.shape == (128, 128) and image.shape == (128, 128, 3)
        assert (mask > 0).mean() > 0.02, "a scene with (almost) no shapes"
        assert (mask == 0).mean() > 0.2, "shapes should not fill the frame"
        assert image.std() > 10  # textured, not a flat frame
        seen |= set(np.unique(mask).tolist())
    assert seen == {0, 1, 2, 3}


# -- augmentation -------------------------------------------------------------------------------


def _coord_image(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """An image whose R, G channels hold each pixel's row, col, and a random 8x8-block label mask."""
    rows, cols = np.mgrid[0:h, 0:w]
    image = np.stack([rows, cols, np.zeros_like(rows)], axis=2).astype(np.uint8)
    blocks = np.random.default_rng(0).integers(0, 7, (h // 8 + 1, w // 8 + 1))
    return image, blocks[rows // 8, cols // 8]


def _alignment(image: np.ndarray, mask: np.ndarray, base_mask: np.ndarray) -> tuple[float, float]:
    """(agreement everywhere, agreement away from block edges) of `mask` with the block decoded
    from `image`'s coordinates. Bilinear zoom can round a coordinate by one pixel, which only moves
    a block label where the decoded coordinate sits on a block's edge."""
    r = np.clip(image[:, :, 0].astype(int), 0, base_mask.shape[0] - 1)
    c = np.clip(image[:, :, 1].astype(int), 0, base_mask.shape[1] - 1)
    same = base_mask[r, c] == mask
    interior = (r % 8 > 0) & (r % 8 < 7) & (c % 8 > 0) & (c % 8 < 7)
    return float(same.mean()), float(same[interior].mean())


@pytest.mark.parametrize(("h", "w"), [(64, 64), (48, 72)])
def test_augment_keeps_image_and_mask_aligned(h: int, w: int) -> None:
    image, mask = _coord_image(h, w)
    geometric = Augment(
        AugmentConfig(hflip=0.5, vflip=0.5, rot90=True, scale=(1.0, 1.6), brightness=0, contrast=0)
    )
    rigid = Augment(
        AugmentConfig(hflip=0.5, vflip=0.5, rot90=True, scale=(1.0, 1.0), brightness=0, contrast=0)
    )
    changed = 0
    for seed in range(12):
        out_img, out_mask = rigid(image, mask, np.random.default_rng(seed))
        assert out_img.shape == image.shape and out_mask.shape == mask.shape
        assert out_img.flags.c_contiguous and out_mask.flags.c_contiguous
        assert _alignment(out_img, out_mask, mask) == (1.0, 1.0)  # flips/rotations are exact
        out_img, out_mask = geometric(image, mask, np.random.default_rng(seed))
        everywhere, interior = _alignment(out_img, out_mask, mask)
        assert interior == 1.0 and everywhere > 0.97, (seed, everywhere, interior)
        changed += not np.array_equal(out_img, image)
        # Negative control: the check must catch a transform applied to only one of the two.
        assert _alignment(np.ascontiguousarray(out_img[:, ::-1]), out_mask, mask)[1] < 0.9
        assert _alignment(np.roll(out_img, 5, axis=0), out_mask, mask)[1] < 0.9
    assert changed >= 10


def test_augment_photometric_only_changes_image() -> None:
    image, mask = _rgb(32, 32), _ids(32, 32)
    aug = Augment(
        AugmentConfig(hflip=0, vflip=0, rot90=False, scale=(1.0, 1.0), brightness=0.5, contrast=0.5)
    )
    out_img, out_mask = aug(image, mask, np.random.default_rng(1))
    np.testing.assert_array_equal(out_mask, mask)
    assert out_img.dtype == np.uint8 and not np.array_equal(out_img, image)
    # Same generator state, same result; a non-square image keeps its shape under rot90.
    np.testing.assert_array_equal(aug(image, mask, np.random.default_rng(1))[0], out_img)
    wide = Augment()(_rgb(24, 40), _ids(24, 40), np.random.default_rng(0))
    assert wide[0].shape == (24, 40, 3) and wide[1].shape == (24, 40)
    with pytest.raises(InputError):
        AugmentConfig(scale=(0.5, 1.0))


# -- normalisation and splits ---------------------------------------------------------------------


def test_normalize_values_and_shapes() -> None:
    image = np.zeros((4, 6, 3), np.uint8)
    image[0, 0] = (255, 0, 51)
    out = normalize(image, (0.5, 0.5, 0.5), (0.5, 0.25, 0.1))
    assert out.shape == (3, 4, 6) and out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_allclose(out[:, 0, 0], [1.0, -2.0, -3.0], atol=1e-5)
    np.testing.assert_allclose(out[:, 1, 1], [-1.0, -2.0, -5.0], atol=1e-5)
    batch = normalize(np.stack([image, image]), *default_normalization(3))
    assert batch.shape == (2, 3, 4, 6)
    expected = (np.array([1.0, 0.0, 0.2]) - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    np.testing.assert_allclose(batch[1, :, 0, 0], expected, atol=1e-5)
    mean, std = default_normalization(1)
    assert normalize(np.zeros((2, 2, 1), np.uint8), mean, std).shape == (1, 2, 2)
    with pytest.raises(ValueError):
        normalize(image, mean, std)


def test_split_indices() -> None:
    train, val = split_indices(50, 0.2, seed=1)
    assert (train, val) == split_indices(50, 0.2, seed=1)
    assert len(val) == 10 and not set(train) & set(val) and sorted(train + val) == list(range(50))
    assert split_indices(50, 0.2, seed=2) != (train, val)
    assert len(split_indices(2)[1]) == 1 and len(split_indices(3, 0.01)[1]) == 1
    assert len(split_indices(5, 0.99)[1]) == 4  # train keeps at least one
    for n in (0, 1):
        with pytest.raises(InputError, match="at least 2"):
            split_indices(n)


def test_dataset_view_epochs_and_attributes() -> None:
    base = SyntheticDataset(length=6, img_size=(32, 32), seed=0)
    view = DatasetView(base, [4, 1], transform=Augment(), seed=7)
    assert len(view) == 2 and view.num_classes == 4 and view.img_size == (32, 32)
    assert view.class_names == list(SYNTHETIC_CLASSES) and view.channels == 3 and view.ignore_index is None
    first = view[0]
    np.testing.assert_array_equal(first[0], view[0][0])  # deterministic per (seed, epoch, index)
    epochs = []
    for epoch in range(4):
        view.set_epoch(epoch)
        epochs.append(view[0][0])
    assert any(not np.array_equal(epochs[0], e) for e in epochs[1:])
    plain = DatasetView(base, [4, 1])
    np.testing.assert_array_equal(plain[1][1], base[1][1])


def test_data_package_does_not_import_torch() -> None:
    code = "import sys, edgeseg.data; assert 'torch' not in sys.modules, 'edgeseg.data imported torch'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
