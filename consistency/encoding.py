"""Interpreting what an encoder returns."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor
from torch.distributions import Distribution

from .errors import EncoderOutputError

__all__ = ["posterior_mean"]


_MEAN_KEYS = ("mean", "loc", "mu", "z_mean", "embedding")


def _attribute(obj: Any, name: str) -> Any:
    """``getattr(obj, name, None)``, also when a custom ``__getattr__`` raises something else."""
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def posterior_mean(output: Any) -> Tensor:
    """The posterior mean carried by an encoder's output.

    The library uses the mean of a stochastic encoder everywhere (docs/method.md, "Objects"). Accepted:

    * a tensor ``(B, n)``: a deterministic encoder, returned as is;
    * a ``torch.distributions.Distribution``: its ``.mean``;
    * any object whose ``.mean`` or ``.loc`` attribute is a tensor (checked in that order);
    * a mapping (a dict, or the ``ModelOutput`` of pythae / Hugging Face) or an object with one
      of the keys / attributes ``mean``, ``loc``, ``mu``, ``z_mean``, ``embedding`` (pythae's
      encoders) holding a tensor, checked in that order; a ``latent_dist`` entry (diffusers'
      ``AutoencoderKL``) is read as above;
    * a tuple or list whose first element is a tensor, e.g. ``(mean, logvar)``.

    Args:
        output: whatever the encoder returned.

    Returns:
        The mean, a tensor (usually ``(B, n)``; callers check the shape).

    Raises:
        EncoderOutputError: (a ``TypeError``) for anything else, naming the type that came.

    Example:
        >>> import torch
        >>> mu, logvar = torch.zeros(2, 3), torch.ones(2, 3)
        >>> posterior_mean((mu, logvar)).shape
        torch.Size([2, 3])
        >>> posterior_mean(torch.distributions.Normal(mu + 1, 1.0))[0]
        tensor([1., 1., 1.])
    """
    if isinstance(output, Tensor):
        return output
    if isinstance(output, Distribution):
        return output.mean
    mapping = isinstance(output, Mapping)
    for key in _MEAN_KEYS:
        value = output.get(key) if mapping else _attribute(output, key)
        if isinstance(value, Tensor):
            return value
    dist = output.get("latent_dist") if mapping else _attribute(output, "latent_dist")
    if dist is not None and dist is not output:
        return posterior_mean(dist)
    if isinstance(output, (tuple, list)) and len(output) > 0 and isinstance(output[0], Tensor):
        return output[0]
    if isinstance(output, (tuple, list)):
        inner = ", ".join(type(o).__name__ for o in output[:4])
        got = f"a {type(output).__name__} of ({inner})"
    else:
        got = f"an object of type {type(output).__module__}.{type(output).__qualname__}"
    raise EncoderOutputError(
        "cannot interpret the encoder's output as a posterior mean: expected a Tensor (B, n), "
        "a (mean, ...) tuple, a torch Distribution, or a mapping / object with a tensor "
        f".mean, .loc, .mu, .z_mean or .embedding; got {got}"
        + (f" with keys {list(output.keys())[:6]}" if isinstance(output, Mapping) else "")
    )
