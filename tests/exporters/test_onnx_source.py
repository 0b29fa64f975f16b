"""An ONNX file from another framework as the export source: every target and precision, parity
against the source run on ONNX Runtime, dynamic and fixed inputs, metadata, external data, old
opsets, and the graphs edgeseg must refuse."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from edgeseg.errors import InputError
from edgeseg.exporters import ExportConfig, export
from edgeseg.exporters.source import SourceFacts
from edgeseg.manifest import sha256_file
from tests.helpers import make_checkpoint, make_dataset, make_foreign_onnx

FACTS = SourceFacts(
    classes=("road", "car", "sky"), mean=(0.5, 0.4, 0.3), std=(0.25, 0.2, 0.3), color_order="RGB"
)


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("foreign")
    return {
        "fixed": make_foreign_onnx(root / "fixed.onnx"),
        "dynamic": make_foreign_onnx(root / "dynamic.onnx", dynamic=True),
        "val": make_dataset(root / "val", n=4, size=(48, 32), classes=3),
    }


def _export(src: Path, out: Path, **kwargs: object):
    facts = kwargs.pop("facts", FACTS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # small calibration sets are warned about
        return export(src, ExportConfig(out=str(out), **kwargs), facts=facts)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("target", "precision"),
    [
        ("onnx", "fp32"),
        ("onnx", "int8"),
        ("openvino", "fp32"),
        ("openvino", "int8"),
        ("tensorrt", "fp32"),
        ("tensorrt", "fp16"),
        ("tensorrt", "int8"),
    ],
)
def test_foreign_onnx_exports_to_every_target(
    foreign: dict[str, Path], tmp_path: Path, target: str, precision: str
):
    pytest.importorskip("onnxruntime")
    if target == "openvino":
        pytest.importorskip("openvino")
        if precision == "int8":
            pytest.importorskip("nncf")
    src = foreign["fixed"]
    result = _export(src, tmp_path / "b", target=target, precision=precision, val_data=str(foreign["val"]))
    m, p = result.manifest, result.parity
    # The source is recorded as an ONNX file, not as a checkpoint, and the graph keeps its own names.
    recorded = {k: m.source[k] for k in ("kind", "onnx", "sha256")}
    assert recorded == {"kind": "onnx", "onnx": str(src), "sha256": sha256_file(src)}
    assert m.source["settings"]["source"] == {"kind": "onnx", "sha256": sha256_file(src)}  # edgeseg._reuse
    assert m.model["name"] == "onnx" and m.model["opset"] == 17
    assert (m.input.name, m.output.name, m.class_names) == ("pixel_values", "out", FACTS.classes)
    assert (m.input.width, m.input.height, m.input.mean, m.input.std) == (48, 32, FACTS.mean, FACTS.std)
    # The FP32 reference is the source on ONNX Runtime, and the report says so.
    assert p.reference.startswith("the source ONNX on onnxruntime")
    assert m.parity is not None and m.parity["reference"] == p.reference
    assert "vs the source ONNX on onnxruntime" in p.summary() and "PyTorch" not in p.summary()
    assert p.pixel_agreement >= (0.999 if precision != "int8" else 0.9), p.summary()
    if precision == "fp32":
        assert p.max_abs_logit_diff < 1e-3
    else:
        assert m.quantization is not None and "miou_drop_points" in m.quantization
    if target == "tensorrt":
        from edgeseg.targets.tensorrt.graph import check_engine_ready

        float_nodes = (m.quantization or {}).get("float_nodes", [])
        assert check_engine_ready(result.bundle / "model.onnx", precision, allowed_float=float_nodes) == []
    else:
        from edgeseg.segmenter import Segmenter

        with Segmenter(result.bundle) as seg:
            mask = seg(np.full((60, 90, 3), 128, np.uint8)).mask
        assert mask.shape == (60, 90) and mask.max() < 3


def test_dynamic_graph_is_fixed_to_img_size_unless_dynamic(foreign: dict[str, Path], tmp_path: Path):
    import onnx

    src = foreign["dynamic"]
    with pytest.raises(InputError, match=r"dynamic input size: give --img-size WxH"):
        _export(src, tmp_path / "none", target="onnx")
    assert not (tmp_path / "none").exists()

    static = _export(src, tmp_path / "static", target="onnx", img_size=(48, 32))
    dims = [
        d.dim_value
        for d in onnx.load(str(static.bundle / "model.onnx")).graph.input[0].type.tensor_type.shape.dim
    ]
    assert dims == [1, 3, 32, 48] and static.manifest.dynamic_axes == {}
    assert static.parity.pixel_agreement >= 0.999

    dyn = _export(src, tmp_path / "dyn", target="onnx", img_size=(48, 32), dynamic=True)
    graph_in = onnx.load(str(dyn.bundle / "model.onnx")).graph.input[0]
    assert [d.HasField("dim_value") for d in graph_in.type.tensor_type.shape.dim] == [
        False,
        True,
        False,
        False,
    ]
    assert dyn.manifest.dynamic_axes["pixel_values"] == {0: "batch", 2: "height", 3: "width"}

    # An ONNX file edgeseg wrote carries its facts: no options needed, they come from its metadata.
    again = tmp_path / "edgeseg-made.onnx"
    shutil.copy(static.bundle / "model.onnx", again)
    second = _export(again, tmp_path / "second", target="onnx", facts=None)
    assert second.manifest.class_names == FACTS.classes and second.manifest.input.mean == FACTS.mean
    assert second.parity.pixel_agreement == 1.0


def test_external_data_is_loaded_into_the_bundle_file(foreign: dict[str, Path], tmp_path: Path):
    import onnx

    folder = tmp_path / "ext"
    folder.mkdir()
    model = onnx.load(str(foreign["fixed"]))
    onnx.save_model(
        model, str(folder / "m.onnx"), save_as_external_data=True, location="m.weights", size_threshold=0
    )
    result = _export(folder / "m.onnx", tmp_path / "b", target="onnx")
    assert sorted(p.name for p in result.bundle.iterdir()) == ["edgeseg.json", "model.onnx"]
    assert result.manifest.source["external_data"] == {"m.weights": sha256_file(folder / "m.weights")}
    assert result.parity.pixel_agreement == 1.0

    (folder / "m.weights").unlink()
    with pytest.raises(InputError, match=r"external data 'm.weights', which is not beside it"):
        _export(folder / "m.onnx", tmp_path / "b2", target="onnx")
    assert not (tmp_path / "b2").exists()


def test_old_opset_is_converted_and_quantizes(tmp_path: Path):
    src = make_foreign_onnx(tmp_path / "old.onnx", opset=11)
    result = _export(src, tmp_path / "b", target="onnx", precision="int8")
    assert result.manifest.model["opset"] == 13 and result.manifest.model["opset_converted_from"] == 11
    assert result.parity.pixel_agreement >= 0.9


def test_max_drop_measures_against_the_source(foreign: dict[str, Path], tmp_path: Path):
    lines: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = export(
            foreign["fixed"],
            ExportConfig(
                "onnx", "int8", val_data=str(foreign["val"]), max_drop=100.0, out=str(tmp_path / "b")
            ),
            facts=FACTS,
            log=lines.append,
        )
    q = result.manifest.quantization
    assert q is not None and q["max_drop_points"] == 100.0 and len(q["attempts"]) == 1
    # The search's drop and the manifest's are both taken against the source's own mIoU.
    p = result.parity
    assert p.miou_pytorch_vs_gt is not None and p.miou_artifact_vs_gt is not None
    assert q["attempts"][0]["miou_drop_points"] == pytest.approx(
        (p.miou_pytorch_vs_gt - p.miou_artifact_vs_gt) * 100, abs=1e-3
    )
    attempts = [line for line in lines if line.startswith("int8 attempt:")]
    assert attempts and attempts[0].startswith("int8 attempt: ptq minmax")
    assert any(line.startswith("calibration coverage: 32 images") for line in lines)


def _two_inputs(tmp: Path) -> Path:
    return make_foreign_onnx(tmp / "two.onnx", variant="two_inputs")


def _uint8_input(tmp: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(make_foreign_onnx(tmp / "f.onnx")))
    g = model.graph
    for node in g.node:
        node.input[:] = ["as_float" if i == "pixel_values" else i for i in node.input]
    g.node.insert(0, helper.make_node("Cast", ["pixel_values"], ["as_float"], to=TensorProto.FLOAT))
    g.input[0].type.tensor_type.elem_type = TensorProto.UINT8
    onnx.save_model(model, str(tmp / "u8.onnx"))
    return tmp / "u8.onnx"


@pytest.mark.parametrize(
    ("make", "facts", "config", "message"),
    [
        (
            None,
            SourceFacts(),
            {},
            r"carries no edgeseg metadata: pass --classes, --mean, --std, --color-order",
        ),
        (None, SourceFacts(classes=3, mean=(0.5,) * 3, std=(0.2,) * 3), {}, r"pass --color-order \("),
        (
            _two_inputs,
            FACTS,
            {},
            r"has 2 inputs \('pixel_values', 'extra'\); edgeseg exports models with one",
        ),
        (_uint8_input, FACTS, {}, r"input 'pixel_values' is uint8, not float32"),
        (
            None,
            SourceFacts(3, (0.5, 0.5), (0.2, 0.2, 0.2), "RGB"),
            {},
            r"--mean has 2 values but the model's input has 3",
        ),
        (None, SourceFacts(4, (0.5,) * 3, (0.2,) * 3, "RGB"), {}, r"outputs 3 classes but --classes gives 4"),
        (
            None,
            SourceFacts(3, (0.5,) * 3, (0.2,) * 3, "GRAY"),
            {},
            r"--color-order GRAY does not suit a 3-channel",
        ),
        (None, FACTS, {"dynamic": True}, r"--dynamic needs a graph with dynamic batch, height and width"),
        (None, FACTS, {"img_size": (64, 64)}, r"--img-size 64x64 does not match .*fixed input 48x32"),
        (
            lambda t: make_foreign_onnx(t / "nhwc.onnx", variant="nhwc_output"),
            FACTS,
            {},
            r"has the classes on the last axis; edgeseg needs them on axis 1",
        ),
        (
            lambda t: make_foreign_onnx(t / "r3.onnx", variant="rank3_output"),
            FACTS,
            {},
            r"first output has rank 3",
        ),
    ],
)
def test_bad_sources_are_refused_before_anything_is_written(
    foreign: dict[str, Path], tmp_path: Path, make, facts: SourceFacts, config: dict, message: str
):
    src = make(tmp_path) if make else foreign["fixed"]
    out = tmp_path / "out" / "bundle"
    with pytest.raises(InputError, match=message):
        export(src, ExportConfig("onnx", out=str(out), **config), facts=facts)
    assert not (tmp_path / "out").exists()


def test_facts_for_a_checkpoint_are_refused(tmp_path: Path):
    ckpt = make_checkpoint(tmp_path / "ck.pt")
    with pytest.raises(InputError, match=r"--mean, --color-order apply to an ONNX source only"):
        export(ckpt, ExportConfig("onnx"), facts=SourceFacts(mean=(0.5,) * 3, color_order="RGB"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.pt"]


def _quarter_logits_onnx(path: Path, dynamic: bool) -> Path:
    """A SegFormer-like graph: logits at 1/4 of the input (a stride-4 patch convolution, a 1x1 head)."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 7, stride=4, padding=3), nn.ReLU(), nn.Conv2d(8, 3, 1)).eval()
    axes = (
        {"pixel_values": {0: "n", 2: "h", 3: "w"}, "logits": {0: "n", 2: "h4", 3: "w4"}} if dynamic else None
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.rand(1, 3, 30, 46),), str(path), input_names=["pixel_values"],
                          output_names=["logits"], opset_version=17, dynamo=False,
                          dynamic_axes=axes)  # fmt: skip
    return path


@pytest.mark.parametrize("dynamic", [False, True])
def test_quarter_size_logits_get_an_upsampling_step_in_the_graph(tmp_path: Path, dynamic: bool):
    pytest.importorskip("onnxruntime")
    import onnx

    from edgeseg.segmenter import Segmenter

    src = _quarter_logits_onnx(tmp_path / "segformer.onnx", dynamic)
    size = (46, 30) if dynamic else None
    result = _export(src, tmp_path / "b", target="onnx", img_size=size, dynamic=dynamic, parity_images=2)
    assert result.parity.pixel_agreement == 1.0 and result.parity.max_abs_logit_diff < 1e-5
    assert "with its 1/4 logits upsampled" in result.parity.reference
    assert result.manifest.model["logits_upsampled"] == 4
    graph = onnx.load(str(tmp_path / "b" / result.manifest.model_file)).graph
    assert graph.node[-1].op_type == "Resize" and graph.output[0].name == "logits"
    frame = np.random.default_rng(0).integers(0, 256, (40, 64, 3), dtype=np.uint8)
    with Segmenter(tmp_path / "b", img_size=(64, 48) if dynamic else None) as seg:
        probs = seg(frame, return_probs=True).probabilities
        assert probs is not None and probs.shape == (3, 40, 64)
    # The bare source through Segmenter (benchmark's baseline row, the demo's baseline): its 1/4
    # logits are upsampled the same way, so its masks are the bundle's.
    options = {"mean": FACTS.mean, "std": FACTS.std, "color_order": "RGB", "classes": 3}
    with Segmenter(src, img_size=(46, 30), **options) as raw, Segmenter(tmp_path / "b", img_size=size) as seg:
        np.testing.assert_array_equal(raw(frame).mask, seg(frame).mask)
    assert (
        src.read_bytes() == _quarter_logits_onnx(tmp_path / "again.onnx", dynamic).read_bytes()
    )  # untouched


def _softmax_onnx(path: Path) -> Path:
    """A graph that ends in Softmax over the classes: its output is probabilities, not logits."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 1), nn.Softmax(dim=1)
    ).eval()
    with torch.no_grad():
        net[2].weight.mul_(8)  # confident probabilities, far from their own softmax
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.rand(1, 3, 32, 48),), str(path), input_names=["pixel_values"],
                          output_names=["probs"], opset_version=17, dynamo=False)  # fmt: skip
    return path


def test_a_graph_ending_in_softmax_outputs_probabilities_not_softmaxed_again(tmp_path: Path):
    ort = pytest.importorskip("onnxruntime")
    import onnx

    from edgeseg.exporters.onnx_source import ends_in_softmax
    from edgeseg.exporters.prepost import fused_manifest
    from edgeseg.manifest import read_manifest
    from edgeseg.segmenter import Segmenter

    src = _softmax_onnx(tmp_path / "softmax.onnx")
    assert ends_in_softmax(onnx.load(str(src)))
    assert not ends_in_softmax(onnx.load(str(make_foreign_onnx(tmp_path / "plain.onnx"))))
    result = _export(src, tmp_path / "b", target="onnx", parity_images=2)
    manifest = read_manifest(tmp_path / "b")
    assert "softmax" in manifest.output.graph_steps
    assert manifest.parity is not None and manifest.parity["output"] == "probabilities"
    assert "max |Δprobability|" in result.parity.summary()
    assert fused_manifest(manifest).output.graph_steps == ("softmax", "argmax")
    # The bundle's probabilities are the graph's own, at a frame of the model's size (no resize).
    frame = np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    x = ((frame / 255.0 - FACTS.mean) / FACTS.std).astype(np.float32).transpose(2, 0, 1)[None]
    session = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"pixel_values": x})[0][0]
    for model in (tmp_path / "b", tmp_path / "b" / manifest.model_file):  # the bundle, its bare .onnx
        with Segmenter(model, input_format="rgb") as seg:
            probs = seg(frame, return_probs=True).probabilities
        assert probs is not None
        np.testing.assert_allclose(probs, expected, atol=1e-5)
    assert expected.max(0).mean() > 0.6  # softmax applied twice would flatten these towards 1/3
