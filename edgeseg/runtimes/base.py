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

    _executed_precision()     what the runtime computes the loaded model in (read back from it)

and may override `_infer_chunks` (a model with a fixed batch given a larger batch: OpenVINO uses an
async queue), `_embedded_manifest` (metadata stored in the model file) and `_describe`.

Threads: every backend is safe to call from any thread, and each `infer` returns the caller its own
outputs and its own timings (`Outputs.infer_ms`, `Outputs.wait_ms`: they travel with the result, never
through a field of the backend another caller may have overwritten). The base class enforces it:
unless a subclass sets `reentrant = True`, its `_run` (so `_infer` and `_infer_chunks`) runs one call
at a time under a lock, so a new backend is safe without doing anything. A backend sets `reentrant`
only when its runtime call may run concurrently on one instance and it keeps per-call state apart
itself (ONNX Runtime's `run` is thread-safe; OpenVINO takes one infer request per call from a pool);
the contract suite (tests/runtimes/test_backends.py) runs threads on one instance of every backend
and checks each call against the sequential result. `close()` waits for calls in flight, and a call
that starts after it is refused.

Precision: `executed_precision` says what the runtime computes in, read back from the loaded model
where the runtime can tell (see `Precision`); a backend asks its runtime for the bundle's precision
and never for a lower one (fp32 -> fp32; fp16 -> fp16 where the device computes it natively, else
fp32; int8 -> int8 layers and fp32 for the rest; bf16 only when the caller asks).

Every backend takes the keyword `threads` (CPU threads for inference; None or 0: the runtime's
default) and spells it for its runtime itself, so callers such as the demo pass one number to any
backend instead of knowing each runtime's option.
"""

from __future__ import annotations

import abc
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np

from edgeseg._guards import first_nonfinite, is_out_of_memory, require_finite
from edgeseg.errors import EdgesegError, EdgesegRuntimeError, InputError, first_line
from edgeseg.formats import module_version

if TYPE_CHECKING:
    from edgeseg.manifest import Manifest

__all__ = ["PRECISION_BITS", "Backend", "Dim", "Outputs", "TensorSpec", "summarize_precisions"]

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


class Outputs(dict[str, np.ndarray]):
    """{output name: array} of one `Backend.infer` call, with that call's own timings.

    Attributes:
        infer_ms: wall time the runtime spent on this call (all chunks of a larger batch), in ms.
        wait_ms: time the call waited for the runtime (another thread's call on a backend that runs
            one call at a time), in ms; 0 when it did not wait.
    """

    infer_ms: float = 0.0
    wait_ms: float = 0.0


# Significant bits of each compute precision a backend can report: a precision that runs is never
# allowed fewer bits than the one asked for. (int8 layers are judged by the export's accuracy checks.)
PRECISION_BITS = {"fp32": 24, "tf32": 11, "fp16": 11, "bf16": 8}
_ORDER = ("int8", "fp16", "bf16", "tf32", "fp32")


def summarize_precisions(layers: Mapping[str, int], *, upcast_from: str | None = None) -> str:
    """The `executed_precision` text for the compute layers' precisions ({precision: layer count}):
    "fp32", "int8+fp32" (int8 layers, the rest in fp32), ...; `upcast_from` ("fp16") adds that the
    weights are stored at that precision and computed in the float precision shown:
    "fp32 (fp16 weights upcast)"."""
    names = [p for p in _ORDER if layers.get(p)] + sorted(p for p in layers if p not in _ORDER and layers[p])
    if not names:
        return "unknown"
    text = "+".join(names)
    return f"{text} ({upcast_from} weights upcast)" if upcast_from else text


def _axis_label(rank: int, axis: int) -> str:
    return f"axis {axis} ({_NCHW[axis]})" if rank == len(_NCHW) else f"axis {axis}"


class Backend(abc.ABC):
    """One model file, run by one runtime. Use as a context manager, or `load()` ... `close()`.

    `infer` takes `{tensor name: np.ndarray}` and returns `Outputs` (a dict of the same kind that also
    carries the call's `infer_ms` and `wait_ms`). Inputs must have the dtype, rank and static
    dimensions of `input_specs`; a model with a fixed batch B also accepts a batch that is a multiple
    of B and runs it in chunks of B (`infer_ms` then covers all of them). Errors: InputError for
    bad input or a model file that cannot be read (naming the file), EdgesegRuntimeError for a failed
    run or a call in the wrong state. A closed backend can be loaded again.

    Any thread may call any method; concurrent `infer` calls each get their own outputs (see the
    module notes: a lock unless the backend is `reentrant`).
    """

    name: ClassVar[str] = ""  # registry name, e.g. "onnxruntime"
    package: ClassVar[str] = ""  # the runtime's import name, for versions in `description`
    # True only when `_run` may run on several threads at once on one instance (the runtime call is
    # thread-safe and the backend keeps per-call state apart); False: the base class serialises it.
    reentrant: ClassVar[bool] = False

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
        # State changes (load, close) and the count of calls in flight, under one condition: close
        # waits for the calls in flight, and a call cannot start while the state changes.
        self._lock = threading.RLock()
        self._lifecycle = threading.Condition(self._lock)
        self._in_flight = 0
        self._serial = threading.Lock()  # one `_run` at a time, unless the backend is reentrant
        self._per_thread = threading.local()  # `last_infer_ms` of each calling thread
        self._executed: str | None = None  # `executed_precision`, read back once per load

    # ----------------------------------------------------------------------------------- public API
    def load(self: _B) -> _B:
        """Open the model file (a no-op when already loaded); returns self."""
        with self._lifecycle:
            while self._state == "closing":  # another thread's close: let it finish, then reopen
                self._lifecycle.wait()
            if self._state != "loaded":
                self._open()
        return self

    def _open(self) -> None:
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
        self._executed = None
        self._state = "loaded"

    def close(self) -> None:
        """Release the runtime's resources; safe to call twice. `load()` reopens the model.

        Calls in flight on other threads finish first; a call that starts once closing has begun
        is refused (EdgesegRuntimeError)."""
        with self._lifecycle:
            if self._state != "loaded":
                return
            self._state = "closing"
            while self._in_flight:
                self._lifecycle.wait()
            try:
                self._close()
            finally:
                self._state = "closed"
                self._lifecycle.notify_all()

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
    def executed_precision(self) -> str:
        """What the runtime computes the loaded model in, read back from it where the runtime can
        tell: "fp32", "fp16", "bf16", "int8+fp32" (int8 layers, the rest fp32), or with stored weights
        of another precision "fp32 (fp16 weights upcast)"; see each backend for how it knows."""
        with self._lifecycle:  # read once per load (ONNX Runtime's costs a session)
            self._require_loaded("executed_precision")
            if self._executed is None:
                self._executed = self._executed_precision()
            return self._executed

    @property
    def last_infer_ms(self) -> float | None:
        """Wall time of the calling thread's latest `infer`, in ms (None before its first). Each
        thread sees its own call's; `Outputs.infer_ms` of a result says the same for that result."""
        return getattr(self._per_thread, "infer_ms", None)

    @property
    def embedded_manifest(self) -> Manifest | None:
        """The edgeseg metadata stored in the model file itself (ONNX metadata_props, IR rt_info,
        checkpoint), or None for a model from elsewhere."""
        self._require_loaded("embedded_manifest")
        return self._embedded_manifest()

    @property
    def description(self) -> str:
        """What runs the model, with version and settings: "onnxruntime 1.31.1 (CPUExecutionProvider)"."""

        version = module_version(self.package).split("-")[0] if self.package else ""
        return f"{self.name} {version} ({self._describe()})".replace("  ", " ")

    def infer(self, inputs: Mapping[str, np.ndarray]) -> Outputs:
        """Run the model on `inputs` ({name: array}); returns {output name: array} as `Outputs`,
        with this call's `infer_ms` and `wait_ms`. Safe to call from several threads at once."""
        # The per-call bookkeeping is inline (no context-manager objects): it runs on every frame.
        with self._lock:
            self._require_loaded("infer")
            self._in_flight += 1
        try:
            return self._infer_checked(inputs)
        finally:
            with self._lock:
                self._in_flight -= 1
                if self._state == "closing" and not self._in_flight:
                    self._lifecycle.notify_all()

    def _infer_checked(self, inputs: Mapping[str, np.ndarray]) -> Outputs:
        feed, batch = self._validate(inputs)
        queued = time.perf_counter()
        try:
            if self.reentrant:
                start = time.perf_counter()
                outputs = self._run(feed, batch)
            else:
                with self._serial:
                    start = time.perf_counter()
                    outputs = self._run(feed, batch)
            end = time.perf_counter()
        except EdgesegError:
            raise
        except Exception as exc:  # runtimes raise their own types (pybind errors derive from Exception)
            if is_out_of_memory(exc):
                raise EdgesegRuntimeError(
                    f"{self.name} ran out of memory running '{self.path}' on a batch of {batch or 1} "
                    f"({first_line(exc)}); use a smaller batch or input size"
                ) from exc
            raise EdgesegRuntimeError(f"{self.name} failed to run '{self.path}': {first_line(exc)}") from exc
        result = Outputs(outputs)
        result.infer_ms, result.wait_ms = (end - start) * 1000.0, (start - queued) * 1000.0
        self._per_thread.infer_ms = result.infer_ms
        for name, value in result.items():
            # A NaN weight or an FP16 overflow gives NaN/Inf logits, whose argmax is silently class 0.
            require_finite(value, f"output '{name}' of '{self.path}' ({self.name})")
        return result

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

    @abc.abstractmethod
    def _executed_precision(self) -> str:
        """What the loaded model is computed in (`executed_precision`), read back from the runtime
        where it can tell, with `summarize_precisions`; called once per load."""

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
        closed = self._state in ("closed", "closing")
        how = "call load() to reopen it" if closed else "call load() first"
        state = "was closed" if closed else "is not loaded"
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
