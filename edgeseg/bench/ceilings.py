"""Measured compute ceilings: the best rate this machine's runtimes reach, per precision the kernels
compute in, timed in the same rounds as the benchmark's rows.

A per-CPU formula (edgeseg.bench.hardware.cpu_peak) is only an estimate, so the benchmark measures a
probe built to saturate the machine: a chain of `depth` 3x3 convolutions (`channels` in and out, ReLU
between them, on a `size` x `size` input). One large layer is not enough: a graph that takes and
returns fp32 converts its input and output to bf16 or int8 and back, and a single layer is limited by
those conversions; a chain amortises them over every layer and keeps activations in the compute
precision between layers, as a real network does. int8 is the same chain as a Q/DQ graph.

Every runtime that computes a precision natively times the probe through its `BackendSpec.peak`
(fp32: ONNX Runtime and OpenVINO pinned to f32; bf16 and fp16: OpenVINO where the CPU has them; int8:
both), and the precision's ceiling is the best of them (GFLOP/s = 2 x MACs / median time; int8 in
operations per second, the same units). OpenVINO names the kernel it chose (e.g.
"brgconv_avx512_amx_bf16"), recorded with the rate.

A row's `ceiling_share` is its rate / the ceiling of the precision its kernels ran at. A row above its
ceiling means the probe did not saturate the machine: the probe is raised (twice the channels, four
times the work per layer and byte) and measured again, up to `MAX_RAISES` times. The ceiling is never set to a
row's rate; a row still above the largest probe gets no share, and the report says so.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from edgeseg.runtimes.registry import missing_packages_of
from edgeseg.targets import backend_specs

__all__ = ["MAX_RAISES", "PROBE", "Ceilings", "Probe", "apply_ceilings", "probe_graph"]

MAX_RAISES = 3
PRECISIONS = ("fp32", "bf16", "fp16", "int8")


@dataclass(frozen=True)
class Probe:
    """The ceiling graph: `depth` chained `kernel` x `kernel` convolutions, `channels` -> `channels`,
    on a 1 x channels x size x size input."""

    channels: int = 128
    size: int = 56
    kernel: int = 3
    depth: int = 8

    @property
    def macs(self) -> int:
        return self.channels**2 * self.kernel**2 * self.size**2 * self.depth

    def raised(self) -> Probe:
        """The next larger probe: twice the channels (four times the arithmetic per byte moved), and
        up to 56x56, twice the size (fewer calls' overheads per operation)."""
        return replace(self, channels=self.channels * 2, size=min(self.size * 2, max(self.size, 56)))

    def describe(self) -> str:
        return (
            f"{self.depth} chained {self.kernel}x{self.kernel} Conv+ReLU, {self.channels}->{self.channels} "
            f"channels on {self.size}x{self.size} ({self.macs / 1e9:.2f} GMAC)"
        )


PROBE = Probe()


def probe_graph(probe: Probe, int8: bool) -> Any:
    """The probe as an ONNX model, [1, C, S, S] -> [1, C, S, S]; Q/DQ (uint8 activations, int8
    weights) around every convolution with `int8`."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    c, s, k = probe.channels, probe.size, probe.kernel
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, s, s])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c, s, s])
    nodes: list[Any] = []
    inits = []
    if int8:
        inits += [
            numpy_helper.from_array(np.array(4.0 / 255, np.float32), "xs"),
            numpy_helper.from_array(np.array(0, np.uint8), "xz"),
        ]
    src = "x"
    for i in range(probe.depth):
        # Scaled so that activations keep their range along the chain (no overflow, no collapse to 0).
        w = (rng.standard_normal((c, c, k, k)) * np.sqrt(2.0 / (c * k * k))).astype(np.float32)
        out = "y" if i == probe.depth - 1 else f"a{i}"
        weight = f"w{i}"
        if int8:
            scale = np.float32(np.abs(w).max() / 127)
            inits += [
                numpy_helper.from_array(np.round(w / scale).astype(np.int8), f"wq{i}"),
                numpy_helper.from_array(np.array(scale, np.float32), f"ws{i}"),
                numpy_helper.from_array(np.array(0, np.int8), f"wz{i}"),
            ]
            nodes += [
                helper.make_node("QuantizeLinear", [src, "xs", "xz"], [f"q{i}"]),
                helper.make_node("DequantizeLinear", [f"q{i}", "xs", "xz"], [f"d{i}"]),
                helper.make_node("DequantizeLinear", [f"wq{i}", f"ws{i}", f"wz{i}"], [weight]),
            ]
            src = f"d{i}"
        else:
            inits.append(numpy_helper.from_array(w, weight))
        nodes += [
            helper.make_node("Conv", [src, weight], [f"c{i}"], pads=[k // 2] * 4),
            helper.make_node("Relu", [f"c{i}"], [out]),
        ]
        src = out
    graph = helper.make_graph(nodes, "ceiling", [x], [y], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    return model


@dataclass
class _Runner:
    call: Callable[[], object]
    kernels: str
    samples: list[list[float]]  # seconds, one list per round


def _runners(probe: Probe, precision: str) -> dict[str, _Runner]:
    """A timed call of `probe` per installed runtime that computes `precision` natively (each
    backend's `peak` in its target's descriptor)."""
    data = probe_graph(probe, int8=precision == "int8").SerializeToString()
    x = np.random.default_rng(1).random((1, probe.channels, probe.size, probe.size), np.float32)
    runners: dict[str, _Runner] = {}
    for spec in backend_specs():
        if spec.peak is None or missing_packages_of(spec):
            continue
        module, function = spec.peak.split(":")
        made = getattr(importlib.import_module(module), function)(data, x, precision)
        if made is not None:
            call, kernels = made
            call()  # warm-up: runtimes allocate and pick kernels on the first call
            runners[spec.name] = _Runner(call, kernels, [])
    return runners


class Ceilings:
    """The probes of one benchmark run, timed round by round between the rows' timings.

    `precisions`: the precisions to measure (those the rows' kernels ran at, and fp32). A precision
    no installed runtime computes natively is left out. `seconds`: the most time per runtime and
    precision in one round (at least one call is timed). `probe`: the first probe (default `PROBE`).
    """

    def __init__(self, precisions: Iterable[str], seconds: float = 1.0, probe: Probe | None = None) -> None:
        probe = probe or PROBE  # read at the call: tests make the default probe small
        self.seconds = seconds
        self.probes: dict[str, Probe] = {}
        self.raises: dict[str, int] = {}
        self.beaten: dict[str, list[str]] = {}
        self._runners: dict[str, dict[str, _Runner]] = {}
        for precision in [p for p in PRECISIONS if p in set(precisions) | {"fp32"}]:
            runners = _runners(probe, precision)
            if runners:
                self.probes[precision], self.raises[precision] = probe, 0
                self._runners[precision] = runners

    def time_round(self, calls: int) -> None:
        """Time every probe once more, as a row is timed: `calls` calls per runtime, fewer once
        `seconds` have passed (at least one)."""
        for runners in self._runners.values():
            for runner in runners.values():
                samples: list[float] = []
                end = time.perf_counter() + self.seconds
                while not samples or (len(samples) < calls and time.perf_counter() < end):
                    t = time.perf_counter()
                    runner.call()
                    samples.append(time.perf_counter() - t)
                runner.samples.append(samples)

    def rate(self, precision: str, round_index: int | None = None) -> float | None:
        """The precision's ceiling in GFLOP/s: the best runtime's rate from the median of its calls
        (all rounds, or round `round_index`); None when not measured."""
        rates = self._rates(precision, round_index)
        return max(rates.values()) if rates else None

    def _rates(self, precision: str, round_index: int | None = None) -> dict[str, float]:
        probe = self.probes.get(precision)
        out: dict[str, float] = {}
        for name, runner in self._runners.get(precision, {}).items():
            if round_index is None:
                samples = [s for r in runner.samples for s in r]
            elif round_index < len(runner.samples):
                samples = runner.samples[round_index]
            else:
                samples = []
            if samples and probe is not None:
                value = 2 * probe.macs / float(np.median(samples)) / 1e9
                if np.isfinite(value) and value > 0:
                    out[name] = value
        return out

    @property
    def rounds(self) -> int:
        """Rounds timed since the last raise (the fewest over the probes)."""
        counts = [self.rounds_of(p) for p in self._runners]
        return min(counts) if counts else 0

    def rounds_of(self, precision: str) -> int:
        """Rounds timed of `precision`'s probe since it was last raised."""
        counts = [len(r.samples) for r in self._runners.get(precision, {}).values()]
        return min(counts) if counts else 0

    def raise_beaten(self, best_rows: dict[str, tuple[float, str]]) -> list[str]:
        """Raise the probe of every precision whose best row ({precision: (GFLOP/s, row name)}) ran
        faster than the probe: a probe a row can beat is not a peak. Returns the precisions raised
        (their samples start again); a precision at `MAX_RAISES` keeps its probe and its beaters are
        recorded."""
        raised = []
        for precision, (gflops, name) in best_rows.items():
            ceiling = self.rate(precision)
            if ceiling is None or gflops <= ceiling:
                continue
            if self.raises[precision] >= MAX_RAISES:
                if name not in self.beaten.setdefault(precision, []):
                    self.beaten[precision].append(name)
                continue
            probe = self.probes[precision].raised()
            runners = _runners(probe, precision)
            if runners:
                self.probes[precision], self._runners[precision] = probe, runners
                self.raises[precision] += 1
                raised.append(precision)
        return raised

    def to_meta(self) -> dict[str, Any]:
        """{precision: {"gflops", "runtime", "by_runtime", "kernels", "probe", "how", ...}}."""
        meta: dict[str, Any] = {}
        for precision, probe in self.probes.items():
            rates = {k: float(f"{v:.4g}") for k, v in self._rates(precision).items()}
            if not rates:
                continue
            best = max(rates, key=lambda k: rates[k])
            entry: dict[str, Any] = {
                "gflops": rates[best],
                "runtime": best,
                "by_runtime": rates,
                "kernels": {n: r.kernels for n, r in self._runners[precision].items() if r.kernels},
                "probe": {**asdict(probe), "macs": probe.macs},
                "how": f"{probe.describe()}, median per runtime over {self.rounds_of(precision)} "
                "interleaved rounds",
            }
            if self.raises[precision]:
                entry["raises"] = self.raises[precision]
            if self.beaten.get(precision):
                entry["beaten_by"] = list(self.beaten[precision])
            meta[precision] = entry
        return meta


def apply_ceilings(rows: list[Any], ceilings: dict[str, Any]) -> None:
    """Set each row's `ceiling_share`: its GFLOP/s / the ceiling of the precision its kernels ran at
    (`row.ceiling_precision`). A row faster than that ceiling gets none: the probe was not a peak,
    and the ceiling's "beaten_by" names the row (the ceiling is never set to a row's rate)."""
    for row in rows:
        ceiling = ceilings.get(row.ceiling_precision or row.precision) if row.gflops else None
        if ceiling is None:
            continue
        if row.gflops > ceiling["gflops"]:
            beaten = ceiling.setdefault("beaten_by", [])
            if row.name not in beaten:
                beaten.append(row.name)
            row.ceiling_share = None
        else:
            row.ceiling_share = round(row.gflops / ceiling["gflops"], 4)
