"""Central finite differences of a random-cotangent loss, element by element, in float64."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def check_gradients(
    fn: Callable[..., tuple[Tensor, ...]],
    inputs: dict[str, Tensor],
    eps: float = 1e-6,
    rtol: float = 1e-4,
    atol: float = 1e-7,
    seed: int = 0,
) -> None:
    """Asserts autograd gradients of ``sum_i <cot_i, out_i>`` match central differences.

    Args:
        fn: ``fn(**inputs)`` -> tuple of float64 outputs.
        inputs: named float64 tensors; those with ``requires_grad`` are checked.
        eps: finite-difference step.
        rtol, atol: tolerances of ``torch.testing.assert_close``.
        seed: seed of the random cotangents.
    """
    gen = torch.Generator().manual_seed(seed)
    outs = fn(**inputs)
    cots = [torch.randn(o.shape, generator=gen, dtype=o.dtype) for o in outs]

    def loss(**kw: Tensor) -> Tensor:
        return sum((o * c).sum() for o, c in zip(fn(**kw), cots))

    names = [k for k, v in inputs.items() if v.requires_grad]
    grads = torch.autograd.grad(loss(**inputs), [inputs[k] for k in names], allow_unused=True)
    for name, grad in zip(names, grads):
        x = inputs[name]
        grad = torch.zeros_like(x) if grad is None else grad
        numeric = torch.zeros_like(x)
        flat = numeric.view(-1)
        with torch.no_grad():
            for i in range(x.numel()):
                plus = {k: v.detach().clone() for k, v in inputs.items()}
                minus = {k: v.detach().clone() for k, v in inputs.items()}
                plus[name].view(-1)[i] += eps
                minus[name].view(-1)[i] -= eps
                flat[i] = (loss(**plus) - loss(**minus)) / (2 * eps)
        torch.testing.assert_close(
            grad, numeric, rtol=rtol, atol=atol, msg=lambda m: f"{name}: {m}"
        )
