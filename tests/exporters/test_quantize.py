"""Quantized exports: calibration data, FP16 and INT8 bundles for ONNX Runtime and OpenVINO."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeseg.errors import InputError
from edgeseg.exporters import ExportConfig
from edgeseg.exporters.calibset import load_calibration, nncf_dataset, ort_reader
from edgeseg.exporters.source_open import open_export_source
from edgeseg.manifest import Manifest
from tests.helpers import make_checkpoint, make_dataset


def _manifest(tmp_path: Path, channels: int = 3) -> Manifest:
    path = make_checkpoint(tmp_path / "ck.pt", channels=channels, size=(32, 32))
    return open_export_source(path).draft("onnx", "fp32", (32, 32), dynamic=False)


def test_calibration_from_dataset_folder_matches_segmenter_preprocessing(tmp_path: Path) -> None:
    from edgeseg.preprocess import prepare_frame

    data = make_dataset(tmp_path / "d", n=3, size=(40, 24))
    manifest = _manifest(tmp_path)
    with pytest.warns(UserWarning, match="calibrating on 3 images"):
        calib = load_calibration(data, manifest)
    assert calib.size == 3 and calib.source == f"folder: {data}"
    assert all(x.shape == (1, 3, 32, 32) and x.dtype == np.float32 for x in calib)
    first = sorted((data / "images").iterdir())[0]
    from edgeseg.exporters.calibset import _preprocessing

    expected, _ = prepare_frame(np.asarray(Image.open(first).convert("RGB")), _preprocessing(manifest), "rgb")
    np.testing.assert_array_equal(calib.inputs[0][0], expected)
    entry = calib.to_manifest()
    assert entry["calibration_images"] == 3 and len(entry["calibration_sha256"]) == 64
    # Same images, same hash; a plain folder of images (no masks) works too.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = load_calibration(data / "images", manifest)
    assert again.sha256 == calib.sha256


def test_calibration_synthetic_gray_and_adapters(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, channels=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        calib = load_calibration(None, manifest, synthetic_images=4)
    assert calib.size == 4 and calib.inputs[0].shape == (1, 1, 32, 32)
    reader = ort_reader(calib, "image")
    seen = [reader.get_next() for _ in range(5)]
    assert [s is None for s in seen] == [False] * 4 + [True]
    reader.rewind()
    assert reader.get_next()["image"].shape == (1, 1, 32, 32)
    pytest.importorskip("nncf")
    assert len(list(nncf_dataset(calib).get_inference_data())) == 4


def test_calibration_bad_folders(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no images"):
        load_calibration(tmp_path / "empty", manifest)
    with pytest.raises(InputError, match="does not exist"):
        load_calibration(tmp_path / "nope", manifest)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match=r"x\.png"):
        load_calibration(tmp_path / "bad", manifest)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("quant")
    return make_checkpoint(root / "ck.pt", size=(32, 32)), make_dataset(root / "d", n=4, size=(32, 32))


@pytest.mark.parametrize(
    ("target", "precision", "min_agreement"),
    [("onnx", "fp16", 0.995), ("onnx", "int8", 0.9), ("openvino", "fp16", 0.995), ("openvino", "int8", 0.9)],
)
def test_quantized_export_records_method_calibration_and_drop(
    setup: tuple[Path, Path], tmp_path: Path, target: str, precision: str, min_agreement: float
) -> None:
    from edgeseg.exporters import export
    from edgeseg.manifest import read_manifest
    from edgeseg.segmenter import Segmenter

    pytest.importorskip("onnxruntime" if target == "onnx" else "openvino")
    if target == "openvino" and precision == "int8":
        pytest.importorskip("nncf")
    ckpt, data = setup
    calib = str(data) if precision == "int8" else None
    config = ExportConfig(target, precision, val_data=str(data), calib=calib, out=str(tmp_path / "b"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the small-calibration-set warning
        result = export(ckpt, config)
    manifest = read_manifest(result.bundle)
    q = manifest.quantization
    assert manifest.precision == precision and q is not None and "method" in q
    assert "miou_drop_points" in q and result.parity.pixel_agreement >= min_agreement
    if precision == "int8":
        assert q["calibration_images"] == 4 and len(q["calibration_sha256"]) == 64
    # Segmenter runs the bundle by itself, float32 frames in, masks out.
    with Segmenter(result.bundle) as seg:
        assert seg(np.zeros((20, 30, 3), np.uint8)).mask.shape == (20, 30)


def test_onnx_int8_graph_is_qdq_with_uint8_activations(setup: tuple[Path, Path], tmp_path: Path) -> None:
    import onnx

    from edgeseg.exporters import export

    pytest.importorskip("onnxruntime")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = export(
            setup[0], ExportConfig("onnx", "int8", calib_method="entropy", out=str(tmp_path / "b"))
        )
    graph = onnx.load(str(result.bundle / "model.onnx")).graph
    quants = [n for n in graph.node if n.op_type == "QuantizeLinear"]
    assert quants and all(i.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for i in graph.input)
    zero_points = {i.name: i for i in graph.initializer}
    assert all(zero_points[q.input[2]].data_type == onnx.TensorProto.UINT8 for q in quants)
    assert result.manifest.quantization["calibration_method"] == "entropy"


def test_cli_export_int8_bad_input_is_one_line_exit_2(
    setup: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edgeseg.cli import main

    (tmp_path / "empty").mkdir()
    args = ["export", str(setup[0]), "--target", "onnx", "--precision", "int8", "--out", str(tmp_path / "b")]
    assert main([*args, "--calib", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip()
    assert "holds no images" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "b").exists()
    assert main([*args, "--calib-method", "mse"]) == 2
    assert "unknown --calib-method 'mse'" in capsys.readouterr().err


def test_nncf_messages_survive_the_stream_it_was_imported_under(tmp_path: Path) -> None:
    """NNCF binds its log handler to the stdout of its import; a notebook cell's or a test's capture
    closes that stream. Its messages must still arrive (warnings, through Python logging) and never
    as "--- Logging error ---" tracebacks."""
    import subprocess
    import sys

    pytest.importorskip("nncf")
    script = (
        "import io, logging, sys\n"
        "import numpy as np\n"
        "from edgeseg.exporters.calibset import CalibrationSet, nncf_dataset\n"
        "captured, real = io.StringIO(), sys.stdout\n"
        "sys.stdout = captured\n"
        "nncf_dataset(CalibrationSet((np.zeros((1, 3, 8, 8), np.float32),), 'probe', ''))\n"
        "sys.stdout = real\n"
        "captured.close()\n"
        "log = logging.getLogger('nncf')\n"
        "log.info('an info line')\n"
        "log.warning('a warning line')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Logging error" not in done.stderr, done.stderr
    assert "a warning line" in done.stderr and "an info line" not in done.stderr + done.stdout
