"""Every exported precision through `Segmenter`, against the PyTorch checkpoint on the same frames.

Tolerances per precision: FP32 >= 99.9 % of pixels, FP16 >= 99.5 %, INT8 judged by mIoU of its
masks against PyTorch's (int8 moves class boundaries by a pixel or so; what matters is the masks).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeseg.evaluation.metrics import ConfusionMatrix

pytest.importorskip("onnxruntime", reason="pip install 'edgeseg[onnx]'")
pytest.importorskip("openvino", reason="pip install 'edgeseg[openvino]'")

CASES = [(t, p) for t in ("onnx", "openvino") for p in ("fp32", "fp16", "int8")]


@pytest.fixture(scope="module")
def trained(trained_tiny: tuple[Path, Path]) -> tuple[Path, Path]:
    """A briefly trained model, the session's (conftest.py): an untrained one outputs near-constant
    masks that any precision keeps. Read-only."""
    return trained_tiny


@pytest.mark.parametrize(("target", "precision"), CASES, ids=[f"{t}-{p}" for t, p in CASES])
def test_segmenter_agrees_with_pytorch_per_precision(trained, tmp_path: Path, target: str, precision: str):
    from edgeseg.data import read_image
    from edgeseg.exporters import ExportConfig, export
    from edgeseg.segmenter import Segmenter

    if target == "openvino" and precision == "int8":
        pytest.importorskip("nncf", reason="pip install 'edgeseg[nncf]'")
    ckpt, data = trained
    calib = str(data) if precision == "int8" else None
    bundle = export(
        ckpt, ExportConfig(target=target, precision=precision, calib=calib, out=str(tmp_path / "b"))
    ).bundle
    frames = [read_image(p) for p in sorted((data / "images").iterdir())]
    frames += [np.ascontiguousarray(f[3:-2, 1:]) for f in frames[:4]]  # other (odd) sizes too
    with Segmenter(ckpt, input_format="rgb") as ref, Segmenter(bundle, input_format="rgb") as seg:
        assert seg.manifest is not None and seg.manifest.precision == precision
        # The agreement below holds because the precision asked is the one run: never bf16 unasked.
        assert "bf16" not in seg.backend.executed_precision, seg.backend.executed_precision
        reference = ref.predict_batch(frames)
        got = seg.predict_batch(frames)
    cm = ConfusionMatrix(len(ref.class_names))
    agree = []
    for r, g in zip(reference, got, strict=True):
        assert g.mask.shape == r.mask.shape
        cm.update(g.mask, r.mask)
        agree.append(float((g.mask == r.mask).mean()))
    agreement = float(np.mean(agree))
    if precision == "fp32":
        assert agreement >= 0.999
    elif precision == "fp16":
        assert agreement >= 0.995
    else:
        assert cm.compute().miou >= 0.9, f"int8 mIoU vs PyTorch {cm.compute().miou:.3f}"
