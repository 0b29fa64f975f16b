"""`edgeseg.import_model`: third-party modules (not edgeseg's UNet) become model files that load
without their source or pickled code, run as the PyTorch baseline and export with parity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import edgeseg
from edgeseg.errors import InputError
from edgeseg.models.checkpoint import load_checkpoint

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class PadUNet(nn.Module):
    """A U-Net as public repositories write it: odd sizes survive the down/up path because the
    forward pads the upsampled map to the skip's size with computed amounts."""

    def __init__(self, cin: int = 3, classes: int = 3, align_corners: bool = True, act: type = nn.SiLU):
        super().__init__()
        self.align_corners = align_corners

        def block(i: int, o: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), act())

        self.enc1, self.enc2, self.enc3 = block(cin, 8), block(8, 12), block(12, 16)
        self.dec2, self.dec1 = block(16 + 12, 12), block(12 + 8, 8)
        self.head = nn.Conv2d(8, classes, 1)

    def _up(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=self.align_corners)
        dh, dw = skip.shape[2] - x.shape[2], skip.shape[3] - x.shape[3]
        x = F.pad(x, [dw // 2, dw - dw // 2, dh // 2, dh - dh // 2])
        return torch.cat([x, skip], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s1 = self.enc1(x)
        s2 = self.enc2(F.max_pool2d(s1, 2))
        y = self.enc3(F.max_pool2d(s2, 2))
        y = self.dec2(self._up(y, s2))
        return self.head(self.dec1(self._up(y, s1)))


class DictOut(nn.Module):
    """torchvision's segmentation models return {"out": logits, "aux": ...}."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 6, 3, stride=2, padding=1), nn.BatchNorm2d(6), nn.ReLU())
        self.cls = nn.Conv2d(6, 2, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        y = self.cls(self.body(x))
        return {"out": F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False), "aux": y}


def _trained_bn(model: nn.Module, cin: int) -> nn.Module:
    """Non-trivial BatchNorm statistics (a few train-mode passes), then eval mode, as a real model."""
    torch.manual_seed(0)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(4, cin, 30, 46) * 2)
    return model.eval()


def test_imported_file_runs_without_the_source(tmp_path: Path):
    module = _trained_bn(PadUNet(), 3)
    path = edgeseg.import_model(module, tmp_path / "m.pt", classes=["bg", "a", "b"], img_size=(46, 30),
                                mean=MEAN, std=STD)  # fmt: skip
    raw = torch.load(path, weights_only=True)  # tensors + JSON: the safe unpickler reads it
    assert json.loads(raw["meta"])["model"]["arch"] == "imported"
    assert "PadUNet" not in raw["program"] or "torch.ops.aten" in raw["program"]
    ckpt = load_checkpoint(path)
    net = ckpt.build_model()
    x = torch.rand(3, 3, 30, 46)
    with torch.no_grad():
        torch.testing.assert_close(net(x), module(x), rtol=1e-5, atol=1e-5)
    with edgeseg.Segmenter(path) as seg:  # the torch backend, preprocessing from the file
        assert seg(np.zeros((60, 80, 3), np.uint8)).mask.shape == (60, 80)
    with pytest.raises(InputError, match=r"runs at 46x30 only"):
        ckpt.check_input((1, 3, 32, 48))


def test_tampered_program_is_refused(tmp_path: Path):
    path = edgeseg.import_model(DictOut().eval(), tmp_path / "m.pt", classes=2, img_size=(32, 24),
                                mean=MEAN, std=STD)  # fmt: skip
    payload = torch.load(path, weights_only=True)
    payload["program"] = payload["program"].replace("torch.ops.aten.conv2d.default", "torch.os.system", 1)
    torch.save(payload, tmp_path / "evil.pt")
    with pytest.raises(InputError, match=r"refusing the model file's program: it calls torch\.os\.system"):
        load_checkpoint(tmp_path / "evil.pt")


def test_dict_output_model(tmp_path: Path):
    module = _trained_bn(DictOut(), 3)
    path = edgeseg.import_model(module, tmp_path / "tv.pt", classes=2, img_size=(32, 24), mean=MEAN, std=STD)
    x = torch.rand(2, 3, 24, 32)
    with torch.no_grad():
        torch.testing.assert_close(load_checkpoint(path).build_model()(x), module(x)["out"])


@pytest.mark.parametrize(
    ("module", "kwargs", "message"),
    [
        (nn.Conv2d(3, 2, 3), {}, r"maps 1x3x24x32 input to shape 1x2x22x30; edgeseg needs 1x2x24x32"),
        (nn.Conv2d(3, 5, 1), {}, r"shape 1x5x24x32; edgeseg needs 1x2x24x32"),
        (nn.Conv2d(3, 2, 1), {"mean": (0.5,)}, r"mean and std need 3 value\(s\) each for color_order RGB"),
        (nn.Conv2d(1, 2, 1), {"color_order": "GRAY"}, r"need 1 value\(s\) each for color_order GRAY"),
        (nn.Conv2d(3, 2, 1), {"color_order": "HSV"}, r"color_order must be RGB, BGR or GRAY"),
    ],
)
def test_bad_modules_and_facts_write_nothing(tmp_path: Path, module: nn.Module, kwargs: dict, message: str):
    args = {"classes": 2, "img_size": (32, 24), "mean": MEAN, "std": STD, **kwargs}
    with pytest.raises(InputError, match=message):
        edgeseg.import_model(module, tmp_path / "m.pt", **args)
    assert not list(tmp_path.iterdir())


# -- export robustness: real-model patterns through every target, FP32 parity and INT8 ------------

CASES = {
    "pad-bilinear-ac-true-silu": (lambda: PadUNet(3, 3, True, nn.SiLU), "RGB"),
    "pad-bilinear-ac-false-hardswish-gray": (lambda: PadUNet(1, 3, False, nn.Hardswish), "GRAY"),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def imported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    make, order = CASES[request.param]
    cin = 1 if order == "GRAY" else 3
    mean, std = ((0.45,), (0.22,)) if cin == 1 else (MEAN, STD)
    path = tmp_path_factory.mktemp(request.param) / "model.pt"
    edgeseg.import_model(_trained_bn(make(), cin), path, classes=3, img_size=(46, 30), mean=mean, std=std,
                         color_order=order)  # fmt: skip
    return path, request.param


@pytest.mark.slow
@pytest.mark.parametrize("target", ["onnx", "openvino"])
def test_imported_patterns_export_with_parity(imported: tuple[Path, str], target: str):
    pytest.importorskip("onnxruntime")
    if target == "openvino":
        pytest.importorskip("openvino")
        pytest.importorskip("nncf")
    from edgeseg.exporters import ExportConfig, export

    path, _ = imported
    fp32 = export(path, ExportConfig(target=target, out=str(path.parent / f"{target}-fp32")))
    assert fp32.parity.pixel_agreement >= 0.999, fp32.parity.summary()
    int8_out = str(path.parent / f"{target}-int8")
    int8 = export(path, ExportConfig(target=target, precision="int8", out=int8_out))
    assert int8.manifest.quantization and int8.parity.pixel_agreement >= 0.9, int8.parity.summary()
    assert int8.manifest.model["arch"] == "imported"


@pytest.mark.slow
def test_imported_patterns_make_engine_ready_int8_graphs(imported: tuple[Path, str]):
    pytest.importorskip("onnxruntime")
    from edgeseg.exporters import ExportConfig, export
    from edgeseg.targets.tensorrt.graph import check_engine_ready

    path, _ = imported
    config = ExportConfig(target="tensorrt", precision="int8", out=str(path.parent / "trt-int8"))
    result = export(path, config)
    assert check_engine_ready(result.bundle / "model.onnx", "int8") == []
    assert result.parity.pixel_agreement >= 0.9, result.parity.summary()


def test_imported_model_refuses_another_export_size(imported: tuple[Path, str], tmp_path: Path):
    from edgeseg.exporters import ExportConfig, export

    path, _ = imported
    with pytest.raises(InputError, match=r"exports at the size it was imported at, 46x30"):
        export(path, ExportConfig(target="onnx", img_size=(48, 32), out=str(tmp_path / "b")))
    assert not (tmp_path / "b").exists()


def test_top_level_export_of_a_module(tmp_path: Path):
    pytest.importorskip("onnxruntime")
    result = edgeseg.export(_trained_bn(DictOut(), 3), target="onnx", classes=["bg", "fg"], img_size=(32, 24),
                            mean=MEAN, std=STD, out=str(tmp_path / "b"))  # fmt: skip
    assert result.parity.pixel_agreement >= 0.999
    assert result.manifest.class_names == ("bg", "fg")
    with pytest.raises(InputError, match=r"needs out="):
        edgeseg.export(DictOut().eval(), target="onnx", classes=2, img_size=(32, 24), mean=MEAN, std=STD)


def test_imported_file_through_predict_and_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from PIL import Image

    from edgeseg.cli import main

    path = edgeseg.import_model(_trained_bn(PadUNet(), 3), tmp_path / "m.pt", classes=3, img_size=(46, 30),
                                mean=MEAN, std=STD)  # fmt: skip
    Image.fromarray(np.full((40, 50, 3), 90, np.uint8)).save(tmp_path / "frame.png")
    assert main(["predict", str(path), str(tmp_path / "frame.png"), "--out", str(tmp_path / "pred")]) == 0
    mask = np.asarray(Image.open(tmp_path / "pred" / "frame_mask.png"))
    assert mask.shape == (40, 50) and mask.max() < 3
    assert main(["info", str(path)]) == 0
    assert "imported PadUNet (torch.export program at 46x30)" in capsys.readouterr().out


def test_doctor_leaves_a_padded_skip_unet_at_an_odd_size_alone(tmp_path: Path):
    """PadUNet pads each upsampled map to its skip: imported at 46x30 (not a multiple of its stride 4)
    it runs as it does in PyTorch, so the stride is nothing to report."""
    from edgeseg.exporters.doctor_run import diagnose

    path = edgeseg.import_model(_trained_bn(PadUNet(), 3), tmp_path / "pad.pt", classes=3, img_size=(46, 30),
                                mean=MEAN, std=STD)  # fmt: skip
    report = diagnose(path, target="onnx", precision="fp32")
    assert [f for f in report.findings if f.check == "stride"] == []
    with pytest.raises(InputError, match=r"import it again with img_size=\(W, H\)"):
        diagnose(path, target="onnx", precision="fp32", img_size=(48, 32))


class _SegmenterOutput:
    """What Hugging Face's segmentation models return: an object whose `.logits` are at 1/4 size."""

    def __init__(self, logits: torch.Tensor) -> None:
        self.logits = logits


class QuarterLogits(nn.Module):
    """A SegFormer-like head: logits at 1/4 of the input, inside an output object or a dict."""

    def __init__(self, wrap: str) -> None:
        super().__init__()
        self.wrap = wrap
        self.embed = nn.Sequential(nn.Conv2d(3, 8, 7, stride=4, padding=3), nn.BatchNorm2d(8), nn.GELU())
        self.head = nn.Conv2d(8, 3, 1)

    def forward(self, x: torch.Tensor) -> object:
        y = self.head(self.embed(x))
        return _SegmenterOutput(y) if self.wrap == "object" else {"logits": y, "hidden": x}


@pytest.mark.parametrize("wrap", ["object", "dict"])
def test_quarter_size_logits_in_an_output_object_are_upsampled_in_the_program(tmp_path: Path, wrap: str):
    module = _trained_bn(QuarterLogits(wrap), 3)
    size = (46, 30)  # 46/4 and 30/4 round up in the stride-4 convolution: 12x8 logits
    path = edgeseg.import_model(module, tmp_path / "seg.pt", classes=3, img_size=size, mean=MEAN, std=STD)
    ckpt = load_checkpoint(path)
    assert ckpt.model_config.kwargs["logits_upsampled"] == 4
    assert "1/4 logits upsampled" in ckpt.model_config.describe()
    x = torch.rand(1, 3, 30, 46)
    with torch.no_grad():
        raw = module(x)
        logits = raw.logits if wrap == "object" else raw["logits"]
        assert logits.shape[-2:] == (8, 12)
        expected = F.interpolate(logits, size=(30, 46), mode="bilinear", align_corners=False)
        torch.testing.assert_close(ckpt.build_model()(x), expected, rtol=1e-5, atol=1e-5)
    pytest.importorskip("onnxruntime")
    result = edgeseg.export(path, target="onnx", out=str(tmp_path / "b"), parity_images=2)
    assert result.parity.pixel_agreement == 1.0  # the upsampling is in the exported graph too


def test_logits_at_no_whole_fraction_are_refused(tmp_path: Path):
    with pytest.raises(InputError, match=r"at the input's size, or at 1/2 \.\. 1/32 of it"):
        edgeseg.import_model(nn.Conv2d(3, 2, 5), tmp_path / "m.pt", classes=2, img_size=(32, 24),
                             mean=MEAN, std=STD)  # fmt: skip
    assert not (tmp_path / "m.pt").exists()
