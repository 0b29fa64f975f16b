"""INT8 for ExecuTorch: PyTorch 2 Export post-training quantization (PT2E) with XNNPACKQuantizer.

The network is captured with `torch.export`, annotated by XNNPACK's quantizer (int8 activations,
per-tensor affine; int8 weights, per-channel symmetric: what XNNPACK's int8 kernels run), observed
on the shared calibration set (edgeseg.exporters.quantize) and converted to a graph with
quantize/dequantize pairs that the XNNPACK partitioner lowers to int8 kernels.

`--calib-method` picks the activation observer, as for ONNX Runtime's calibration:

    minmax      MinMaxObserver: the observed range
    entropy     HistogramObserver: the range that minimises the quantization error over a histogram
                of the activations (XNNPACK's own default; L2 error rather than KL divergence)
    percentile  the same histogram, clipped at the 99.999th percentile at both ends (ONNX Runtime's
                default percentile)

`--max-drop` / `--max-class-drop` run the shared search (edgeseg.exporters.accuracy): the other
observers, then the first and last convolution kept in float, then the most sensitive ones; a
convolution is kept in float by leaving its module out of the quantizer's annotation.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from edgeseg.errors import EdgesegRuntimeError, first_line

if TYPE_CHECKING:
    import numpy as np
    import torch

__all__ = ["OBSERVERS", "PERCENTILE", "conv_modules", "quantize_module", "quiet"]

PERCENTILE = 99.999
# --calib-method -> how the activations' ranges are found (recorded in the manifest).
OBSERVERS = {
    "minmax": "MinMaxObserver (observed range)",
    "entropy": "HistogramObserver (range of least L2 quantization error)",
    "percentile": f"HistogramObserver clipped at the {PERCENTILE}th percentile",
}
SCHEME = "int8 activations (per-tensor affine), int8 weights (per-channel symmetric)"
_CONV_OPS = ("conv2d", "conv_transpose2d", "convolution")


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence what torch.export, torchao and ExecuTorch print that the user cannot act on
    (deprecation notes from their internals, pytree registration notices); errors still raise."""
    loggers = [logging.getLogger(n) for n in ("torch", "torchao", "executorch")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _module_name(node: Any) -> str:
    """The innermost module a graph node was traced from ("" for none)."""
    stack = node.meta.get("nn_module_stack") or {}
    return str(list(stack.values())[-1][0]) if stack else ""


def _convs_in(graph_module: torch.fx.GraphModule) -> list[str]:
    names: list[str] = []
    for node in graph_module.graph.nodes:
        op = getattr(node.target, "__name__", str(node.target))
        if node.op == "call_function" and op.split(".")[0] in _CONV_OPS:
            name = _module_name(node)
            if name and name not in names:
                names.append(name)
    return names


def _capture(module: torch.nn.Module, example: torch.Tensor, dynamic_shapes: Any) -> torch.fx.GraphModule:
    import torch

    # A copy: PT2E folds batch norm into the convolutions, which must not touch the reference model.
    return torch.export.export(
        copy.deepcopy(module).eval(), (example,), dynamic_shapes=dynamic_shapes
    ).module()


def conv_modules(module: torch.nn.Module, example: torch.Tensor, dynamic_shapes: Any = None) -> list[str]:
    """Names of the modules holding `module`'s convolutions, in the order they run (what
    `quantize_module`'s `exclude` takes)."""
    with quiet():
        return _convs_in(_capture(module, example, dynamic_shapes))


def _percentile_observer() -> type:
    from torchao.quantization.pt2e.observer import HistogramObserver

    class PercentileObserver(HistogramObserver):  # type: ignore[misc]
        """HistogramObserver whose range is the PERCENTILE-th percentile at both ends."""

        def _non_linear_param_search(self) -> tuple[Any, Any]:
            import torch

            cdf = torch.cumsum(self.histogram, 0) / torch.sum(self.histogram).clamp(min=1)
            edges = torch.linspace(float(self.min_val), float(self.max_val), self.bins + 1)
            tail = 1 - PERCENTILE / 100
            lo = int(torch.searchsorted(cdf, torch.tensor(tail)))
            hi = int(torch.searchsorted(cdf, torch.tensor(1 - tail)))
            return edges[lo], edges[min(hi + 1, self.bins)]

    return PercentileObserver


def _config(method: str) -> Any:
    """XNNPACK's static int8 config with the activation observer of `method`."""
    from dataclasses import replace

    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.observer import HistogramObserver, MinMaxObserver

    config = get_symmetric_quantization_config(is_per_channel=True)
    observer = {"minmax": MinMaxObserver, "entropy": HistogramObserver}.get(method) or _percentile_observer()
    act = config.input_activation
    spec = replace(act, observer_or_fake_quant_ctr=observer.with_args(eps=2**-12))
    return replace(config, input_activation=spec, output_activation=spec)


def quantize_module(
    module: torch.nn.Module,
    example: torch.Tensor,
    calib: Sequence[np.ndarray],
    *,
    method: str,
    exclude: Sequence[str] = (),
    dynamic_shapes: Any = None,
) -> torch.fx.GraphModule:
    """The INT8 graph of `module` (PT2E, XNNPACKQuantizer) calibrated on `calib` with the observer
    of `method`; the modules named in `exclude` (see `conv_modules`) stay in float."""
    import torch

    excluded = set(exclude)
    try:
        with quiet():
            from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer
            from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

            quantizer = XNNPACKQuantizer().set_global(_config(method))
            if excluded:
                quantizer.set_filter_function(lambda node: _module_name(node) not in excluded)
            prepared = prepare_pt2e(_capture(module, example, dynamic_shapes), quantizer)
            with torch.no_grad():
                for x in calib:
                    prepared(torch.from_numpy(x))
            return convert_pt2e(prepared)
    except Exception as exc:
        raise EdgesegRuntimeError(f"PT2E quantization for ExecuTorch failed: {first_line(exc)}") from exc
