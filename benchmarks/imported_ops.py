"""Derive the operators an imported-model file may call (edgeseg/models/imported_ops.json).

An imported-model file (`edgeseg.import_model`) stores a torch.export program; the loader runs only
the operators on this list. The list is what torch.export emits for real segmentation models, not a
guess: edgeseg's U-Net (both upsamplings), segmentation_models_pytorch's families over several
encoder kinds (ResNet, EfficientNet, MobileNet, timm, Mix Transformer), torchvision's segmentation
models and the padded-U-Net patterns of public repositories, all with random weights (no download),
captured exactly as `import_model` captures them. For each operator the file records, from torch's
own schema, which arguments it writes in place (`writes`), which ones its outputs may share memory
with (`aliases`) and the mode arguments that must be false (`require`: `training`/`train`), so the
loader can refuse a write to the program's inputs or weights and a training-mode call without
looking anything up at load time.

An operator that reads files, asks about devices, draws random numbers, writes into an `out=`
tensor, returns uninitialised memory or reinterprets storage is refused here even if a model emits
it (the script stops and names it): such a model needs a rewrite, not a longer list.

    python benchmarks/imported_ops.py [--check] [--families unet,smp,torchvision,patterns]

Run it after a torch upgrade: it merges what this torch emits into the committed list (operators
from earlier torch releases stay, so files imported with those still load) and prints what changed.
`--check` only reports operators a model emits that the list lacks (exit 1 if any).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from edgeseg.models.imported import unwrapped
from edgeseg.models.program import export_program, ops_file

OUT = ops_file()
# Names no pure tensor operator has: files, randomness, devices, storage and memory tricks.
_REFUSED = re.compile(
    r"from_file|save|load|rand|normal|bernoulli|uniform|multinomial|poisson|exponential|geometric|cauchy"
    r"|log_normal|seed|generator|device|cuda|is_pinned|pin_memory|_local_scalar|item|data_ptr"
    r"|storage|set_|resize|as_strided|unsafe|empty|_make_|to_mkldnn|print|assert|record_stream"
)


def _edgeseg_unets() -> Iterator[tuple[str, Callable[[], nn.Module], int, tuple[int, int]]]:
    from edgeseg.models.unet import UNet

    for upsample in ("transpose", "bilinear"):
        yield (
            f"edgeseg UNet {upsample}",
            lambda u=upsample: UNet(3, 4, depth=3, width=8, upsample=u),
            3,
            (64, 64),
        )
    yield "edgeseg UNet gray", lambda: UNet(1, 2, depth=2, width=4), 1, (48, 32)


_SMP_ARCHS = ("Unet", "UnetPlusPlus", "FPN", "DeepLabV3", "DeepLabV3Plus", "PSPNet", "Linknet", "MAnet",
              "PAN", "UPerNet")  # fmt: skip
_SMP_ENCODERS = ("resnet18", "efficientnet-b0", "mobilenet_v2", "timm-efficientnet-b0",
                 "tu-mobilenetv3_small_100", "tu-resnet18")  # fmt: skip


def _smp_models() -> Iterator[tuple[str, Callable[[], nn.Module], int, tuple[int, int]]]:
    import segmentation_models_pytorch as smp

    for arch in _SMP_ARCHS:
        for encoder in _SMP_ENCODERS:
            if arch == "UnetPlusPlus" and encoder.startswith("tu-mobilenet"):
                continue  # SMP refuses UNet++ on encoders without a full-resolution stage
            yield (
                f"smp {arch} {encoder}",
                lambda a=arch, e=encoder: getattr(smp, a)(e, encoder_weights=None, classes=3),
                3,
                (128, 128) if arch == "PAN" else (64, 64),  # PAN pools its 1/32 map by 2 more
            )
    for encoder in ("mit_b0", "resnet18"):
        yield (f"smp Segformer {encoder}",
               lambda e=encoder: smp.Segformer(e, encoder_weights=None, classes=3), 3, (64, 64))  # fmt: skip


def _torchvision_models() -> Iterator[tuple[str, Callable[[], nn.Module], int, tuple[int, int]]]:
    from torchvision.models import segmentation as tv

    for name in (
        "fcn_resnet50",
        "deeplabv3_resnet50",
        "deeplabv3_mobilenet_v3_large",
        "lraspp_mobilenet_v3_large",
    ):
        kwargs = {"weights": None, "weights_backbone": None, "num_classes": 3}
        if not name.startswith("lraspp"):
            kwargs["aux_loss"] = True
        yield f"torchvision {name}", lambda n=name, k=kwargs: getattr(tv, n)(**k), 3, (64, 64)


class _PadUNet(nn.Module):
    """The U-Net public repositories write: computed pads to the skip's size, interpolate, an activation."""

    def __init__(self, align_corners: bool, act: type[nn.Module], mode: str = "bilinear") -> None:
        super().__init__()
        self.align_corners = align_corners if mode != "nearest" else None
        self.mode = mode

        def block(i: int, o: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), act())

        self.enc1, self.enc2, self.enc3 = block(3, 8), block(8, 12), block(12, 16)
        self.dec2, self.dec1 = block(16 + 12, 12), block(12 + 8, 8)
        self.head = nn.Conv2d(8, 3, 1)

    def _up(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode=self.mode, align_corners=self.align_corners)
        dh, dw = skip.shape[2] - x.shape[2], skip.shape[3] - x.shape[3]
        return torch.cat([F.pad(x, [dw // 2, dw - dw // 2, dh // 2, dh - dh // 2]), skip], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s1 = self.enc1(x)
        s2 = self.enc2(F.max_pool2d(s1, 2))
        y = self.enc3(F.avg_pool2d(s2, 2))
        return self.head(self.dec1(self._up(self.dec2(self._up(y, s2)), s1)))


class _ENetLike(nn.Module):
    """ENet's bottlenecks (Paszke et al. 2016): PReLU, max-pooling that keeps its indices and the
    max-unpooling that puts values back, spatial dropout, asymmetric and dilated convolutions."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 13, 3, 2, 1), nn.BatchNorm2d(13), nn.PReLU(13))
        self.pool, self.unpool = nn.MaxPool2d(2, return_indices=True), nn.MaxUnpool2d(2)
        self.mid = nn.Sequential(
            nn.Conv2d(16, 16, (5, 1), padding=(2, 0)), nn.Conv2d(16, 16, (1, 5), padding=(0, 2)),
            nn.Conv2d(16, 16, 3, padding=2, dilation=2), nn.BatchNorm2d(16), nn.PReLU(), nn.Dropout2d(0.1),
        )  # fmt: skip
        self.head = nn.ConvTranspose2d(16, 3, 2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([self.stem(x), F.max_pool2d(x, 3, 2, 1)], dim=1)
        pooled, indices = self.pool(y)
        return self.head(self.unpool(self.mid(pooled), indices, output_size=y.shape))


class _InForward(nn.Module):
    """What public repositories put inside forward around a network: normalisation from raw pixels
    ((x - mean) / std, buffers), flip test-time augmentation averaged with the plain pass, a
    temperature-scaled and clamped head, L2-normalised prototype logits, and the activations
    lightweight models use (ReLU6, ELU, Mish, Softplus, Tanh, negation)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU6(), nn.Conv2d(8, 8, 3, padding=1), nn.ELU(),
            nn.Conv2d(8, 8, 3, padding=1), nn.Mish(), nn.Conv2d(8, 8, 1), nn.Softplus(), nn.Tanh(),
        )  # fmt: skip
        self.prototypes = nn.Parameter(torch.randn(3, 8))
        self.temperature = 2.0

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        f = F.normalize(self.body(x), dim=1)
        p = F.normalize(self.prototypes, dim=1)
        return torch.einsum("nchw,kc->nkhw", f, p) / self.temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        y = (self._logits(x) + self._logits(x.flip(-1)).flip(-1)) * 0.5
        return -torch.clamp(-y, -10.0, 10.0)


def _patterns() -> Iterator[tuple[str, Callable[[], nn.Module], int, tuple[int, int]]]:
    for ac, act, mode in ((True, nn.SiLU, "bilinear"), (False, nn.Hardswish, "bilinear"),
                          (False, nn.LeakyReLU, "nearest"), (False, nn.GELU, "bicubic")):  # fmt: skip
        yield (f"padded U-Net {mode} {act.__name__}",
               lambda a=ac, k=act, m=mode: _PadUNet(a, k, m), 3, (46, 30))  # fmt: skip
    yield "ENet-style bottlenecks", _ENetLike, 3, (64, 64)
    yield "in-forward normalisation, flip TTA, prototype head", _InForward, 3, (48, 32)


FAMILIES = {
    "unet": _edgeseg_unets,
    "smp": _smp_models,
    "torchvision": _torchvision_models,
    "patterns": _patterns,
}


def _randomised(model: nn.Module, cin: int, size: tuple[int, int]) -> nn.Module:
    """Non-trivial BatchNorm statistics (two train-mode passes), then eval mode, as a real model."""
    torch.manual_seed(0)
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.rand(2, cin, size[1], size[0]))
    return model.eval()


def emitted(model: nn.Module, cin: int, size: tuple[int, int]) -> set[str]:
    """The call targets of `model`'s program as `import_model` captures it (its wrapper, eval mode)."""
    w, h = size
    ep = export_program(unwrapped(model).eval(), torch.rand(1, cin, h, w))
    return {f"torch.ops.{n.target}" for n in ep.graph.nodes if n.op == "call_function" and
            isinstance(n.target, torch._ops.OpOverload)}  # fmt: skip


def describe(target: str) -> dict[str, list[str] | dict[str, bool]]:
    """What torch's schema says about one operator: arguments written, aliased, mode flags."""
    _, _, namespace, name, overload = target.split(".")
    op = getattr(getattr(getattr(torch.ops, namespace), name), overload)
    schema = op._schema
    require = {a.name: False for a in schema.arguments if a.name in ("train", "training")}
    # Random only in training mode (dropout): pure once its mode argument is required false.
    seeded = torch.Tag.nondeterministic_seeded in op.tags and not require
    if _REFUSED.search(name) or "out" in overload or seeded:
        raise SystemExit(f"a real model emits {target}, which is not a pure tensor operator; stop")
    writes = [a.name for a in schema.arguments if a.alias_info is not None and a.alias_info.is_write]
    sets = {s for r in schema.returns if r.alias_info is not None for s in r.alias_info.before_set}
    aliases = [
        a.name for a in schema.arguments if a.alias_info is not None and sets & set(a.alias_info.before_set)
    ]
    entry: dict[str, list[str] | dict[str, bool]] = {}
    if writes:
        entry["writes"] = writes
    if aliases:
        entry["aliases"] = aliases
    if require:
        entry["require"] = require
    return entry


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--check", action="store_true", help="report missing operators, write nothing")
    parser.add_argument("--cache", type=Path, help="JSON file of each model's operators, to resume a run")
    args = parser.parse_args()
    cache: dict[str, list[str]] = {}
    if args.cache and args.cache.is_file():
        cache = json.loads(args.cache.read_text())
    warnings.filterwarnings("ignore")
    old = json.loads(OUT.read_text(encoding="utf-8")) if OUT.is_file() else {"torch": [], "operators": {}}
    known = old["operators"]
    found: dict[str, str] = {}
    for family in args.families.split(","):
        for label, make, cin, size in FAMILIES[family]():
            start = time.perf_counter()
            if label in cache:
                ops = set(cache[label])
            else:
                try:
                    ops = emitted(_randomised(make(), cin, size), cin, size)
                except Exception as exc:  # an optional package or encoder missing here: say so, go on
                    print(f"  skipped {label}: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
                    continue
                cache[label] = sorted(ops)
                if args.cache:
                    args.cache.write_text(json.dumps(cache, indent=1))
            for op in sorted(ops - set(found)):
                found[op] = label
            print(f"  {label}: {len(ops)} operators ({time.perf_counter() - start:.1f} s)")
    new = sorted(set(found) - set(known))
    for op in new:
        print(f"new: {op} (first in {found[op]})")
    if args.check:
        return 1 if new else 0
    # Operators of earlier torch releases keep their entries: files imported there still load.
    operators = {**known, **{op: describe(op) for op in found}}
    data = {
        "about": "operators an imported-model program may call; derived by benchmarks/imported_ops.py",
        "torch": sorted({*old["torch"], torch.__version__}),
        "operators": dict(sorted(operators.items())),
    }
    OUT.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"{OUT}: {len(operators)} operators ({len(new)} new)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
