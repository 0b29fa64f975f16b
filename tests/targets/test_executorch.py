"""The ExecuTorch target (edgeseg/targets/executorch): its facts in the shared tables, the export
(fp32, int8, bounded --dynamic, --max-drop), the bare `.pte` with its own metadata, damaged files.

The backend contract (parity, batches, load/close, bad input, threads, corrupt files) runs in
tests/runtimes/test_backends.py with every other backend. Tests that need ExecuTorch skip without it,
naming the extra; the table tests run everywhere.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgeseg.errors import InputError, MissingDependencyError
from edgeseg.formats import get_target, validate_export_options
from edgeseg.manifest import read_manifest
from tests.helpers import make_checkpoint, make_dataset, run_cli

needs_executorch = pytest.mark.skipif(
    importlib.util.find_spec("executorch") is None,
    reason="executorch is not installed: pip install 'edgeseg[executorch]'",
)


def hide(monkeypatch: pytest.MonkeyPatch, *packages: str) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n in packages else real(n, *a))


# ------------------------------------------------------------------------ the tables (no ExecuTorch)
def test_the_shared_tables_know_the_target():
    from edgeseg.exporters.doctor_ops import INT8_OPS
    from edgeseg.runtimes import AUTO_PREFERENCE, artifact_kind, backend_entry

    target = get_target("ExecuTorch")
    assert target.suffixes == (".pte",) and target.precisions == ("fp32", "int8")
    assert target.options == frozenset({"dynamic"}) and target.backends == ("executorch",)
    assert {r.extra for r in target.requires} == {"executorch"}
    assert artifact_kind("model.PTE") == "executorch" and AUTO_PREFERENCE["executorch"] == ("executorch",)
    assert backend_entry("executorch").kinds == ("executorch",)
    assert "ConvTranspose" in INT8_OPS["executorch"]
    with pytest.raises(InputError, match=r"precision fp16 is not available for target executorch"):
        validate_export_options("executorch", "fp16")
    with pytest.raises(InputError, match=r"--fuse-prepost is not supported for target executorch"):
        validate_export_options("executorch", "fp32", prepost=True)


def test_without_executorch_every_way_in_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    from edgeseg.formats import ensure_packages
    from edgeseg.runtimes import available_backends, resolve_backend
    from edgeseg.segmenter import Segmenter

    hide(monkeypatch, "executorch")
    assert "executorch" not in available_backends()
    extra = r"pip install 'edgeseg\[executorch\]'"
    with pytest.raises(MissingDependencyError, match=rf"exporting to executorch needs .*{extra}"):
        ensure_packages("executorch")
    with pytest.raises(MissingDependencyError, match=rf"running executorch models needs .*{extra}"):
        resolve_backend("auto", "executorch")
    pte = tmp_path / "model.pte"
    pte.write_bytes(b"\0\0\0\0ET12")
    with pytest.raises(MissingDependencyError, match=extra):
        Segmenter(pte)


# ------------------------------------------------------------------------------------- the export
@needs_executorch
def test_fp32_bundle_and_its_bare_program(tiny_bundle: Any, tmp_path: Path):
    from edgeseg.segmenter import Segmenter

    bundle = tiny_bundle("executorch")
    m = read_manifest(bundle)
    assert (m.target, m.precision, m.model_file, sorted(m.files)) == (
        "executorch",
        "fp32",
        "model.pte",
        ["model.pte"],
    )
    assert {"executorch", "torchao", "torch"} <= set(m.tools) and m.tools["executorch"][0].isdigit()
    assert m.parity["runtime"].startswith("executorch") and m.parity["max_abs_logit_diff"] <= 1e-3
    frame = np.random.default_rng(0).integers(0, 256, (61, 97, 3), dtype=np.uint8)
    with Segmenter(bundle) as seg:  # auto: ExecuTorch for an executorch bundle
        assert seg.backend_name == "executorch" and "XNNPACK" in seg.backend.description
        mask = seg(frame).mask
    bare = shutil.copy(bundle / "model.pte", tmp_path / "alone.pte")  # no edgeseg.json beside it
    with Segmenter(bare) as seg:
        assert seg.manifest is not None and seg.manifest.input == m.input
        assert seg.class_names == m.class_names
        assert np.array_equal(seg(frame).mask, mask)


@needs_executorch
def test_int8_bundle_records_pt2e(tiny_bundle: Any):
    m = read_manifest(tiny_bundle("executorch", "int8"))
    q = m.quantization
    assert q["method"] == "pt2e XNNPACKQuantizer" and q["calib_method"] == "minmax"
    assert q["observer"].startswith("MinMaxObserver") and q["calibration_images"] > 0
    assert "outside_xnnpack" not in q  # the whole U-Net runs on XNNPACK's int8 kernels
    assert m.parity["runtime"].startswith("executorch") and m.parity["pixel_agreement"] > 0.5


@needs_executorch
def test_dynamic_program_takes_sizes_up_to_its_bounds(tiny_bundle: Any, tiny_ckpt: Path):
    from edgeseg.runtimes import create_backend
    from edgeseg.targets.executorch.export import DYNAMIC_MAX_BATCH, DYNAMIC_MAX_SCALE

    bundle = tiny_bundle("executorch", dynamic=True)
    rng = np.random.default_rng(0)
    with create_backend("executorch", bundle / "model.pte") as backend:
        (inp,) = backend.input_specs
        assert inp.shape == ("batch", 3, "height", "width")
        n = DYNAMIC_MAX_BATCH * 2 + 1  # beyond the planned batch: runs in chunks
        x = rng.normal(size=(n, 3, 48, 64)).astype(np.float32)
        whole = backend.infer({"image": x})["logits"]
        one = np.concatenate([backend.infer({"image": x[i : i + 1]})["logits"] for i in range(n)])
        assert whole.shape == (n, 4, 48, 64) and np.abs(whole - one).max() <= 1e-5
        most = 48 * DYNAMIC_MAX_SCALE
        assert backend.infer({"image": np.zeros((1, 3, most, 64), np.float32)})["logits"].shape[2] == most
        with pytest.raises(InputError, match=rf"has {most + 4} at axis 2 \(height\).* up to {most}"):
            backend.infer({"image": np.zeros((1, 3, most + 4, 64), np.float32)})
        with pytest.raises(InputError, match=r"has 50 at axis 2 \(height\).*divide by 4"):
            backend.infer({"image": np.zeros((1, 3, 50, 64), np.float32)})


@needs_executorch
def test_an_onnx_source_is_refused_in_one_line(tiny_bundle: Any, tmp_path: Path, capsys: Any):
    onnx_file = tiny_bundle("onnx") / "model.onnx"
    out = tmp_path / "b"
    rc, _, err = run_cli(["export", onnx_file, "--target", "executorch", "--out", out], capsys)
    assert rc == 2 and "torch.export" in err and len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []


@needs_executorch
@pytest.mark.parametrize("method", ["minmax", "entropy", "percentile"])
def test_calib_methods_choose_the_activation_ranges(method: str):
    """Each --calib-method is the observer the module notes name; percentile clips an outlier
    that minmax keeps (the range, and so the scale, is smaller)."""
    import torch

    from edgeseg.targets.executorch.quantize import PERCENTILE, _config

    observer = _config(method).input_activation.observer_or_fake_quant_ctr()
    x = torch.cat([torch.randn(200_000), torch.tensor([1000.0])])
    observer(x)
    scale = float(observer.calculate_qparams()[0])
    if method == "minmax":
        assert scale == pytest.approx((1000.0 - float(x.min())) / 255, rel=1e-3)
    else:  # both histogram methods leave the single outlier out of the range
        assert scale < 100 / 255, (method, PERCENTILE)


@needs_executorch
@pytest.mark.slow
def test_max_drop_search_keeps_the_first_and_last_conv_in_float(tmp_path: Path, monkeypatch: Any):
    """The shared remedies run on PT2E candidates: observers first, then the first and last conv
    module left unquantized. The drop is derived from the candidate (4 points, none with both ends in
    float), so the search's bookkeeping is what is tested; the candidates are real programs."""
    import edgeseg.targets.executorch.export as exporter
    from edgeseg.exporters import ExportConfig, export
    from edgeseg.exporters.accuracy import DropMeter

    ckpt = make_checkpoint(tmp_path / "ck.pt", size=(32, 32))
    data = make_dataset(tmp_path / "d", n=3, size=(32, 32))
    floats: list[int] = []
    real = exporter.quantize_module

    def counting(*args: Any, exclude: Any = (), **kw: Any) -> Any:
        floats.append(len(exclude))
        return real(*args, exclude=exclude, **kw)

    monkeypatch.setattr(exporter, "quantize_module", counting)
    monkeypatch.setattr(DropMeter, "drop", lambda self, path, count=None: 4.0 - 2.0 * floats[-1])
    config = ExportConfig("executorch", "int8", calib=str(data), val_data=str(data), out=str(tmp_path / "b"),
                          max_drop=0.5, parity_images=1)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = export(ckpt, config)
    q = read_manifest(result.bundle).quantization
    whats = [a["what"] for a in q["attempts"]]
    assert whats == [
        "ptq minmax",
        "ptq entropy",
        "ptq percentile",
        "ptq minmax, first and last conv in float",
    ]
    import torch

    from edgeseg.models.checkpoint import load_checkpoint

    model = load_checkpoint(ckpt).build_model()
    convs = [name for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    assert q["float_modules"] == [convs[0], convs[-1]] and q["max_drop_points"] == 0.5
    assert sorted(p.name for p in result.bundle.iterdir()) == ["edgeseg.json", "model.pte"]


# ---------------------------------------------------------------------------------- damaged files
_FUZZ = """
import sys, numpy as np
from pathlib import Path
from edgeseg.errors import EdgesegError
from edgeseg.runtimes import create_backend
good = Path(sys.argv[1]).read_bytes()
rng = np.random.default_rng(int(sys.argv[2]))
outcomes = []
for i in range(int(sys.argv[3])):
    data = bytearray(good)
    for pos in rng.integers(8, len(data), 4):
        data[pos] = int(rng.integers(0, 256))
    bad = Path(sys.argv[4]) / f"bad{i}.pte"
    bad.write_bytes(bytes(data))
    try:
        with create_backend("executorch", bad) as b:
            b.infer({"image": np.zeros((1, 3, 48, 64), np.float32)})
        outcomes.append("ran")
    except EdgesegError as exc:
        assert str(exc).count(chr(10)) == 0
        outcomes.append(type(exc).__name__)
print(" ".join(outcomes))
"""


@needs_executorch
def test_damaged_programs_are_errors_never_a_crash(tiny_bundle: Any, tmp_path: Path):
    """Bytes changed anywhere after the header: each load is an edgeseg error or a run, and the
    process lives (ExecuTorch's runtime verifies the program before it trusts it)."""
    good = tiny_bundle("executorch") / "model.pte"
    code = [sys.executable, "-c", _FUZZ, str(good), "0", "12", str(tmp_path)]
    done = subprocess.run(code, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(done.stdout.split()) == 12


@needs_executorch
def test_info_reads_a_bare_program(tiny_bundle: Any, tmp_path: Path, capsys: Any):
    bare = shutil.copy(tiny_bundle("executorch") / "model.pte", tmp_path / "m.pte")
    rc, out, err = run_cli(["info", bare, "--json", tmp_path / "info.json"], capsys)
    assert rc == 0, err
    assert "executorch" in out and "image [1, 3, 48, 64] float32" in out
    assert json.loads((tmp_path / "info.json").read_text())
