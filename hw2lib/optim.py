"""Adam for small batches: PyTorch's fused kernel without the Python work around it.

Explained and measured on the performance page (``python -m bench``).
At batch size 8 a training step of the CNN takes about 2 ms on a laptop core, so the
Python that ``torch.optim.Adam(fused=True).step()`` runs before its one kernel shows: it
re-checks every parameter, regroups the tensors by device and dtype, and routes the call
through the functional API, every step. :class:`LeanFusedAdam` is the same optimiser
(same state, same ``state_dict``, the same kernel, so bit-identical weights) whose ``step``
calls the kernel directly once every parameter's state exists, and falls back to
``torch.optim.Adam`` for anything unusual (the first step, a closure, a tensor
learning rate, AMSGrad, gradient scaling, mixed devices or dtypes, a missing kernel).
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch

_KERNEL = getattr(torch, "_fused_adam_", None)  # a private op of torch: use it only while it exists


class LeanFusedAdam(torch.optim.Adam):
    """``torch.optim.Adam(params, lr, fused=True)`` with a short path per step (chapter 2)."""

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict], lr: float = 1e-3, **options) -> None:
        options["fused"] = True
        super().__init__(params, lr=lr, **options)
        self.fast_steps = 0  # how many steps took the short path (for tests and the benchmark)

    def _short_path_lists(self, group: dict) -> tuple[list, ...] | None:
        """The kernel's argument lists for ``group``, or None when the full ``Adam.step`` is needed."""
        if (group["amsgrad"] or group["capturable"] or group["differentiable"] or group["maximize"]
                or group["decoupled_weight_decay"] or isinstance(group["lr"], torch.Tensor)):
            return None
        params, grads, exp_avgs, exp_avg_sqs, steps = [], [], [], [], []
        device = dtype = None
        for parameter in group["params"]:
            grad = parameter.grad
            if grad is None:
                continue
            state = self.state.get(parameter)
            if not state or grad.is_sparse:  # the first step creates the state: let Adam do it
                return None
            if device is None:
                device, dtype = parameter.device, parameter.dtype
            elif parameter.device != device or parameter.dtype != dtype:
                return None  # Adam groups such tensors; this path keeps to one kernel call
            params.append(parameter)
            grads.append(grad)
            exp_avgs.append(state["exp_avg"])
            exp_avg_sqs.append(state["exp_avg_sq"])
            steps.append(state["step"])
        return params, grads, exp_avgs, exp_avg_sqs, steps

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients; with ``set_to_none`` (the default) without Optimizer's bookkeeping."""
        if not set_to_none:
            super().zero_grad(set_to_none=False)
            return
        for group in self.param_groups:
            for parameter in group["params"]:
                parameter.grad = None

    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """One Adam update of every parameter that has a gradient."""
        if (closure is not None or _KERNEL is None or getattr(self, "grad_scale", None) is not None
                or getattr(self, "found_inf", None) is not None):
            return super().step(closure)
        prepared = [self._short_path_lists(group) for group in self.param_groups]
        if any(lists is None for lists in prepared):
            return super().step(closure)
        with torch.no_grad():  # the kernel writes into leaf tensors that require gradients
            for group, (params, grads, exp_avgs, exp_avg_sqs, steps) in zip(self.param_groups, prepared):
                if not params:
                    continue
                beta1, beta2 = group["betas"]
                torch._foreach_add_(steps, 1)  # what Adam's fused path does before its kernel
                _KERNEL(params, grads, exp_avgs, exp_avg_sqs, [], steps, amsgrad=False, lr=group["lr"],
                        beta1=float(beta1), beta2=float(beta2), weight_decay=group["weight_decay"],
                        eps=group["eps"], maximize=False, grad_scale=None, found_inf=None)
        self.fast_steps += 1
        return None
