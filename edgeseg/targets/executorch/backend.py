"""The ExecuTorch backend: runs a `.pte` program with ExecuTorch's Python runtime, on CPU.

The runtime is the C++ extension `executorch.extension.pybindings._C`, imported after torch (it
links libtorch). Its public wrapper, `executorch.runtime`, imports the exporter stack first (exir,
torch._dynamo, inductor: about 3,000 modules, several seconds per process), nothing a runtime needs;
it is the fallback should a release move the extension.

Damaged files: ExecuTorch verifies a program's own flatbuffer, not the XNNPACK payload inside it;
changed bytes there crash the process (a segfault, or an abort when the runtime logs garbled text:
its log lines go to Python's `sys.stderr`, and bytes that are not UTF-8 make pybind11 abort). So an
edgeseg program carries its own sha256 (`seal`, in its metadata, computed with the digest's own
characters zeroed), checked before the runtime reads the file: a changed byte anywhere is one
InputError. A file without ExecuTorch's header is refused before the runtime sees it; a `.pte` from
elsewhere (no edgeseg metadata) has no seal to check. The runtime's log lines are captured while
loading, and a load that fails quotes the line that says why.

Shapes: a method's metadata gives each tensor's largest shape (its memory is planned ahead of time);
which axes vary comes from the edgeseg metadata in the program (the manifest's `dynamic_axes`). A
dynamic program takes any size up to its planned one whose sides divide by the model's size multiple,
and any batch: beyond the planned batch it runs in chunks.

Threads: `threads` sizes ExecuTorch's thread pool, of which a process has one (like torch's), so the
setting of the backend loaded last holds (None: the pool's size before any backend changed it).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from edgeseg._records import parse_json
from edgeseg.errors import EdgesegRuntimeError, InputError, first_line
from edgeseg.manifest import Manifest, manifest_from_onnx_metadata
from edgeseg.runtimes.base import Backend, Dim, TensorSpec

__all__ = ["METADATA_METHOD", "SEAL_KEY", "ExecuTorchBackend", "seal"]

# The program's constant method that returns the edgeseg metadata: one JSON object of
# edgeseg.manifest.onnx_metadata's keys and values (written by the exporter).
METADATA_METHOD = "edgeseg_metadata"
# The key of the program's sha256 in the metadata object, and the digest's placeholder until sealed.
SEAL_KEY = "program_sha256"
UNSEALED = "0" * 64
_SEAL = re.compile(rb'"' + SEAL_KEY.encode() + rb'":"([0-9a-f]{64})"')
_MAGIC = b"ET"  # bytes 4..5 of every .pte (its flatbuffer file identifier, "ET12" in ExecuTorch 1.x)
# ExecuTorch's ScalarType codes -> numpy dtype names (executorch/runtime/core/portable_type/scalar_type.h).
_DTYPES = {0: "uint8", 1: "int8", 2: "int16", 3: "int32", 4: "int64", 5: "float16", 6: "float32",
           7: "float64", 11: "bool"}  # fmt: skip


@contextlib.contextmanager
def _runtime_log() -> Iterator[io.StringIO]:
    """Collect what the runtime logs during the block instead of printing it."""
    log = io.StringIO()
    with contextlib.redirect_stderr(log):
        yield log


_default_threads: list[int] = []  # the pool's size before any backend resized it


def _import_runtime() -> tuple[Any, Any]:
    """(torch, the runtime's extension module); the first import's log lines are dropped."""
    import torch

    with _runtime_log():
        try:
            from executorch.extension.pybindings import _C as runtime
        except ImportError:
            from executorch.extension.pybindings import portable_lib as runtime
        if not _default_threads:
            _default_threads.append(int(runtime._threadpool_get_thread_count()))
    return torch, runtime


def _why(log: io.StringIO, exc: BaseException) -> str:
    """The runtime's own reason: its last log line ("[program.cpp:114] File size is too small ..."),
    else the exception's first line (which only holds an error code)."""
    lines = [ln.split("] ", 1)[-1].strip() for ln in log.getvalue().splitlines() if ln.strip()]
    return lines[-1] if lines else first_line(exc)


def _digest(data: bytes, at: int) -> str:
    """sha256 of a program with the 64 digest characters at `at` zeroed."""
    return hashlib.sha256(data[:at] + UNSEALED.encode() + data[at + 64 :]).hexdigest()


def seal(program: bytes) -> bytes:
    """The serialized program with its metadata's placeholder digest replaced by its sha256."""
    found = [m for m in _SEAL.finditer(program) if m.group(1) == UNSEALED.encode()]
    if len(found) != 1:
        raise EdgesegRuntimeError(f"the program holds {len(found)} seal placeholders; expected one")
    at = found[0].start(1)
    return program[:at] + _digest(program, at).encode() + program[at + 64 :]


class ExecuTorchBackend(Backend):
    """An ExecuTorch program (`.pte`) run by ExecuTorch's runtime and its XNNPACK delegate.

    Args:
        path: the `.pte` file.
        device: "cpu" (default; the only device of the XNNPACK delegate).
        threads: the common thread option of every backend; here the size of ExecuTorch's thread
            pool (process-wide; None: the runtime's default, one thread per performance core).
    """

    name = "executorch"
    package = "executorch"

    def __init__(
        self, path: str | os.PathLike[str], *, device: str | None = None, threads: int | None = None
    ) -> None:
        super().__init__(path, threads=threads)
        self.device = str(device or "cpu").strip().lower()
        if self.device != "cpu":
            raise InputError(f"the executorch backend runs on cpu (XNNPACK); got device '{device}'")
        self._torch: Any = None
        self._program: Any = None
        self._method: Any = None
        self._manifest: Manifest | None = None
        self._planned: tuple[int, ...] = ()  # the input's largest shape
        self._multiple = 1  # what a dynamic input's height and width must divide by
        self._input = ""
        self._output_names: list[str] = []

    def _check_file(self) -> str | None:
        """InputError for a file that is not an intact program; returns its seal (None: unsealed)."""
        data = self.path.read_bytes()
        if len(data) < 8 or data[4:6] != _MAGIC or not data[6:8].isdigit():
            raise InputError(
                f"cannot load ExecuTorch program '{self.path}': it does not start with an ExecuTorch "
                "header (corrupt, or not a .pte file?)"
            )
        found = list(_SEAL.finditer(data))
        if not found:
            return None
        if len(found) > 1 or _digest(data, found[0].start(1)) != found[0].group(1).decode():
            raise InputError(
                f"ExecuTorch program '{self.path}' has been modified or is corrupt: its content does not "
                "match the sha256 it was written with; export it again"
            )
        return found[0].group(1).decode()

    def _load(self) -> None:
        sealed = self._check_file()
        torch, runtime = _import_runtime()
        with _runtime_log() as log:
            try:
                program = runtime._load_program(
                    str(self.path), program_verification=runtime.Verification.InternalConsistency
                )
                names = [program.get_method_name(i) for i in range(program.num_methods())]
                if "forward" not in names:
                    raise InputError(f"ExecuTorch program '{self.path}' has no forward method: {names}")
                metadata = program.load_method(METADATA_METHOD)() if METADATA_METHOD in names else None
                self._manifest = self._read_metadata(metadata, sealed)
                method = program.load_method("forward")  # after the seal: this reads the XNNPACK payload
            except InputError:
                raise
            except Exception as exc:  # the runtime raises RuntimeError with an error code only
                raise InputError(
                    f"cannot load ExecuTorch program '{self.path}' (corrupt or truncated?): {_why(log, exc)}"
                ) from None
        wanted = self.threads or _default_threads[0]
        if runtime._threadpool_get_thread_count() != wanted:  # another backend's setting: replace it
            with _runtime_log():
                runtime._unsafe_reset_threadpool(wanted)
        self._torch, self._program, self._method = torch, program, method

    def _read_metadata(self, values: Sequence[Any] | None, sealed: str | None) -> Manifest | None:
        if not values:
            return None
        where = f"the edgeseg metadata of '{self.path}'"
        if not isinstance(values[0], (str, bytes)):
            raise InputError(f"{where} is not JSON text (corrupt file?): export it again")
        props = parse_json(values[0], where, "export it again")
        if not isinstance(props, dict) or sealed is None or props.get(SEAL_KEY) != sealed:
            # Every edgeseg program is sealed: metadata without the seal the file check found is damage.
            raise InputError(f"{where} is damaged (corrupt file?): export it again")
        return manifest_from_onnx_metadata(props, model_file=self.path.name, where=where)

    def _discover_specs(self) -> tuple[Sequence[TensorSpec], Sequence[TensorSpec]]:
        meta = self._method.method_meta()
        m = self._manifest
        axes = m.dynamic_axes if m is not None else {}
        in_names = [m.input.name] if m is not None else []
        out_names = [m.output.name, *([m.output.mask] if m.output.mask else [])] if m is not None else []

        def specs(count: int, info: Any, names: list[str], prefix: str) -> list[TensorSpec]:
            found = []
            for i in range(count):
                t = info(i)
                name = names[i] if i < len(names) else f"{prefix}{i}"
                dynamic = axes.get(name, {})
                shape: tuple[Dim, ...] = tuple(
                    str(dynamic[a]) if a in dynamic else int(s) for a, s in enumerate(t.sizes())
                )
                found.append(TensorSpec(name, shape, _DTYPES.get(t.dtype(), f"scalar type {t.dtype()}")))
            return found

        inputs = specs(meta.num_inputs(), meta.input_tensor_meta, in_names, "input")
        outputs = specs(meta.num_outputs(), meta.output_tensor_meta, out_names, "output")
        if len(inputs) != 1:
            raise InputError(f"ExecuTorch program '{self.path}' has {len(inputs)} inputs; edgeseg runs one")
        self._planned = tuple(int(s) for s in meta.input_tensor_meta(0).sizes())
        self._multiple = m.input.size_multiple if m is not None else 1
        self._input, self._output_names = inputs[0].name, [o.name for o in outputs]
        return inputs, outputs

    def _check_bounds(self, x: np.ndarray) -> None:
        """InputError for a size beyond the planned one, or sides a dynamic model cannot take."""
        for axis in range(2, min(x.ndim, len(self._planned))):
            side, most = x.shape[axis], self._planned[axis]
            label = ("height", "width")[axis - 2] if x.ndim == 4 else f"axis {axis}"
            if side > most or side % self._multiple:
                raise InputError(
                    f"input '{self._input}' has {side} at axis {axis} ({label}); this ExecuTorch program "
                    f"takes sides that divide by {self._multiple}, up to {most} (its memory is planned "
                    "for that): export again with a larger --img-size for larger frames"
                )

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = feed[self._input]
        self._check_bounds(x)
        step = self._planned[0] if self._planned else x.shape[0]
        if x.shape[0] <= step:
            return self._execute(x)
        parts = [self._execute(x[i : i + step]) for i in range(0, x.shape[0], step)]
        return {name: np.concatenate([p[name] for p in parts]) for name in self._output_names}

    def _execute(self, x: np.ndarray) -> dict[str, np.ndarray]:
        try:
            outputs = self._method([self._torch.from_numpy(x)])  # cloned: they outlive the next call
        except RuntimeError as exc:
            raise EdgesegRuntimeError(
                f"executorch failed to run '{self.path}' on input shape {x.shape}: {first_line(exc)}"
            ) from None
        return {name: out.numpy() for name, out in zip(self._output_names, outputs, strict=True)}

    def _close(self) -> None:
        self._method = self._program = None

    def _embedded_manifest(self) -> Manifest | None:
        return self._manifest

    def _executed_precision(self) -> str:
        # XNNPACK runs a PT2E-quantized program's quantized ops in int8 and the rest (and every op of
        # a float program) in fp32; it has no bf16 or silent reduced-precision path on the CPU. The
        # program's own metadata says whether it was quantized.
        precision = self._manifest.precision if self._manifest is not None else "fp32"
        return "int8+fp32" if precision == "int8" else "fp32"

    def _describe(self) -> str:
        threads = f", {self.threads} threads" if self.threads else ""
        return f"cpu, XNNPACK{threads}"
