"""One optimisation step and the learning-rate schedule, shared by the loop and the benchmarks
(train_overhead.py, train_bf16.py); the error a diverged run stops with."""

from __future__ import annotations

import math

import torch

from edgeseg.errors import EdgesegRuntimeError

__all__ = ["TrainingDiverged", "cosine_with_warmup", "train_step"]


class TrainingDiverged(EdgesegRuntimeError):
    """The training loss became NaN or infinite (exit code 1)."""


def cosine_with_warmup(  # type: ignore[no-untyped-def]
    total_steps: int, warmup_steps: int, floor: float = 0.01, decay_steps: int | None = None
):
    """The lr factor per step: a linear warm-up, constant at 1, then a cosine down to `floor` over
    the last `decay_steps` (None: every step after the warm-up)."""
    start = warmup_steps if decay_steps is None else max(warmup_steps, total_steps - decay_steps)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        t = max(0.0, (step - start) / max(1, total_steps - start))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    return factor


def train_step(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    *,
    cpu_bf16: bool = False,
) -> torch.Tensor:
    """One optimisation step; returns the (detached) loss. `scaler`: CUDA fp16 autocast;
    `cpu_bf16`: CPU bf16 autocast. Shared with benchmarks/train_overhead.py and train_bf16.py."""
    optimizer.zero_grad(set_to_none=True)
    if cpu_bf16:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
    elif scaler is not None:
        with torch.autocast("cuda", dtype=torch.float16):
            loss = loss_fn(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
    return loss.detach()
