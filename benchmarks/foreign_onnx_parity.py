"""Agreement and mIoU drop of every target's fp32/int8 export of ONNX files from another framework.

Writes ONNX files the way another framework's user would (plain `torch.onnx.export`, the
TorchScript exporter at opset 17, their own tensor names, no edgeseg metadata), exports each with
edgeseg to every target at fp32 and int8, and prints what each export's parity check measured
against the source ONNX run on ONNX Runtime: pixel agreement, max |Δlogit| and the mIoU drop on
DATA. Models (random weights: nothing is downloaded, so mIoU vs the ground truth is near chance and
agreement is the figure to read; the drop shows what quantization changes in the masks):

- `foreign`: the small encoder-decoder the tests export (tests/helpers.py `make_foreign_onnx`);
- `smp-unet-resnet18` (with --smp): segmentation_models_pytorch's Unet with a ResNet-18 encoder.

    python benchmarks/foreign_onnx_parity.py --data ../shared/data/camvid-mini/val \
        --calib ../shared/data/camvid-mini/train [--smp] [--img-size 320x240]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.helpers, from a clone

from edgeseg.data import parse_img_size
from edgeseg.exporters import ExportConfig, export
from edgeseg.exporters.source import SourceFacts

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
EXPORTS = [(t, p) for t in ("onnx", "openvino", "tensorrt") for p in ("fp32", "int8")]


def _smp_unet(path: Path, size: tuple[int, int], classes: int) -> Path:
    import segmentation_models_pytorch as smp
    import torch

    torch.manual_seed(0)
    model = smp.Unet("resnet18", encoder_weights=None, classes=classes).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (torch.randn(1, 3, size[1], size[0]),), str(path), input_names=["input"],
            output_names=["output"], opset_version=17, dynamo=False,
        )  # fmt: skip
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="labelled folder for parity and the mIoU drop")
    ap.add_argument("--calib", help="INT8 calibration images (default: synthetic scenes)")
    ap.add_argument("--img-size", default="320x240")
    ap.add_argument("--ignore-index", type=int, default=11, help="CamVid's void label")
    ap.add_argument("--classes", type=int, default=11)
    ap.add_argument("--smp", action="store_true", help="also a segmentation_models_pytorch U-Net")
    args = ap.parse_args()
    size = parse_img_size(args.img_size)
    facts = SourceFacts(
        classes=args.classes,
        mean=IMAGENET[0],
        std=IMAGENET[1],
        color_order="RGB",
        ignore_index=args.ignore_index,
    )
    from tests.helpers import make_foreign_onnx

    with tempfile.TemporaryDirectory(prefix="edgeseg-foreign-") as tmp:
        root = Path(tmp)
        models = {"foreign": make_foreign_onnx(root / "foreign.onnx", size=size, classes=args.classes)}
        if args.smp:
            models["smp-unet-resnet18"] = _smp_unet(root / "smp.onnx", size, args.classes)
        print("| model | target | precision | agreement % | max abs dlogit | mIoU drop pts |")
        print("|---|---|---|---|---|---|")
        for name, src in models.items():
            for target, precision in EXPORTS:
                config = ExportConfig(
                    target, precision, val_data=args.data, out=str(root / f"{name}-{target}-{precision}"),
                    calib=args.calib if precision == "int8" else None,
                )  # fmt: skip
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    result = export(src, config, facts=facts)
                p = result.parity
                drop = (p.miou_pytorch_vs_gt - p.miou_artifact_vs_gt) * 100  # type: ignore[operator]
                print(
                    f"| {name} | {target} | {precision} | {p.pixel_agreement * 100:.2f} | "
                    f"{p.max_abs_logit_diff:.2e} | {drop:+.2f} |",
                    flush=True,
                )
        print(f"reference: {p.reference}; data: {p.inputs} at {size[0]}x{size[1]}")


if __name__ == "__main__":
    main()
