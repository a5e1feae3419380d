"""Context managers that switch how a user's modules behave for a while, and restore them after.

Library code never leaves a user's module in another mode than it found it: each manager records
every flag it touches and puts it back, also when the body raises.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any, Literal, NamedTuple, cast

import torch
from torch import nn
from torch.autograd.function import once_differentiable
from torch.nn.modules.batchnorm import _BatchNorm

from .errors import InvalidTypeError
from .recipe import check_choice

__all__ = ["DataStatistics", "evaluation_mode", "frozen_batchnorm"]


def _check_modules(modules: tuple[object, ...], owner: str) -> None:
    for m in modules:
        if not isinstance(m, nn.Module):
            raise InvalidTypeError(
                f"{owner} takes nn.Modules (e.g. the whole model); got {type(m).__name__}"
                + (" (a function: pass the module it calls)" if callable(m) else "")
            )


@contextlib.contextmanager
def evaluation_mode(*modules: nn.Module) -> Iterator[None]:
    """Put ``modules`` (and all their children) in eval mode under ``no_grad``; restore each flag after."""
    _check_modules(modules, "evaluation_mode")
    flags = [(m, m.training) for root in modules for m in root.modules()]
    try:
        for m, _ in flags:
            m.training = False
        with torch.no_grad():
            yield
    finally:
        for m, was in flags:
            m.training = was


@contextlib.contextmanager
def frozen_batchnorm(
    *modules: nn.Module, statistics: Literal["running", "batch", "update"] = "running"
) -> Iterator[None]:
    """Keep the BatchNorm layers inside ``modules`` from learning their running statistics from
    what runs in the body (e.g. generated images in a consistency loss); restore them after.

    Consistency training sends generated images (reconstructions, decoded interventions) through
    the encoder and intervened latents through the decoder. In training mode every such call would
    normalise with its own batch's statistics and move the running statistics towards them, so
    the networks evaluated later would not be the ones the loss shaped.

    Args:
        modules: the modules to search for ``BatchNorm`` layers (any depth); others are untouched.
        statistics: ``"running"`` (default): the layers run as in eval mode, normalising with
            their running statistics (learnt from real data only), which stay as they are: the
            consistency loss then shapes the very networks that are evaluated later. On MNIST
            this gave the largest single gain of the library's recipe, together with an
            invariance loss that compares with the noise's own coordinates (``reference="noise"``);
            with the response as reference it was unstable (the reconstruction error doubled),
            docs/method.md. ``"batch"``: the layers normalise with the batch's own statistics,
            as in training, but do not update the running ones. ``"update"``: nothing changes
            (plain training mode).

    Gradients flow through the layers' affine parameters in every setting. The consistency
    losses do this themselves around their own passes (their ``batchnorm=`` argument); use this
    context for passes of your own.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4)).train()
        >>> before = net[1].running_mean.clone()
        >>> with frozen_batchnorm(net):  # eval-mode BatchNorm inside, running stats untouched
        ...     _ = net(torch.randn(8, 3) + 5)
        >>> torch.equal(net[1].running_mean, before), net[1].training
        (True, True)
    """
    check_choice("statistics", statistics, ("running", "batch", "update"))  # "data": DataStatistics
    _check_modules(modules, "frozen_batchnorm")
    norms = [m for root in modules for m in root.modules() if isinstance(m, _BatchNorm)]
    if statistics == "update" or not norms:
        yield
        return
    saved = [
        (
            m,
            m.training,
            m.momentum,
            None if m.num_batches_tracked is None else m.num_batches_tracked.clone(),
        )
        for m in norms
    ]
    try:
        for m in norms:
            if statistics == "running":
                m.training = False
            elif m.training:
                m.momentum = 0.0  # running <- (1 - 0) * running + 0 * batch: unchanged
        yield
    finally:
        for m, training, momentum, tracked in saved:
            m.training, m.momentum = training, momentum
            if tracked is not None and m.num_batches_tracked is not None:
                m.num_batches_tracked.copy_(tracked)


def modules_of(*objs: object) -> list[nn.Module]:
    """The outermost modules among ``objs``: modules themselves, and the owners of bound
    methods (``model.generate`` -> ``model``); anything else (lambdas, ``None``) is skipped, and
    so is a module already inside another one found (``model.encoder`` beside ``model``), so
    that each layer is visited once when the list is walked."""
    found: list[nn.Module] = []
    for obj in objs:
        mod = obj if isinstance(obj, nn.Module) else getattr(obj, "__self__", None)
        if isinstance(mod, nn.Module) and all(mod is not f for f in found):
            found.append(mod)
    inside = {id(sub) for f in found for sub in f.modules() if sub is not f}
    return [f for f in found if id(f) not in inside]


class DataStatistics:
    """The batch statistics each BatchNorm layer under ``modules`` last saw in training mode,
    and a context that normalises other batches with them.

    A forward pre-hook on every BatchNorm layer notes each training-mode call outside
    :meth:`applied`: in a training loop, the step's real batch (the reconstruction pass). Inside
    :meth:`applied` each layer normalises with that batch's per-channel mean and biased variance
    instead of its input's own, so a pass of generated data goes through the same function as
    the real batch's pass and, like it, is unchanged by rescaling the weights before the layer;
    no running statistic moves. Statistics are used once: after :meth:`applied` they are stale,
    and a layer without fresh statistics (before the first real batch, or a second pass in one
    step) runs in eval mode on its running statistics.

    By default (``gradient=True``) the statistics keep their gradient: the generated pass's
    gradient also reaches the real batch's activations through them, so the gradient, like the
    value, is unchanged by rescaling the weights before the layer. ``gradient=False`` makes them
    constants of the generated pass, as the running statistics are in eval mode; that loses the
    consistency effect on users' BatchNorm models and can diverge
    (``benchmarks/ablate_step_cost.py``), and is kept for that ablation.

    The statistics cost no pass of their own in the forward: a layer that tracks running
    statistics has just folded the batch's mean and unbiased variance into them, so the hook
    keeps the two ``(C,)`` vectors from before the update and :meth:`applied` solves the update
    for the batch's statistics; their gradient costs one pass over the layer's input in the
    backward. A layer without running statistics (or with ``momentum=0``) computes them from
    its input.

    The consistency losses build one when ``batchnorm="data"`` (the default) and the model has
    BatchNorm layers; :meth:`remove` takes the hooks off.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4)).train()
        >>> stats = DataStatistics(net)
        >>> real = net(torch.randn(8, 3))  # noted
        >>> before = net[1].running_mean.clone()
        >>> with stats.applied():
        ...     generated = net(torch.randn(2, 3) + 5)  # normalised as the real batch was
        >>> torch.equal(net[1].running_mean, before), generated.requires_grad
        (True, True)
        >>> stats.remove()
    """

    def __init__(self, *modules: nn.Module, gradient: bool = True) -> None:
        _check_modules(modules, "DataStatistics")
        if not isinstance(gradient, bool):
            raise InvalidTypeError(
                f"DataStatistics: gradient must be True or False; got {gradient!r}"
            )
        seen: set[int] = set()
        self.layers: list[_BatchNorm] = []
        for root in modules:
            for m in root.modules():
                if isinstance(m, _BatchNorm) and id(m) not in seen:
                    seen.add(id(m))
                    self.layers.append(m)
        self.gradient = gradient
        self._seen: dict[int, _Seen] = {}
        self._applying = False
        self._handles = [m.register_forward_pre_hook(self._record) for m in self.layers]

    def _record(self, module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        if not (module.training and not self._applying and args):
            return
        x = args[0]
        layer = cast(_BatchNorm, module)
        if not _solvable(layer):
            self._seen[id(module)] = _Seen(x, None, None, 0)  # computed from x when applied
            return
        mean, var = _running(layer)
        self._seen[id(module)] = _Seen(x, mean.clone(), var.clone(), x.numel() // x.shape[1])

    def _statistics(self, layer: _BatchNorm, seen: _Seen) -> tuple[torch.Tensor, torch.Tensor]:
        if seen.mean is None:
            if self.gradient:
                return _moments(seen.input)
            with torch.no_grad():
                return _moments(seen.input)
        mean_now, var_now = _running(layer)
        mean_then, var_then = seen.mean, cast(torch.Tensor, seen.var)
        if layer.momentum is None:  # cumulative average: factor 1 / batches tracked
            tracked = cast(torch.Tensor, layer.num_batches_tracked)
            factor: torch.Tensor | float = 1.0 / tracked.clamp(min=1).to(mean_now.dtype)
        else:
            factor = float(layer.momentum)
        mean = (mean_now - (1 - factor) * mean_then) / factor
        unbiased = (var_now - (1 - factor) * var_then) / factor
        count = seen.per_channel
        var = (unbiased * ((count - 1) / count) if count > 1 else unbiased).clamp(min=0)
        if not self.gradient:
            return mean, var
        solved: tuple[torch.Tensor, torch.Tensor] = _SolvedMoments.apply(seen.input, mean, var)
        return solved

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """Every layer with fresh statistics normalises with them; the others run in eval mode
        on their running statistics; nothing is recorded; everything is restored after."""
        self._applying = True
        swapped: list[tuple[_BatchNorm, bool, object]] = []
        try:
            for m in self.layers:
                seen = self._seen.get(id(m))
                swapped.append((m, m.training, m.__dict__.get("forward", _MISSING)))
                if seen is None or not m.training:
                    m.training = False
                else:
                    stats = self._statistics(m, seen)
                    m.forward = functools.partial(_normalise_with, m, stats)  # type: ignore[method-assign]
            yield
        finally:
            for m, training, forward in swapped:
                m.training = training
                if forward is _MISSING:
                    m.__dict__.pop("forward", None)
                else:
                    m.forward = forward  # type: ignore[method-assign, assignment]
            self._seen.clear()
            self._applying = False

    def remove(self) -> None:
        """Take the recording hooks off the layers."""
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._seen.clear()


class _Seen(NamedTuple):
    """What a pre-hook kept of one training-mode call: the input, and (for a layer whose update
    can be solved) the running statistics before the call's update and the count per channel."""

    input: torch.Tensor
    mean: torch.Tensor | None
    var: torch.Tensor | None
    per_channel: int


def _running(layer: _BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """The layer's running mean and variance (present: see :func:`_solvable`)."""
    return cast(torch.Tensor, layer.running_mean), cast(torch.Tensor, layer.running_var)


def _solvable(layer: _BatchNorm) -> bool:
    """Whether the layer's running-statistics update can be solved for the batch's statistics."""
    return (
        layer.track_running_stats
        and layer.running_mean is not None
        and layer.running_var is not None
        and (layer.momentum is None or float(layer.momentum) > 0)
    )


_MISSING = object()


class _Moments(torch.autograd.Function):
    """Per-channel mean and biased variance of a BatchNorm input ``(B, C, ...)``, with a fused
    backward, faster on CPU than ``Tensor.var`` over the non-channel axes and than autograd's
    composite of ``mean`` / ``sub`` / ``square`` (``benchmarks/bench_batchnorm_statistics.py``).
    Once differentiable: a second derivative raises."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dims = [0, *range(2, x.ndim)]
        mean = x.mean(dims, keepdim=True)
        centred = x - mean
        ctx.save_for_backward(centred)
        return mean.flatten(), centred.square().mean(dims)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_mean: torch.Tensor, grad_var: torch.Tensor) -> torch.Tensor:
        (centred,) = ctx.saved_tensors
        count = centred.numel() // centred.shape[1]
        shape = [1, -1] + [1] * (centred.ndim - 2)
        return torch.addcmul(
            (grad_mean / count).view(shape), centred, (grad_var * (2.0 / count)).view(shape)
        )


class _SolvedMoments(torch.autograd.Function):
    """The per-channel mean and biased variance of a BatchNorm input ``x``, given (solved from
    the running-statistics update), with the gradient of the true moments of ``x``:
    ``dL/dx = dL/dmean / N + 2 (x - mean) dL/dvar / N``, computed as one fused pass
    ``c0 + c1 x`` with per-channel ``c0, c1``. The forward costs nothing. Once differentiable."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        ctx.save_for_backward(x, mean)
        return mean.clone(), var.clone()

    @staticmethod
    @once_differentiable
    def backward(
        ctx: Any, grad_mean: torch.Tensor, grad_var: torch.Tensor
    ) -> tuple[torch.Tensor, None, None]:
        x, mean = ctx.saved_tensors
        count = x.numel() // x.shape[1]
        shape = [1, -1] + [1] * (x.ndim - 2)
        # dL/dx = dL/dmean / N + 2 (x - mean) dL/dvar / N, as one pass: c0 + c1 * x
        slope = grad_var * (2.0 / count)
        offset = grad_mean / count - slope * mean
        if x.dtype in (torch.float16, torch.bfloat16):
            grad = torch.addcmul(offset.view(shape), x.float(), slope.view(shape))
            return grad.to(x.dtype), None, None
        grad = torch.addcmul(offset.to(x.dtype).view(shape), x, slope.to(x.dtype).view(shape))
        return grad, None, None


def _moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean, var)`` per channel, in float32 for a half-precision input."""
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    mean, var = _Moments.apply(x)
    return mean, var


def _normalise_with(
    layer: _BatchNorm, stats: tuple[torch.Tensor, torch.Tensor], x: torch.Tensor
) -> torch.Tensor:
    """``x`` normalised with ``stats`` and the layer's affine map, folded into one per-channel
    scale and shift (``(C,)`` vectors) and applied as one ``addcmul``: the same function as
    ``(x - mean) / sqrt(var + eps) * weight + bias`` with one full-size kernel forward and
    backward instead of four."""
    mean, var = stats
    shape = [1, -1] + [1] * (x.ndim - 2)
    scale = torch.rsqrt(var + layer.eps)
    shift = -mean * scale
    if layer.affine:
        scale = scale * layer.weight
        shift = shift * layer.weight + layer.bias
    out = torch.addcmul(shift.view(shape), x, scale.view(shape))
    return out.to(x.dtype)
