"""The one implementation of the response map R = E∘G, and :class:`ResponseModel`, the one
handle on a model that every loss and score works on."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from ._checks import check_latents, check_positive_int, is_compiling, user_stacklevel
from .encoding import posterior_mean
from .errors import InvalidTypeError, InvalidValueError, ShapeError
from .module_state import evaluation_mode, frozen_batchnorm, modules_of
from .xblock import XBlock

__all__ = ["ResponseModel", "response"]

Encoder = Callable[[Tensor], Any]
Decoder = Callable[[Tensor], Tensor]


def _call(fn: Callable[[Tensor], Any], x: Tensor, what: str, hint: str) -> Any:
    try:
        return fn(x)
    except torch.OutOfMemoryError:
        raise
    except RuntimeError as err:
        raise ShapeError(
            f"the {what} failed on input of shape {tuple(x.shape)} ({hint}): {err}"
        ) from err


def response(
    encoder: Encoder, generate: Decoder, noise: Tensor, *, max_batch: int | None = None
) -> Tensor:
    r"""The response map :math:`R(N) = \mathbb{E}[E(G(N))]`, noise to noise.

    .. math:: R = E \circ G, \qquad G = D \circ S

    ``generate`` is the whole generative map from noise to images (for a model with an XBlock,
    ``model.generate`` or ``lambda n: model.decoder(model.latent(n))``, not the decoder alone);
    the encoder's output goes through
    :func:`~consistency.posterior_mean`, so stochastic encoders contribute their mean.

    Args:
        encoder: images ``(B, *x)`` -> posterior (anything ``posterior_mean`` reads) of width n.
        generate: noise ``(B, n)`` -> images ``(B, *x)``.
        noise: ``(B, n)``.
        max_batch: run the networks in chunks of at most this many rows (``None``: one batch).

    Returns:
        ``(B, n)`` responses (dtype as the encoder returns it).

    Raises:
        ShapeError: the decoder rejects ``noise``, the encoder rejects the decoder's output, or
            the encoder's mean is not ``(B, n)``.

    Example:
        >>> import torch
        >>> scale = torch.tensor([2.0, 3.0])
        >>> response(lambda x: x / scale, lambda n: n * scale, torch.ones(4, 2))
        tensor([[1., 1.],
                [1., 1.],
                [1., 1.],
                [1., 1.]])
    """
    check_latents(noise, "noise", finite=False)
    if max_batch is not None and noise.shape[0] > check_positive_int(max_batch, "max_batch"):
        return torch.cat(
            [response(encoder, generate, chunk) for chunk in noise.split(max_batch)], dim=0
        )
    n = noise.shape[1]
    images = _call(generate, noise, "generative map", f"expected noise of width n = {n}")
    if not isinstance(images, Tensor):
        raise InvalidTypeError(
            f"generate must return a Tensor of images; got {type(images).__name__} (adapt it: "
            'lambda n: out_of(generate(n)), e.g. ...["reconstruction"])'
        )
    out = posterior_mean(
        _call(encoder, images, "encoder", f"the decoder's output, from noise {tuple(noise.shape)}")
    )
    if out.shape != noise.shape:
        raise ShapeError(
            f"the response E(D(noise)) must have the noise's shape (B, n) = {tuple(noise.shape)}; "
            f"the encoder returned a mean of shape {tuple(out.shape)} for the decoder's output "
            f"of shape {tuple(images.shape)}"
        )
    return out


class _LatentThenDecoder:
    """``decoder(latent(noise))`` of a module with ``.decoder`` and an optional ``.latent``,
    read at call time (a later ``model.latent = XBlock(...)`` is seen)."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def __call__(self, noise: Tensor) -> Any:
        latent = getattr(self.module, "latent", None)
        z = latent(noise) if latent is not None else noise
        decoder: Callable[[Tensor], Any] = getattr(self.module, "decoder")  # noqa: B009
        return decoder(z)

    def __repr__(self) -> str:
        return f"{type(self.module).__name__}.decoder∘latent"


class ResponseModel:
    r"""An autoencoder as the library sees it: ``encode`` (images -> posterior), ``generate``
    (noise -> images, the whole generative map, XBlock included) and its ``xblock``.

    .. math:: R = E \circ G, \qquad G = D \circ S

    Every loss and score (:class:`~consistency.InvarianceLoss`,
    :class:`~consistency.EquivarianceLoss`, :class:`~consistency.ConsistencyEvaluator`,
    :class:`~consistency.ConsistencyMetric`) takes a model as its first argument and turns it
    into one of these with :meth:`of`: an ``nn.Module`` with ``.encoder`` and ``.decoder`` (and
    an optional ``.latent``, e.g. the :class:`~consistency.XBlock` of a retrofit), or one with
    ``encode`` and ``generate`` methods, is read directly; anything else is built here by hand.
    It owns the operations those objects share: posterior means of a batch, generated images,
    the response, the causes, each in chunks of at most ``max_batch`` rows, and a context that
    puts every module involved in eval mode without gradients (restoring the modes after).

    Building one calls nothing: no module runs, no mode, buffer or random state changes. The
    first generated batch checks that ``generate`` runs the ``xblock`` (a hook, no extra call)
    and warns when it does not (``model.decoder`` passed where ``model.generate`` was meant).

    Args:
        encode: images ``(B, *x)`` -> posterior (anything
            :func:`~consistency.posterior_mean` reads).
        generate: noise ``(B, n)`` -> images.
        xblock: the model's :class:`~consistency.XBlock`, for causes, equivariance and the
            learned graph.
        modules: modules the library switches to eval mode for evaluations and whose BatchNorm
            layers the losses freeze in their passes (with lambdas for ``encode`` / ``generate``,
            give the model here). Modules among ``encode``, ``generate`` (or their bound
            methods' owners) and ``xblock`` are found by themselves.
        max_batch: largest batch sent through the networks at once (``None``: no limit).

    Example:
        >>> import torch
        >>> enc, dec = torch.nn.Linear(5, 2), torch.nn.Linear(2, 5)
        >>> model = ResponseModel(enc, dec, max_batch=4)
        >>> model.respond(torch.zeros(10, 2)).shape
        torch.Size([10, 2])
        >>> class AE(torch.nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.encoder, self.decoder = enc, dec
        >>> ResponseModel.of(AE()).xblock is None
        True
    """

    def __init__(
        self,
        encode: Encoder,
        generate: Decoder,
        *,
        xblock: XBlock | None = None,
        modules: Sequence[nn.Module] = (),
        max_batch: int | None = None,
    ) -> None:
        if not callable(encode):
            raise InvalidTypeError(
                f"encode must be a callable images -> posterior; got {type(encode).__name__}"
            )
        if not callable(generate):
            raise InvalidTypeError(
                f"generate must be a callable noise (B, n) -> images; got {type(generate).__name__}"
            )
        if xblock is not None and not isinstance(xblock, XBlock):
            raise InvalidTypeError(f"xblock must be an XBlock or None; got {type(xblock).__name__}")
        if isinstance(modules, nn.Module):
            modules = (modules,)
        for m in modules:
            if not isinstance(m, nn.Module):
                raise InvalidTypeError(f"modules must be nn.Modules; got {type(m).__name__}")
        self.encode_fn: Encoder = encode
        self.generate_fn: Decoder = generate
        self._xblock = xblock
        self._root: nn.Module | None = None
        self.max_batch = None if max_batch is None else check_positive_int(max_batch, "max_batch")
        self.modules: list[nn.Module] = modules_of(encode, generate, xblock, *modules)
        self._xblock_checked = xblock is None

    @classmethod
    def of(
        cls, model: object, *, max_batch: int | None = None, owner: str = "ResponseModel"
    ) -> ResponseModel:
        """The :class:`ResponseModel` of ``model``: itself when it is one (with ``max_batch``
        where it has none); for an ``nn.Module``, its ``encode`` / ``generate`` methods, or its
        ``encoder`` and ``decoder`` (through its ``latent``, when it has one). The XBlock is the
        module's ``latent`` when that is one, else the one XBlock among its submodules.

        Raises:
            InvalidTypeError: ``model`` is none of these (the message says what is read).
            InvalidValueError: the module holds more than one XBlock.
        """
        if isinstance(model, ResponseModel):
            if max_batch is None or model.max_batch is not None:
                return model
            copy = cls.__new__(cls)
            copy.__dict__.update(model.__dict__)
            copy.max_batch = check_positive_int(max_batch, "max_batch")
            return copy
        if not isinstance(model, nn.Module):
            kind = type(model).__name__
            raise InvalidTypeError(
                f"{owner}: the model must be an nn.Module with .encoder and .decoder (and "
                ".latent, e.g. an XBlock), or with encode() and generate() methods, or a "
                f"ResponseModel(encode, generate, xblock=...); got {kind}"
                + (
                    " (the encoder and the generative map go in together: "
                    "ResponseModel(encoder, generate))"
                    if callable(model)
                    else ""
                )
            )
        encode, generate = getattr(model, "encode", None), getattr(model, "generate", None)
        if not (callable(encode) and callable(generate)):
            encoder, decoder = getattr(model, "encoder", None), getattr(model, "decoder", None)
            if not (callable(encoder) and callable(decoder)):
                raise InvalidTypeError(
                    f"{owner}: {type(model).__name__} has neither encode() and generate() nor "
                    ".encoder and .decoder; build ResponseModel(encode, generate, "
                    "xblock=..., modules=[model]) and pass that"
                )
            encode, generate = encoder, _LatentThenDecoder(model)
        xblocks = [m for m in model.modules() if isinstance(m, XBlock)]
        if len(xblocks) > 1:
            raise InvalidValueError(
                f"{owner}: {type(model).__name__} holds {len(xblocks)} XBlocks; say which one "
                "is the latent block: ResponseModel(encode, generate, xblock=..., modules=[model])"
            )
        handle = cls(
            encode,
            generate,
            xblock=xblocks[0] if xblocks else None,
            modules=(model,),
            max_batch=max_batch,
        )
        handle._root = model
        handle._xblock_checked = True  # generate is the module's own map
        return handle

    @property
    def xblock(self) -> XBlock | None:
        """The model's XBlock (for a module read with :meth:`of`: its ``latent`` as it is now)."""
        if self._root is not None:
            latent = getattr(self._root, "latent", None)
            if isinstance(latent, XBlock):
                return latent
        return self._xblock

    def __repr__(self) -> str:
        return (
            f"ResponseModel(encode={self.encode_fn!r}, generate={self.generate_fn!r}, "
            f"xblock={'yes' if self.xblock is not None else 'no'}, max_batch={self.max_batch})"
        )

    def _chunks(self, x: Tensor) -> list[Tensor]:
        return list(x.split(self.max_batch)) if self.max_batch is not None else [x]

    def _half_parameter_dtype(self) -> torch.dtype | None:
        """The half-precision dtype that all of the model's floating parameters share, else
        ``None`` (no cast: a float32 model, or one of mixed precision, which says for itself
        what it takes). Stops at the first parameter that is not half precision."""
        found: torch.dtype | None = None
        for m in self.modules:
            for p in m.parameters():
                if not p.is_floating_point():
                    continue
                if p.dtype not in (torch.bfloat16, torch.float16) or found not in (None, p.dtype):
                    return None
                found = p.dtype
        return found

    def _generate(self, noise: Tensor) -> Any:
        """``generate_fn(noise)``, float32 noise cast to the model's parameter dtype when that
        is half precision (a bf16 model fed from a float32 bank); the first time, also checks that it runs the XBlock. A shape
        error inside a model with an XBlock names the block's output width."""
        if noise.dtype == torch.float32:
            dtype = self._half_parameter_dtype()
            if dtype is not None:
                noise = noise.to(dtype)  # a half-precision model fed from a float32 bank
        xblock = self.xblock
        if self._xblock_checked or xblock is None or is_compiling():
            return self._run_generate(noise, xblock)
        calls: list[int] = []
        hook = xblock.register_forward_hook(lambda *_: calls.append(1))
        try:
            out = self._run_generate(noise, xblock)
        finally:
            hook.remove()
        self._xblock_checked = True
        if not calls:
            warnings.warn(
                "generate does not run the model's XBlock; pass the whole generative map (e.g. "
                "model.generate or lambda n: model.decoder(model.latent(n))), not the decoder "
                "alone",
                stacklevel=user_stacklevel(),
            )
        return out

    def _run_generate(self, noise: Tensor, xblock: XBlock | None) -> Any:
        if xblock is None or is_compiling():
            return self.generate_fn(noise)
        try:
            return self.generate_fn(noise)
        except RuntimeError as err:
            if "shape" not in str(err) and "size" not in str(err):
                raise
            width = xblock.n * xblock.unit_size
            raise ShapeError(
                f"the generative map failed on noise of shape {tuple(noise.shape)}: "
                f"XBlock({xblock.n}, unit_size={xblock.unit_size}) outputs {width} features "
                f"per row (n x unit_size), so the decoder after it must take {width} inputs "
                f"(build the decoder for {width}, or use XBlock({xblock.n}) for unit size 1); "
                f"torch said: {err}"
            ) from err

    def means(self, images: Tensor) -> Tensor:
        """Posterior means ``(B, n)`` of a batch of images (gradients as the caller's context)."""
        return torch.cat([posterior_mean(self.encode_fn(c)) for c in self._chunks(images)])

    def generate(self, noise: Tensor) -> Tensor:
        """Images of noise ``(B, n)`` through the whole generative map."""
        check_latents(noise, "noise", finite=False)
        out = [self._generate(c) for c in self._chunks(noise)]
        for o in out:
            if not isinstance(o, Tensor):
                raise InvalidTypeError(
                    f"generate must return a Tensor of images; got {type(o).__name__} (adapt it: "
                    'lambda n: out_of(generate(n)), e.g. ...["reconstruction"])'
                )
        return torch.cat(out)

    def respond(self, noise: Tensor) -> Tensor:
        """The response :math:`R(N) = E(G(N))` ``(B, n)`` (the library's one response map)."""
        return response(self.encode_fn, self._generate, noise, max_batch=self.max_batch)

    def causes(self, noise: Tensor) -> Tensor:
        """The XBlock's causes ``S(N)`` ``(B, n * unit_size)``."""
        xblock = self.xblock
        if xblock is None:
            raise InvalidTypeError("causes need an XBlock: the model has none")
        return torch.cat([xblock(c) for c in self._chunks(noise)])

    @contextlib.contextmanager
    def evaluation(self, *extra: nn.Module) -> Iterator[None]:
        """Every module involved (and ``extra`` ones) in eval mode, without gradients; the modes
        are restored on exit."""
        with torch.no_grad(), evaluation_mode(*self.modules, *extra):
            yield

    def frozen_batchnorm(
        self, statistics: Literal["running", "batch", "update"]
    ) -> contextlib.AbstractContextManager[None]:
        """:func:`~consistency.frozen_batchnorm` over every module involved."""
        return frozen_batchnorm(*self.modules, statistics=statistics)
