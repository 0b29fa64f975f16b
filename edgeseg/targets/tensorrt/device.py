"""The CUDA device TensorRT works on: its facts (for engine names and records) and its selection.

TensorRT builds, deserializes and runs on the *current* CUDA device, while the backend's stream and
buffers are torch tensors on `cuda:N`. Without selecting N first, an engine for the second GPU would
be built for, and run on, the first: every TensorRT call therefore runs inside `selected(N)`.
GPU facts and selection come from torch (a core dependency), imported at use.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from edgeseg.errors import EdgesegRuntimeError, InputError

__all__ = ["Device", "cuda_device", "selected"]


@dataclass(frozen=True)
class Device:
    """The CUDA device an engine is built for: name, compute capability "8.7", CUDA version."""

    index: int
    name: str
    compute_capability: str
    cuda: str

    @property
    def sm(self) -> str:
        return "sm" + self.compute_capability.replace(".", "")


def cuda_device(index: int = 0) -> Device:
    """Facts about CUDA device `index`, via torch; EdgesegRuntimeError when there is none."""
    import torch

    if not torch.cuda.is_available():
        build = f"torch {torch.__version__} " + ("with" if torch.version.cuda else "without") + " CUDA"
        raise EdgesegRuntimeError(
            f"TensorRT needs a CUDA device and {build} sees none; on a Jetson install JetPack's CUDA "
            "build of torch, on x86 the CUDA build matching your driver"
        )
    if not 0 <= index < torch.cuda.device_count():
        raise InputError(f"no CUDA device {index}; this machine has {torch.cuda.device_count()}")
    major, minor = torch.cuda.get_device_capability(index)
    return Device(index, torch.cuda.get_device_name(index), f"{major}.{minor}", str(torch.version.cuda))


@contextmanager
def selected(index: int) -> Iterator[None]:
    """Make CUDA device `index` the current one for the TensorRT calls inside (the previous one is
    current again after): builder, runtime and execution context all act on the current device."""
    import torch

    with torch.cuda.device(index):
        yield
