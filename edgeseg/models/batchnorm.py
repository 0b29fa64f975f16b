"""Whether a network can take a training step on a batch of one image.

BatchNorm in training mode needs more than one value per channel to compute a variance. A batch of
one image has that wherever the feature map is larger than 1x1, but not after a global pooling:
DeepLabV3's and DeepLabV3+'s ASPP pooling branch normalises a 1x1 map, so one image per batch makes
torch raise "Expected more than 1 value per channel when training" at the first step, after all the
setup. Found by one forward pass, so any architecture (SMP's, imported ones) is judged as it is.
"""

from __future__ import annotations

from typing import Any

__all__ = ["single_value_batchnorm"]


def single_value_batchnorm(model: Any, channels: int, size_wh: tuple[int, int]) -> str | None:
    """The first BatchNorm layer of `model` that would normalise a single value per channel on a
    batch of one `size_wh` (width, height) image, as "NAME (TYPE)"; None when there is none.

    The forward pass runs in eval mode under no_grad (running statistics are left as they are); the
    shapes each layer sees are the same as in training.
    """
    import torch
    from torch.nn.modules.batchnorm import _BatchNorm

    found: list[str] = []

    def check(name: str) -> Any:
        def hook(module: Any, args: tuple[Any, ...]) -> None:
            x = args[0]
            if not found and x.dim() >= 2 and x.numel() // max(x.shape[1], 1) <= 1:
                found.append(f"'{name}' ({type(module).__name__})")

        return hook

    handles = [
        m.register_forward_pre_hook(check(n)) for n, m in model.named_modules() if isinstance(m, _BatchNorm)
    ]
    if not handles:
        return None
    was_training = model.training
    try:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        x = torch.zeros(1, channels, size_wh[1], size_wh[0], device=device)
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return found[0] if found else None
