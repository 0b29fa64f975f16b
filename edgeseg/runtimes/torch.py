"""The PyTorch backend: runs an edgeseg model file (`.pt`) eagerly, on CPU or CUDA: a checkpoint of
any registered architecture (edgeseg.models.registry) or a module written by `edgeseg.import_model`.

It is the reference every exported artifact is compared with, and the way to use a checkpoint
straight from training. The model is channels_last (what `Checkpoint.build_model` returns, faster for
convolutions on CPU and on tensor cores); inputs are converted to the same memory format so no
layout conversion happens inside the first convolution. CUDA is never a silent choice: asking for it
without a CUDA device is an error, not a fall back to CPU.

Precision: checkpoints are float32 and run in fp32 on CPU, or with `autocast="bf16"` (asked for,
never a default) their convolutions in bf16 ("bf16"). On a CUDA GPU of compute capability 8.0 or
later, torch's cuDNN convolutions use TF32 while the process allows it (torch's default); that is a
process-wide torch setting the backend does not change behind the application's back, so
`executed_precision` says "tf32" there (set `torch.backends.cudnn.conv.fp32_precision = "ieee"`, or
`torch.backends.cudnn.allow_tf32 = False` on older torch, for fp32).

Threads: not `reentrant` (a module's forward is not promised to be thread-safe: a user's module may
keep state), so the base class runs one call at a time; torch's own intra-op threads already use
the cores within each call.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeseg._guards import recorded_path
from edgeseg._torch_resize import tensor_of
from edgeseg.errors import InputError
from edgeseg.manifest import INPUT_NAME, OUTPUT_NAME, Manifest, OutputSpec
from edgeseg.runtimes.base import Backend, TensorSpec

if TYPE_CHECKING:
    from edgeseg.models.checkpoint import Checkpoint

__all__ = ["TorchBackend"]

# A checkpoint takes any batch and any size whose sides divide by its stride, like a --dynamic export
# (an imported program: any batch, its one size);
# its tensors carry the names edgeseg's exports use, so a checkpoint and its bundles take the same feed.
_DYNAMIC = {0: "batch", 2: "height", 3: "width"}


class TorchBackend(Backend):
    """An edgeseg checkpoint run by PyTorch.

    Args:
        path: the checkpoint (`edgeseg.save_checkpoint` format).
        device: "cpu" (default), "cuda" or "cuda:N".
        channels_last: run in channels_last memory format (default True).
        autocast: "bf16" runs the model under `torch.autocast(dtype=torch.bfloat16)` (what a PyTorch
            user does for speed on CPUs with native bf16: AVX512-BF16 or AMX); None (default) fp32.
        threads: torch's intra-op threads, set at load (torch.set_num_threads, process-wide).
    """

    name = "torch"
    package = "torch"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        device: str | None = None,
        channels_last: bool = True,
        autocast: str | None = None,
        threads: int | None = None,
    ) -> None:
        super().__init__(path, threads=threads)
        self.device = str(device or "cpu").strip().lower()
        self.channels_last = channels_last
        if autocast not in (None, "bf16"):
            raise InputError(f"autocast must be 'bf16' or None; got {autocast!r}")
        self.autocast = autocast
        self._ckpt: Checkpoint | None = None
        self._model: Any = None
        self._torch: Any = None
        self._device: Any = None

    def _load(self) -> None:
        import torch

        from edgeseg.models.checkpoint import load_checkpoint

        try:
            device = torch.device(self.device)
        except RuntimeError:
            raise InputError(f"unknown torch device '{self.device}'; use cpu, cuda or cuda:N") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise InputError(
                f"device '{self.device}' was requested but torch {torch.__version__} sees no CUDA device; "
                "use device='cpu' or install the CUDA build of torch"
            )
        if device.type not in ("cpu", "cuda"):
            raise InputError(f"the torch backend runs on cpu or cuda; got '{self.device}'")
        if self.threads:
            torch.set_num_threads(self.threads)  # torch has no per-model limit; this one is global
        ckpt = load_checkpoint(self.path)  # InputError naming the file when it is not a checkpoint
        model = ckpt.build_model(device)
        if not self.channels_last:
            model = model.to(memory_format=torch.contiguous_format)
        self._ckpt, self._model, self._torch, self._device = ckpt, model, torch, device

    def _discover_specs(self) -> tuple[Sequence[TensorSpec], Sequence[TensorSpec]]:
        cfg = self._checkpoint.model_config
        return (
            [TensorSpec(INPUT_NAME, ("batch", cfg.in_channels, "height", "width"))],
            [TensorSpec(OUTPUT_NAME, ("batch", cfg.classes, "height", "width"))],
        )

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        x = tensor_of(feed[INPUT_NAME]).to(self._device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        self._checkpoint.check_input(tuple(x.shape))  # InputError: a size the model cannot take
        with (
            torch.inference_mode(),
            torch.autocast(self._device.type, dtype=torch.bfloat16, enabled=self.autocast == "bf16"),
        ):
            y = self._model(x)
        # contiguous(): back to plain NCHW, the layout every other backend returns.
        return {OUTPUT_NAME: y.float().contiguous().cpu().numpy()}

    def _close(self) -> None:
        self._model = self._ckpt = None

    def _embedded_manifest(self) -> Manifest:
        ckpt = self._checkpoint
        cfg = ckpt.model_config
        width, height = ckpt.img_size
        axes = {0: "batch"} if cfg.family == "imported" else _DYNAMIC
        return Manifest(
            target="checkpoint",
            precision="fp32",
            model_file=self.path.name,
            class_names=tuple(ckpt.class_names),
            input=ckpt.input_spec(INPUT_NAME, (width, height)),
            output=OutputSpec(name=OUTPUT_NAME, classes=cfg.classes),
            source={"checkpoint": recorded_path(self.path)},
            model={"name": cfg.arch, **cfg.kwargs, **cfg.to_dict()},  # kwargs flat too: schema-1 readers
            ignore_index=ckpt.ignore_index,
            dynamic_axes={INPUT_NAME: dict(axes), OUTPUT_NAME: dict(axes)},
        )

    def _executed_precision(self) -> str:
        if self.autocast == "bf16":  # asked for: autocast runs the convolutions in bf16
            return "bf16"
        if self._device.type == "cuda" and _tf32_convolutions(self._torch, self._device):
            return "tf32"
        return "fp32"

    def _describe(self) -> str:
        autocast = f", {self.autocast} autocast" if self.autocast else ""
        return f"{self.device}{', channels_last' if self.channels_last else ''}{autocast}"

    @property
    def _checkpoint(self) -> Checkpoint:
        assert self._ckpt is not None, "used before _load"
        return self._ckpt


def _tf32_convolutions(torch: Any, device: Any) -> bool:
    """Whether torch computes float32 convolutions on `device` in TF32 now: an Ampere or later GPU
    with TF32 allowed for cuDNN (the newer `fp32_precision` setting first, then `allow_tf32`)."""
    if torch.cuda.get_device_capability(device)[0] < 8:
        return False
    conv = getattr(torch.backends.cudnn, "conv", None)
    setting = getattr(conv, "fp32_precision", "none") if conv is not None else "none"
    if setting in ("tf32", "ieee"):
        return setting == "tf32"
    return bool(torch.backends.cudnn.allow_tf32)
