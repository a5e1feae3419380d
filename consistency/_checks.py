"""Input validation shared by every public entry point.

Checks that look at tensor *values* (finiteness, index ranges) are skipped while
``torch.compile`` traces, because a data-dependent branch would break the graph; shape checks
are static and always run.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .errors import InvalidTypeError, InvalidValueError, NonFiniteError, ShapeError


def is_compiling() -> bool:
    """Whether the caller is being traced by ``torch.compile`` (data checks are skipped then)."""
    compiler = getattr(torch, "compiler", None)
    if compiler is not None and hasattr(compiler, "is_compiling"):
        return bool(compiler.is_compiling())
    dynamo = getattr(torch, "_dynamo", None)  # torch < 2.3
    return bool(dynamo is not None and dynamo.is_compiling())


def check_latents(x: object, name: str, dim: int | None = None, *, finite: bool = True) -> Tensor:
    """Check that ``x`` is a floating ``(B, dim)`` tensor with finite values and return it."""
    if not isinstance(x, Tensor):
        raise InvalidTypeError(
            f"{name} must be a torch.Tensor of shape (B, n); got {type(x).__name__}"
        )
    if x.ndim != 2:
        raise ShapeError(
            f"{name} must have shape (B, n) (rank 2); got rank {x.ndim} with shape {tuple(x.shape)}"
        )
    if dim is not None and x.shape[1] != dim:
        raise ShapeError(
            f"{name}: axis 1 (latent width n) must be {dim}; got {x.shape[1]} "
            f"(shape {tuple(x.shape)})"
        )
    if not x.is_floating_point():
        raise InvalidTypeError(f"{name} must be a floating-point tensor; got dtype {x.dtype}")
    if finite:
        check_finite(x, name)
    return x


def check_finite(x: Tensor, name: str, max_shown: int = 5) -> None:
    """Raise :class:`NonFiniteError` naming how many entries of ``x`` are NaN/inf and where."""
    if is_compiling():
        return
    bad = ~torch.isfinite(x)
    count = int(bad.sum())
    if count == 0:
        return
    where = [tuple(int(i) for i in idx) for idx in bad.nonzero()[:max_shown].tolist()]
    n_nan = int(torch.isnan(x).sum())
    more = "" if count <= max_shown else f" (first {max_shown} shown)"
    raise NonFiniteError(
        f"{name} contains {count} non-finite value(s) ({n_nan} NaN, {count - n_nan} inf) "
        f"at index {where}{more}; expected finite values"
    )


def check_positive_int(value: object, name: str, minimum: int = 1) -> int:
    """Return ``value`` as an int, raising ``ValueError`` unless it is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidTypeError(f"{name} must be an int; got {type(value).__name__}")
    if value < minimum:
        raise InvalidValueError(f"{name} must be >= {minimum}; got {value}")
    return value


def check_weight(value: object, name: str) -> float:
    """Return ``value`` as a float, raising unless it is a finite number >= 0 (a loss's weight)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidTypeError(f"{name} must be a number; got {type(value).__name__}")
    if not (math.isfinite(value) and value >= 0):
        raise InvalidValueError(f"{name} must be finite and >= 0; got {value}")
    return float(value)


def user_stacklevel() -> int:
    """The ``stacklevel`` that attributes a warning to the first caller outside the package (and
    outside torch, whose ``Module.__call__`` sits between a user's line and a loss's forward)."""
    import sys

    frame = sys._getframe(1)
    level = 1
    # past the library's frames and torch's (an nn.Module's __call__ between the user and us)
    while frame is not None and frame.f_globals.get("__name__", "").split(".")[0] in (
        "consistency",
        "torch",
    ):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level
