"""The aggregate-posterior sampler: a ring buffer of encoder means and the three ways to draw from it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from ._checks import check_latents, check_positive_int
from ._dist import all_gather_rows
from .errors import EmptySamplerError, InvalidValueError, ShapeError
from .functional import hybridise, uniform_box

__all__ = ["SAMPLING_MODES", "AggregatePosterior", "SamplingMode"]

SamplingMode = Literal["posterior", "hybrid", "uniform"]
SAMPLING_MODES: tuple[str, ...] = ("posterior", "hybrid", "uniform")


def _check_mode(mode: object) -> str:
    if mode not in SAMPLING_MODES:
        raise InvalidValueError(f"mode must be one of {SAMPLING_MODES}; got {mode!r}")
    return str(mode)


class AggregatePosterior(nn.Module):
    r"""A bank of encoder means that samples the aggregate posterior :math:`Q(N)`.

    The bank is a ring buffer of the ``capacity`` most recent means, a registered buffer: it moves
    with ``.to(device / dtype)`` and is saved in ``state_dict``. Under an initialised
    ``torch.distributed`` process group :meth:`update` gathers the batch from every rank first,
    so all ranks hold the same bank.

    Sampling modes (docs/method.md, "The aggregate posterior and its samples"):

    * ``"posterior"``: whole rows of the bank;
    * ``"hybrid"``: each coordinate from an independent random row,
      :math:`N_i = \mathrm{bank}[r_i, i]` (breaks dependence between coordinates);
    * ``"uniform"``: :math:`N_i \sim U[\min_i, \max_i]` over the bank.

    Args:
        dim: latent width ``n``.
        capacity: how many rows the bank keeps (the newest win).
        device, dtype: where the bank lives (default: CPU, the default float dtype).

    Example:
        >>> import torch
        >>> q = AggregatePosterior(3, capacity=100)
        >>> q.update(torch.randn(8, 3))
        >>> len(q), q.sample(5, mode="hybrid").shape
        (8, torch.Size([5, 3]))
    """

    bank_buffer: Tensor
    _count: Tensor
    _next: Tensor

    def __init__(
        self,
        dim: int,
        capacity: int = 10_000,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.dim = check_positive_int(dim, "dim")
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise InvalidValueError(f"capacity must be an int >= 1; got {capacity!r}")
        self.capacity = capacity
        dtype = dtype or torch.get_default_dtype()
        self.register_buffer("bank_buffer", torch.zeros(capacity, dim, device=device, dtype=dtype))
        self.register_buffer("_count", torch.zeros((), dtype=torch.long, device=device))
        self.register_buffer("_next", torch.zeros((), dtype=torch.long, device=device))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, capacity={self.capacity}, size={len(self)}"

    def __len__(self) -> int:
        return int(self._count)

    @property
    def bank(self) -> Tensor:
        """The stored means ``(len(self), dim)`` (a view; order is storage order, not time)."""
        return self.bank_buffer[: len(self)]

    @torch.no_grad()
    def update(self, latents: Tensor, *, sync: bool = True) -> None:
        """Store ``latents.detach()`` ``(B, dim)``, gathered across ranks when distributed
        (``sync=False``: stored as given, for rows that are already every rank's).

        Raises:
            ShapeError: ``latents`` is not ``(B, dim)``.
            NonFiniteError: ``latents`` holds NaN/inf (the message says how many and where).
        """
        check_latents(latents, "latents", self.dim)
        rows = (all_gather_rows(latents.detach()) if sync else latents.detach()).to(
            self.bank_buffer
        )
        if rows.shape[0] == 0:
            return
        if rows.shape[0] > self.capacity:
            rows = rows[-self.capacity :]
        # tensor arithmetic only (no .item()): torch.compile traces an update without a break
        start = self._next.to(rows.device)
        index = (torch.arange(rows.shape[0], device=rows.device) + start) % self.capacity
        self.bank_buffer.index_copy_(0, index.to(self.bank_buffer.device), rows)
        self._next.copy_((self._next + rows.shape[0]) % self.capacity)
        self._count.copy_((self._count + rows.shape[0]).clamp(max=self.capacity))

    def reset(self) -> None:
        """Empty the bank (its storage is kept)."""
        self.bank_buffer.zero_()
        self._count.zero_()
        self._next.zero_()

    def _require(self, what: str) -> int:
        size = len(self)
        if size == 0:
            raise EmptySamplerError(
                f"cannot {what}: the AggregatePosterior bank is empty (0 of {self.capacity} rows); "
                "call .update(latents) with encoder means first"
            )
        return size

    def _randint(
        self, high: int, shape: tuple[int, ...], generator: torch.Generator | None
    ) -> Tensor:
        device = generator.device if generator is not None else self.bank_buffer.device
        idx = torch.randint(high, shape, generator=generator, device=device)
        return idx.to(self.bank_buffer.device)

    def bounds(self) -> tuple[Tensor, Tensor]:
        """Per-dimension ``(min, max)`` over the bank, each ``(dim,)``."""
        self._require("compute bounds")
        bank = self.bank
        return bank.amin(dim=0), bank.amax(dim=0)

    @torch.no_grad()
    def sample(
        self,
        k: int,
        mode: SamplingMode | str = "posterior",
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Draw ``k`` prior samples ``(k, dim)`` in ``mode`` (see the class docstring).

        Raises:
            EmptySamplerError: the bank is empty.
            ValueError: unknown ``mode`` or ``k < 1``.
        """
        mode = _check_mode(mode)
        check_positive_int(k, "k")
        size = self._require(f"sample in mode {mode!r}")
        bank = self.bank
        if mode == "posterior":
            return bank[self._randint(size, (k,), generator)].clone()
        if mode == "hybrid":
            return hybridise(bank, k, generator)
        return uniform_box(bank, k, generator)

    @torch.no_grad()
    def intervention_values(
        self, dims: Tensor | Sequence[int], generator: torch.Generator | None = None
    ) -> Tensor:
        r"""One value per requested dimension, ``v_j \sim Q(N_{dims[j]})`` (a random row's coordinate).

        Args:
            dims: LongTensor ``(K,)`` or a sequence of ints, each in ``[0, dim)``.

        Returns:
            ``(K,)`` on the bank's device and dtype.
        """
        size = self._require("draw intervention values")
        dims_t = torch.as_tensor(dims, dtype=torch.long).to(self.bank_buffer.device)
        if dims_t.ndim != 1:
            raise ShapeError(f"dims must be one-dimensional (K,); got shape {tuple(dims_t.shape)}")
        if dims_t.numel() and (int(dims_t.min()) < 0 or int(dims_t.max()) >= self.dim):
            raise ShapeError(
                f"dims must lie in [0, {self.dim}); got values in "
                f"[{int(dims_t.min())}, {int(dims_t.max())}]"
            )
        rows = self._randint(size, (dims_t.shape[0],), generator)
        return self.bank[rows, dims_t]

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[no-untyped-def]
        key = prefix + "bank_buffer"
        if key in state_dict and state_dict[key].shape != self.bank_buffer.shape:
            capacity, dim = state_dict[key].shape
            if dim != self.dim:
                raise ShapeError(
                    f"state_dict bank has width {dim}; this AggregatePosterior has dim={self.dim}"
                )
            self.capacity = int(capacity)
            self.bank_buffer = torch.zeros_like(state_dict[key], device=self.bank_buffer.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
