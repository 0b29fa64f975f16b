"""The backend contract: a Backend loads one model file and moves arrays through it, nothing else.

Preprocessing, postprocessing and per-stage timing belong to `edgeseg.Segmenter`; a backend only
runs `infer({input name: array}) -> {output name: array}`. The public methods live here, once, and do
what every runtime needs the same way: state checks (infer before `load()` or after `close()`),
input validation (names, dtype, rank, static dimensions, NaN/Inf) and timing. A subclass implements
the runtime-specific steps (Polygraphy's runner contract):

    _load()                   open the model file (import the runtime here, at use)
    _discover_specs()         (input TensorSpecs, output TensorSpecs) of the loaded model
    _infer(feed)              run one batch of validated, C-contiguous arrays
    _close()                  release the runtime's objects

and may override `_infer_chunks` (a model with a fixed batch given a larger batch: OpenVINO uses an
async queue), `_embedded_manifest` (metadata stored in the model file) and `_describe`.

Every backend takes the keyword `threads` (CPU threads for inference; None or 0: the runtime's
default) and spells it for its runtime itself, so callers such as the demo pass one number to any
backend instead of knowing each runtime's option.
"""

from __future__ import annotations

import abc
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np

from edgeseg._guards import first_nonfinite, is_out_of_memory, require_finite
from edgeseg.errors import EdgesegError, EdgesegRuntimeError, InputError, first_line

if TYPE_CHECKING:
    from edgeseg.manifest import Manifest

__all__ = ["Backend", "Dim", "TensorSpec"]

Dim = int | str | None  # a static size, or a dynamic axis (its symbolic name, or None when unnamed)
_NCHW = ("batch", "channels", "height", "width")  # how edgeseg's image tensors name their axes

_B = TypeVar("_B", bound="Backend")


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape and dtype of one model input or output. A dimension is an int when static and a
    str (symbolic name) or None when dynamic; `dtype` is a numpy dtype name such as "float32"."""

    name: str
    shape: tuple[Dim, ...]
    dtype: str = "float32"

    def static_dim(self, axis: int) -> int | None:
        """The size of `axis` when it is static, else None."""
        dim = self.shape[axis]
        return dim if isinstance(dim, int) and dim >= 0 else None

    @property
    def fixed_batch(self) -> int | None:
        """The static batch size (axis 0), or None when the batch is dynamic."""
        return self.static_dim(0) if self.shape else None


def _axis_label(rank: int, axis: int) -> str:
    return f"axis {axis} ({_NCHW[axis]})" if rank == len(_NCHW) else f"axis {axis}"


class Backend(abc.ABC):
    """One model file, run by one runtime. Use as a context manager, or `load()` ... `close()`.

    `infer` takes and returns `{tensor name: np.ndarray}`. Inputs must have the dtype, rank and static
    dimensions of `input_specs`; a model with a fixed batch B also accepts a batch that is a multiple
    of B and runs it in chunks of B (`last_infer_ms` then covers all of them). Errors: InputError for
    bad input or a model file that cannot be read (naming the file), EdgesegRuntimeError for a failed
    run or a call in the wrong state. A closed backend can be loaded again.
    """

    name: ClassVar[str] = ""  # registry name, e.g. "onnxruntime"
    package: ClassVar[str] = ""  # the runtime's import name, for versions in `description`

    def __init__(self, path: str | os.PathLike[str], *, threads: int | None = None) -> None:
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 0):
            raise InputError(
                f"threads must be a whole number >= 0 (0: the runtime's default); got {threads!r}"
            )
        self.path = Path(path)
        self.threads = threads or None  # CPU threads for inference; None: the runtime's default
        self._state = "new"  # "new" -> "loaded" -> "closed" (-> "loaded" again on reopen)
        self._inputs: tuple[TensorSpec, ...] = ()
        self._outputs: tuple[TensorSpec, ...] = ()
        self.last_infer_ms: float | None = None  # wall time of the latest `infer`, in milliseconds

    # ----------------------------------------------------------------------------------- public API
    def load(self: _B) -> _B:
        """Open the model file (a no-op when already loaded); returns self."""
        if self._state == "loaded":
            return self
        if not self.path.is_file():
            raise InputError(f"model file '{self.path}' does not exist")
        try:
            self._load()
        except (EdgesegError, MemoryError):
            raise
        except Exception as exc:  # what a runtime raises on a file damaged in a way nobody foresaw
            if is_out_of_memory(exc):
                raise EdgesegRuntimeError(
                    f"{self.name} ran out of memory loading '{self.path}' ({first_line(exc)}); close other "
                    "programs or use a smaller model"
                ) from exc
            raise EdgesegRuntimeError(
                f"{self.name} could not load '{self.path}' (corrupt file?): {first_line(exc)}"
            ) from exc
        try:
            inputs, outputs = self._discover_specs()
        except BaseException as exc:
            self._close()
            if isinstance(exc, Exception) and not isinstance(exc, (EdgesegError, MemoryError)):
                raise EdgesegRuntimeError(
                    f"{self.name} could not read the inputs and outputs of '{self.path}': {first_line(exc)}"
                ) from exc
            raise
        self._inputs, self._outputs = tuple(inputs), tuple(outputs)
        self._state = "loaded"
        return self

    def close(self) -> None:
        """Release the runtime's resources; safe to call twice. `load()` reopens the model."""
        if self._state == "loaded":
            try:
                self._close()
            finally:
                self._state = "closed"

    @property
    def is_loaded(self) -> bool:
        """Whether `infer` can run now."""
        return self._state == "loaded"

    @property
    def input_specs(self) -> tuple[TensorSpec, ...]:
        """The model's inputs (after `load()`)."""
        self._require_loaded("input_specs")
        return self._inputs

    @property
    def output_specs(self) -> tuple[TensorSpec, ...]:
        """The model's outputs (after `load()`)."""
        self._require_loaded("output_specs")
        return self._outputs

    @property
    def embedded_manifest(self) -> Manifest | None:
        """The edgeseg metadata stored in the model file itself (ONNX metadata_props, IR rt_info,
        checkpoint), or None for a model from elsewhere."""
        self._require_loaded("embedded_manifest")
        return self._embedded_manifest()

    @property
    def description(self) -> str:
        """What runs the model, with version and settings: "onnxruntime 1.31.1 (CPUExecutionProvider)"."""
        from edgeseg.formats import module_version

        version = module_version(self.package).split("-")[0] if self.package else ""
        return f"{self.name} {version} ({self._describe()})".replace("  ", " ")

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model on `inputs` ({name: array}); returns {output name: array}."""
        self._require_loaded("infer")
        feed, batch = self._validate(inputs)
        start = time.perf_counter()
        try:
            outputs = self._run(feed, batch)
        except EdgesegError:
            raise
        except Exception as exc:  # runtimes raise their own types (pybind errors derive from Exception)
            if is_out_of_memory(exc):
                raise EdgesegRuntimeError(
                    f"{self.name} ran out of memory running '{self.path}' on a batch of {batch or 1} "
                    f"({first_line(exc)}); use a smaller batch or input size"
                ) from exc
            raise EdgesegRuntimeError(f"{self.name} failed to run '{self.path}': {first_line(exc)}") from exc
        self.last_infer_ms = (time.perf_counter() - start) * 1000.0
        for name, value in outputs.items():
            # A NaN weight or an FP16 overflow gives NaN/Inf logits, whose argmax is silently class 0.
            require_finite(value, f"output '{name}' of '{self.path}' ({self.name})")
        return outputs

    def __enter__(self: _B) -> _B:
        return self.load()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}('{self.path}', {self._state})"

    # ------------------------------------------------------------------------- what subclasses write
    @abc.abstractmethod
    def _load(self) -> None:
        """Open `self.path`; raise InputError naming the file when it cannot be read."""

    @abc.abstractmethod
    def _discover_specs(self) -> tuple[Sequence[TensorSpec], Sequence[TensorSpec]]:
        """(inputs, outputs) of the loaded model."""

    @abc.abstractmethod
    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch the model accepts as is; return arrays the caller may keep (not runtime buffers)."""

    @abc.abstractmethod
    def _close(self) -> None:
        """Release what `_load` created."""

    def _infer_chunks(self, chunks: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """Run several batches of the model's fixed size; one after another unless overridden."""
        return [self._infer(chunk) for chunk in chunks]

    def _embedded_manifest(self) -> Manifest | None:
        return None

    def _refuse_nonfinite(self, weights: Iterable[tuple[str, Any]]) -> None:
        """For `_load`: InputError when a weight holds NaN or Inf. Runtimes often swallow NaN (a
        ReLU or max-pool returns 0 for it), so the outputs alone would not always show the damage."""
        bad = first_nonfinite(weights)
        if bad is not None:
            raise InputError(
                f"model '{self.path}' holds {bad[1]} NaN or Inf value(s) in weight '{bad[0]}'; it cannot "
                "give valid masks: export it again from a model with finite weights"
            )

    def _describe(self) -> str:
        return ""

    # ------------------------------------------------------------------------------------- internals
    def _require_loaded(self, what: str) -> None:
        if self._state == "loaded":
            return
        how = "call load() to reopen it" if self._state == "closed" else "call load() first"
        state = "was closed" if self._state == "closed" else "is not loaded"
        raise EdgesegRuntimeError(
            f"{what}: the {self.name} backend for '{self.path}' {state}; {how} (or use it in a with block)"
        )

    def _run(self, feed: dict[str, np.ndarray], batch: int | None) -> dict[str, np.ndarray]:
        fixed = self._fixed_batch()
        if fixed is None or batch is None or batch == fixed:
            return self._infer(feed)
        chunks = [{k: v[i : i + fixed] for k, v in feed.items()} for i in range(0, batch, fixed)]
        parts = self._infer_chunks(chunks)
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}

    def _fixed_batch(self) -> int | None:
        sizes = {spec.fixed_batch for spec in self._inputs}
        return sizes.pop() if len(sizes) == 1 else None

    def _validate(self, inputs: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], int | None]:
        """Check `inputs` against the specs; returns C-contiguous arrays and the common batch size."""
        if not isinstance(inputs, Mapping):
            raise InputError(f"infer takes a dict {{input name: array}}; got {type(inputs).__name__}")
        expected = [spec.name for spec in self._inputs]
        unknown = [name for name in inputs if name not in expected]
        missing = [name for name in expected if name not in inputs]
        if unknown or missing:
            problem = f"unknown input(s) {unknown}" if unknown else f"missing input(s) {missing}"
            raise InputError(f"{problem}; the model's inputs are {expected}")
        feed: dict[str, np.ndarray] = {}
        batches: set[int] = set()
        for spec in self._inputs:
            feed[spec.name] = self._check_array(spec, inputs[spec.name])
            if spec.shape:
                batches.add(feed[spec.name].shape[0])
        if len(batches) > 1:
            raise InputError(f"inputs have different batch sizes {sorted(batches)}; they must agree")
        return feed, batches.pop() if batches else None

    def _check_array(self, spec: TensorSpec, value: Any) -> np.ndarray:
        where = f"input '{spec.name}'"
        if not isinstance(value, np.ndarray):
            raise InputError(f"{where} must be a numpy array; got {type(value).__name__}")
        if value.dtype != np.dtype(spec.dtype):
            raise InputError(
                f"{where} has dtype {value.dtype}; the model expects {spec.dtype} "
                f"(convert with .astype(np.{spec.dtype}))"
            )
        if value.ndim != len(spec.shape):
            raise InputError(
                f"{where} has shape {value.shape}; the model expects {len(spec.shape)} dimensions "
                f"{tuple(spec.shape)}"
            )
        for axis in range(1, value.ndim):
            want = spec.static_dim(axis)
            if want is not None and value.shape[axis] != want:
                raise InputError(
                    f"{where} has {value.shape[axis]} at {_axis_label(value.ndim, axis)}; the model "
                    f"expects {want} (shape {tuple(spec.shape)}, got {value.shape})"
                )
        fixed = spec.fixed_batch
        if value.ndim and value.shape[0] == 0:
            raise InputError(f"{where} is an empty batch (shape {value.shape})")
        if value.ndim and fixed is not None and value.shape[0] % fixed:
            raise InputError(
                f"{where} has a batch of {value.shape[0]}; the model's batch is fixed at {fixed}: "
                f"pass {fixed} or a multiple of it"
            )
        # min and max propagate NaN and show +-Inf: two reductions without the per-call boolean
        # array np.isfinite(value).all() allocates (the size of the input, on every frame).
        if (
            value.dtype.kind == "f"
            and value.size
            and not (np.isfinite(value.min()) and np.isfinite(value.max()))
        ):
            raise InputError(f"{where}: frame contains NaN or Inf values")
        return value if value.flags.c_contiguous else np.ascontiguousarray(value)
