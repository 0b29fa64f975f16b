"""Which bring-your-own architectures export cleanly: SMP architectures x encoders x targets.

For each (architecture, encoder) it builds the model with random weights, gives its BatchNorm real
statistics (a few train-mode passes over the sample images, no training), saves it as an edgeseg
checkpoint, and exports it through edgeseg to each target at FP32 and INT8 (calibrated on the same
images), with parity measured on the sample data's val images at SIZE. Printed per artifact: pixel
agreement with the PyTorch model and, for INT8, the mIoU of its masks against PyTorch's (1.0 = the
same masks; with random weights there is no ground truth to lose, so this is the precision loss
alone). A failure prints its one-line reason.

    python benchmarks/byom_matrix.py [--archs unet,fpn,linknet,deeplabv3plus] \\
        [--encoders resnet18,mobilenet_v2] [--targets onnx,openvino] [--size 64] [--data DIR]

DIR defaults to ../shared/data/camvid-mini (relative to the repository root); without it, synthetic
scenes are used.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from edgeseg.errors import EdgesegError
from edgeseg.exporters import ExportConfig, export
from edgeseg.models.checkpoint import Checkpoint, Normalization, save_checkpoint
from edgeseg.models.registry import ModelSpec, build_model

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
ROOT = Path(__file__).resolve().parents[1]


def _images(data: Path | None, size: int) -> torch.Tensor:
    """Normalised NCHW batch of the sample images (or synthetic scenes) at size x size."""
    from PIL import Image

    from edgeseg.data import list_images

    if data is not None and (data / "train" / "images").is_dir():
        files = list_images(data / "train" / "images")[:16]
        arr = np.stack([np.asarray(Image.open(f).convert("RGB").resize((size, size))) for f in files])
    else:
        from edgeseg.data import SyntheticDataset

        ds = SyntheticDataset(16, img_size=(size, size), seed=0)
        arr = np.stack([ds[i][0] for i in range(len(ds))])  # HxWx3 uint8 RGB scenes
    x = torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 255
    return (x - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]


def _checkpoint(arch: str, encoder: str, x: torch.Tensor, path: Path, names: list[str]) -> Path:
    spec = ModelSpec(f"smp:{arch}", 3, len(names), {"encoder": encoder})
    torch.manual_seed(0)
    model = build_model(spec).train()
    with torch.no_grad():  # BatchNorm statistics of real images: what a trained model would have
        for i in range(0, len(x), 4):
            model(x[i : i + 4])
    size = (x.shape[3], x.shape[2])
    ignore = 11 if len(names) == 11 else None  # camvid-mini: 11 classes, id 11 unlabelled
    ckpt = Checkpoint(spec, names, Normalization(MEAN, STD), size, ignore_index=ignore)
    return save_checkpoint(path, ckpt, model.eval())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archs", default="unet,fpn,linknet,deeplabv3plus")
    p.add_argument("--encoders", default="resnet18,mobilenet_v2")
    p.add_argument("--targets", default="onnx,openvino")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "camvid-mini")
    args = p.parse_args()
    warnings.simplefilter("ignore")
    data = args.data if args.data.is_dir() else None
    val = str(data / "val") if data is not None else None
    calib = str(data / "train") if data is not None else None
    x = _images(data, args.size)
    names = (data / "classes.txt").read_text().split() if data is not None else [f"c{i}" for i in range(4)]
    print(f"torch {torch.__version__}, {args.size}x{args.size}, parity on {val or 'synthetic images'}")
    print("| arch | encoder | stride | target | fp32 agree % | int8 agree % | int8 mIoU vs PyTorch | s |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.archs.split(","):
            for encoder in args.encoders.split(","):
                t0 = time.perf_counter()
                try:
                    ckpt = _checkpoint(arch, encoder, x, Path(tmp) / f"{arch}-{encoder}.pt", names)
                    stride = ModelSpec(f"smp:{arch}", 3, 2, {"encoder": encoder}).stride
                except (EdgesegError, RuntimeError, ValueError) as exc:
                    print(f"| {arch} | {encoder} | - | - | build failed: {str(exc).splitlines()[0][:120]} |")
                    continue
                for target in args.targets.split(","):
                    cells = []
                    for precision in ("fp32", "int8"):
                        cfg = ExportConfig(
                            target=target,
                            precision=precision,
                            val_data=val,
                            calib=calib if precision == "int8" else None,
                            out=str(Path(tmp) / f"{arch}-{encoder}-{target}-{precision}"),
                        )
                        try:
                            r = export(ckpt, cfg).parity
                            cells.append(f"{r.pixel_agreement:.2%}")
                            if precision == "int8":
                                cells.append(f"{r.miou_vs_pytorch:.4f}")
                        except EdgesegError as exc:
                            cells.append(f"failed: {str(exc).splitlines()[0][:120]}")
                    print(f"| {arch} | {encoder} | {stride} | {target} | {' | '.join(cells)} | "
                          f"{time.perf_counter() - t0:.0f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
