"""Assertion helpers: each mathematical law of docs/method.md written once.

The library's own property tests drive these with hypothesis; users can call them on their own
modules. Each raises ``AssertionError`` with a message naming the violated law.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .errors import InvalidTypeError
from .xblock import XBlock

__all__ = [
    "assert_elementwise_response_invariant",
    "assert_identity_response_losses_zero",
    "assert_identity_response_scores_one",
    "assert_reports_close",
    "assert_xblock_causal_order",
]


def assert_xblock_causal_order(block: XBlock, noise: Tensor, seed: int = 0) -> None:
    """Assert that cause ``Z_i`` never depends on noise ``N_j`` for ``j > i`` (exact zeros).

    Checked on the autograd Jacobian at ``noise`` ``(B, n)``; in training mode the Gumbel noise
    is frozen by reseeding before each call, so the Jacobian is that of one fixed gate draw.
    Also checks that rows of the batch do not mix.
    """
    n, u = block.n, block.unit_size
    batch = noise.shape[0]
    dtype = noise.dtype
    original = next(block.parameters()).dtype

    def causes(x: Tensor) -> Tensor:
        torch.manual_seed(seed)
        return block.causes(x)

    block.to(dtype)
    try:
        jac = torch.autograd.functional.jacobian(causes, noise)  # (B, n, u, B, n)
    finally:
        block.to(original)
    jac = jac.reshape(batch, n, u, batch, n)
    for i in range(n):
        later = jac[:, i, :, :, i + 1 :]
        if later.numel() and float(later.abs().max()) != 0.0:
            raise AssertionError(f"cause Z_{i} depends on later noise N_{i + 1}..N_{n - 1}")
    eye = torch.eye(batch, dtype=torch.bool)
    cross = jac.permute(0, 3, 1, 2, 4)[~eye]
    if cross.numel() and float(cross.abs().max()) != 0.0:
        raise AssertionError("XBlock mixes rows of the batch")


def _losses(model, latents, generator_seed, **kw):  # type: ignore[no-untyped-def]
    from .losses import EquivarianceLoss, InvarianceLoss

    out = {}
    for name, cls, extra in (
        ("invariance", InvarianceLoss, kw),
        ("equivariance", EquivarianceLoss, {}),
    ):
        g = torch.Generator(device=latents.device).manual_seed(generator_seed)
        loss = cls(model, dims="all", n_interventions=3, generator=g, **extra)
        out[name] = float(loss(latents).detach())
    return out


def assert_identity_response_losses_zero(
    model: object, latents: Tensor, *, atol: float = 1e-5, seed: int = 0
) -> None:
    """Assert both consistency losses vanish when ``R = E∘G`` is the identity on noise.

    ``model`` is anything the losses take (a module, or a :class:`~consistency.ResponseModel`);
    ``latents`` ``(B, n)`` serve as prior samples and as the bank of intervention values; every
    dimension is intervened (``dims="all"``), with the default recipe otherwise.
    """
    values = _losses(model, latents, seed)
    scale = float(latents.detach().square().mean()) + 1.0
    for name, value in values.items():
        if not abs(value) <= atol * scale:
            raise AssertionError(f"identity response: {name} loss is {value:.3g}, expected 0")


def assert_elementwise_response_invariant(
    model: object, latents: Tensor, *, atol: float = 1e-5, seed: int = 0
) -> None:
    """Assert the invariance loss with ``reference="response"`` vanishes when the response acts
    element-wise, ``R(N)_i = g_i(N_i)`` (with ``reference="noise"`` it measures ``g_i`` against
    the identity as well, and does not vanish)."""
    value = _losses(model, latents, seed, reference="response", sampling="posterior")["invariance"]
    scale = float(latents.detach().square().mean()) + 1.0
    if not abs(value) <= atol * scale:
        raise AssertionError(f"element-wise response: invariance loss is {value:.3g}, expected 0")


def assert_identity_response_scores_one(report: object, atol: float = 1e-4) -> None:
    """Assert the scores of an identity response: INV 1 off the diagonal and 0 on it, EQV 1, SCN 1."""
    from .evaluator import ConsistencyReport

    if not isinstance(report, ConsistencyReport):
        raise InvalidTypeError(f"expected a ConsistencyReport; got {type(report).__name__}")
    n = report.n
    eye = torch.eye(n, dtype=torch.bool)
    inv = report.invariance
    if not torch.allclose(inv[~eye], torch.ones(n * n - n), atol=atol):
        raise AssertionError(f"identity response: off-diagonal invariance is not 1:\n{inv}")
    if not torch.allclose(inv.diagonal(), torch.zeros(n), atol=atol):
        raise AssertionError(f"identity response: diagonal invariance is not 0:\n{inv}")
    if report.equivariance is not None and not torch.allclose(
        report.equivariance, torch.ones(n, n), atol=atol
    ):
        raise AssertionError(f"identity response: equivariance is not 1:\n{report.equivariance}")
    if not torch.allclose(report.self_consistency, torch.ones(n), atol=atol):
        raise AssertionError(
            f"identity response: self-consistency is not 1: {report.self_consistency}"
        )


def assert_reports_close(a: object, b: object, atol: float = 1e-4) -> None:
    """Assert two reports hold the same scores (INV, EQV, SCN), NaNs in the same places."""
    from .evaluator import ConsistencyReport

    if not (isinstance(a, ConsistencyReport) and isinstance(b, ConsistencyReport)):
        raise InvalidTypeError("expected two ConsistencyReports")
    pairs = [
        ("invariance", a.invariance, b.invariance),
        ("self_consistency", a.self_consistency, b.self_consistency),
    ]
    if a.equivariance is not None and b.equivariance is not None:
        pairs.append(("equivariance", a.equivariance, b.equivariance))
    for name, x, y in pairs:
        if not torch.allclose(x, y, atol=atol, equal_nan=True):
            raise AssertionError(f"{name} differs:\n{x}\nvs\n{y}")
