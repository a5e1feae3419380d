"""``ResponseModel``: one handle on an autoencoder, the thing every loss and score works on."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from ._checks import check_latents, check_positive_int, resolve_generate, warn_if_xblock_skipped
from .encoding import posterior_mean
from .errors import InvalidTypeError
from .modes import evaluation_mode, modules_of
from .response import Decoder, Encoder, response
from .sampler import AggregatePosterior
from .xblock import XBlock

__all__ = ["ResponseModel", "as_response_model"]


class ResponseModel:
    r"""An autoencoder as the library sees it: ``encode`` (images -> posterior), ``generate``
    (noise -> images, the whole generative map, XBlock included) and optionally its ``xblock``.

    .. math:: R = E \circ G, \qquad G = D \circ S

    It owns the operations the losses, :class:`~consistency.ConsistencyEvaluator`,
    :class:`~consistency.ConsistencyMetric`, :mod:`~consistency.plots` and
    :mod:`~consistency.metrics` share: posterior means of a batch, generated images, the
    response, the causes, each in chunks of at most ``max_batch`` rows, and a context that puts
    every module involved in eval mode without gradients (restoring the modes after). Those
    objects also accept ``encoder, generate`` and build one.

    Args:
        encode: images ``(B, *x)`` -> posterior (anything
            :func:`~consistency.posterior_mean` reads).
        generate: noise ``(B, n)`` -> images. Given an ``xblock``, a ``generate`` that does not
            run it (e.g. ``model.decoder`` instead of ``model.generate``) is warned about.
        xblock: the model's :class:`~consistency.XBlock`, for causes and the learned graph.
        model: a module to put in eval mode as well (e.g. when ``generate`` is a lambda).
        max_batch: largest batch sent through the networks at once (``None``: no limit).
        decoder: deprecated keyword for ``generate``.
        owner: the name warnings and errors give (the loss or evaluator that built the handle).

    Example:
        >>> import torch
        >>> enc, dec = torch.nn.Linear(5, 2), torch.nn.Linear(2, 5)
        >>> handle = ResponseModel(enc, dec, max_batch=4)
        >>> handle.respond(torch.zeros(10, 2)).shape
        torch.Size([10, 2])
    """

    def __init__(
        self,
        encode: Encoder,
        generate: Decoder | None = None,
        *,
        xblock: XBlock | None = None,
        model: nn.Module | None = None,
        max_batch: int | None = None,
        decoder: Decoder | None = None,
        owner: str = "ResponseModel",
    ) -> None:
        if not callable(encode):
            raise InvalidTypeError(
                f"encode must be a callable images -> posterior; got {type(encode).__name__}"
            )
        generate = resolve_generate(generate, decoder, owner)
        if xblock is not None and not isinstance(xblock, XBlock):
            raise InvalidTypeError(f"xblock must be an XBlock or None; got {type(xblock).__name__}")
        if model is not None and not isinstance(model, nn.Module):
            raise InvalidTypeError(
                f"model must be an nn.Module or None; got {type(model).__name__}"
            )
        self.encode_fn: Encoder = encode
        self.generate_fn: Decoder = generate
        self.xblock = xblock
        self.max_batch = None if max_batch is None else check_positive_int(max_batch, "max_batch")
        self.modules: list[nn.Module] = modules_of(encode, generate, model, xblock)
        if xblock is not None:
            warn_if_xblock_skipped(generate, xblock, owner)

    def __repr__(self) -> str:
        return (
            f"ResponseModel(encode={self.encode_fn!r}, generate={self.generate_fn!r}, "
            f"xblock={'yes' if self.xblock is not None else 'no'}, max_batch={self.max_batch})"
        )

    def _chunks(self, x: Tensor) -> list[Tensor]:
        return list(x.split(self.max_batch)) if self.max_batch is not None else [x]

    def means(self, images: Tensor) -> Tensor:
        """Posterior means ``(B, n)`` of a batch of images (gradients as the caller's context)."""
        return torch.cat([posterior_mean(self.encode_fn(c)) for c in self._chunks(images)])

    def generate(self, noise: Tensor) -> Tensor:
        """Images of noise ``(B, n)`` through the whole generative map."""
        check_latents(noise, "noise", finite=False)
        return torch.cat([self.generate_fn(c) for c in self._chunks(noise)])

    def respond(self, noise: Tensor) -> Tensor:
        """The response :math:`R(N) = E(G(N))` ``(B, n)`` (the library's one response map)."""
        return response(self.encode_fn, self.generate_fn, noise, max_batch=self.max_batch)

    def causes(self, noise: Tensor) -> Tensor:
        """The XBlock's causes ``S(N)`` ``(B, n * unit_size)``."""
        if self.xblock is None:
            raise InvalidTypeError("causes need an XBlock: build the ResponseModel with xblock=...")
        return torch.cat([self.xblock(c) for c in self._chunks(noise)])

    @contextlib.contextmanager
    def evaluation(self, *extra: nn.Module) -> Iterator[None]:
        """Every module involved (and ``extra`` ones) in eval mode, without gradients; the modes
        are restored on exit."""
        with torch.no_grad(), evaluation_mode(*self.modules, *extra):
            yield


def as_response_model(
    encoder: Any,
    generate: Any,
    sampler: Any,
    *,
    xblock: XBlock | None,
    model: nn.Module | None,
    max_batch: int | None,
    decoder: Decoder | None,
    owner: str,
) -> tuple[ResponseModel, Any]:
    """``(handle, sampler)`` from a constructor's first arguments: either a
    :class:`ResponseModel` (then ``generate`` may hold the sampler, for ``Loss(handle, sampler)``)
    or an encoder and its generative map."""
    if isinstance(encoder, ResponseModel):
        if isinstance(generate, AggregatePosterior) and sampler is None:
            generate, sampler = None, generate
        if generate is not None or decoder is not None:
            raise InvalidTypeError(
                f"{owner}: given a ResponseModel, pass no separate generate/decoder; got "
                f"{type(generate if generate is not None else decoder).__name__}"
            )
        if xblock is not None and xblock is not encoder.xblock:
            raise InvalidTypeError(
                f"{owner}: xblock= differs from the ResponseModel's own xblock; build the "
                "ResponseModel with it"
            )
        return encoder, sampler
    handle = ResponseModel(
        encoder,
        generate,
        xblock=xblock,
        model=model,
        max_batch=max_batch,
        decoder=decoder,
        owner=owner,
    )
    return handle, sampler
