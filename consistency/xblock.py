"""The explicit causal latent block (XBlock): noise N -> causes Z through gated structural MLPs."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Literal, NamedTuple, cast

import torch
from torch import Tensor, nn

from ._checks import check_latents, check_positive_int
from .errors import InvalidValueError, ShapeError
from .recipe import FAITHFUL, RECIPE

__all__ = ["GateMovement", "XBlock"]

Init = Literal["xavier", "pytorch"]


def _mlp(n_in: int, hidden: Sequence[int], n_out: int, init: Init) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = n_in
    for h in hidden:
        layers += [nn.Linear(width, h), nn.Mish()]
        width = h
    layers.append(nn.Linear(width, n_out))
    if init == "xavier":
        for layer in layers:
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)
    return nn.Sequential(*layers)


class GateMovement(NamedTuple):
    """How far an XBlock's gates moved from their initial values (see :meth:`XBlock.gate_movement`).

    Attributes:
        mean_shift: mean ``|alpha - alpha_0|`` over the possible edges (NaN when the initial
            logits are unknown, e.g. a checkpoint saved before they were recorded).
        max_shift: largest ``|alpha - alpha_0|``.
        flipped: edges whose decision (gate > 0.5) differs from the decision at initialisation.
        possible: number of possible edges ``n(n-1)/2``.
    """

    mean_shift: float
    max_shift: float
    flipped: int
    possible: int


class XBlock(nn.Module):
    r"""Explicit causal latent block: structured causes Z from independent noise N.

    Units follow a fixed topological order ``0 .. n-1``; unit ``i`` computes

    .. math:: Z_i = f_i\big(\mathrm{concat}(M_{0i} Z_0, \dots, M_{(i-1)i} Z_{i-1}),\ N_i\big)

    with one MLP :math:`f_i: (i\cdot u + 1) \to 10 \to 10 \to u` (Mish after each hidden layer)
    and a learnable gate :math:`M_{ji} \in (0, 1)` per edge ``j -> i``, one logit per edge shared by
    the ``u`` dims of the parent unit. In training the gates are Gumbel-sigmoid (binary concrete)
    samples :math:`\sigma((\alpha + \log U - \log(1-U)) / \tau)`; in eval mode they are
    :math:`\sigma(\alpha / \tau)`. With ``hard=True`` gates are 0/1 (straight-through in training).

    ``tau`` is a plain attribute a training loop may anneal. Retrofit a model whose latent was
    ``nn.Identity()`` with ``model.latent = XBlock(n, unit_size)``; for ``unit_size > 1`` the
    decoder must take ``n * unit_size`` inputs (:meth:`check_decoder` says so when it does not).

    Args:
        n: number of latent units (noise width).
        unit_size: dims per cause ``u``; the output has width ``n * u``.
        hidden: hidden widths of every :math:`f_i`.
        tau: gate temperature (> 0).
        hard: 0/1 gates (straight-through estimator in training, ``1[alpha > 0]`` at eval).
        out_activation: module (or module factory) applied to each unit's output; ``"mish"``:
            ``nn.Mish()``, as the authors' code; ``None`` (default): none.
        logit_init_mean, logit_init_std: gate logits start from ``N(mean, std^2)``. The
            default, mean 0 and std 0, starts every gate undecided at 0.5, so the
            initialisation does not choose the graph; a negative mean starts the edges closed
            (mean -3: an eval-mode gate of ``sigmoid(-3 / tau)``). The authors' code used mean
            0, std 1.
        learn_gates: ``False`` keeps the gates fixed at their initial values (a buffer, not a
            parameter), as the paper's CelebA X models did.
        init: ``"xavier"`` (default): Glorot-uniform weights and zero biases in every
            :math:`f_i`, as the paper's appendix A.3 prescribes for all layers; ``"pytorch"``:
            PyTorch's default ``nn.Linear`` initialisation, under which the causes start 20 to
            250 times smaller than the noise (the decoder then sees nearly constant inputs).

        residual: ``Z_i = N_i + f_i(...)`` (``N_i`` added to each of the unit's ``u`` dims), with
            the last layer of every :math:`f_i` starting at zero, so the block starts as the
            identity (for ``u = 1``) and a retrofit starts from the model it was given; same
            parameters as the plain form. Default ``True``; the paper's units are not residual.

    The defaults are the library's recipe (:data:`consistency.recipe.RECIPE`, docs/method.md);
    :meth:`faithful` builds the paper's block (non-residual units ending in Mish, gate logits
    from ``N(0, 1)``).

    The gate logits at initialisation are kept in the buffer ``initial_gate_logits``, so that
    :meth:`gate_movement` can tell learned gates from frozen ones.

    Shapes:
        ``forward``: ``(B, n) -> (B, n * unit_size)``.

    Example:
        >>> import torch
        >>> block = XBlock(6, unit_size=4)
        >>> block(torch.randn(2, 6)).shape
        torch.Size([2, 24])
        >>> block.adjacency().shape
        torch.Size([6, 6])
    """

    edge_index: Tensor
    initial_gate_logits: Tensor

    def __init__(
        self,
        n: int,
        unit_size: int = 1,
        hidden: Sequence[int] = (10, 10),
        tau: float = 0.5,
        hard: bool = False,
        out_activation: nn.Module | Callable[[], nn.Module] | Literal["mish"] | None = None,
        logit_init_mean: float = RECIPE.gate_init_mean,
        logit_init_std: float = RECIPE.gate_init_std,
        learn_gates: bool = True,
        init: Init = RECIPE.xblock_init,
        residual: bool = RECIPE.xblock_residual,
    ) -> None:
        super().__init__()
        self.n = check_positive_int(n, "n")
        self.unit_size = check_positive_int(unit_size, "unit_size")
        if not tau > 0:
            raise InvalidValueError(f"tau must be > 0; got {tau}")
        self.tau = float(tau)
        self.hard = bool(hard)
        self.hidden = tuple(int(h) for h in hidden)
        if init not in ("xavier", "pytorch"):
            raise InvalidValueError(f'init must be "xavier" or "pytorch"; got {init!r}')
        self.units = nn.ModuleList(
            _mlp(i * self.unit_size + 1, self.hidden, self.unit_size, init) for i in range(self.n)
        )
        self.residual = bool(residual)
        if self.residual:  # Z_i = N_i + f_i(...), f_i = 0 at the start: S starts as the identity
            for unit in self.units:
                last = cast(nn.Linear, cast(nn.Sequential, unit)[-1])
                nn.init.zeros_(last.weight)
                nn.init.zeros_(last.bias)
        if out_activation == "mish":
            out_activation = nn.Mish()
        elif out_activation is not None and not isinstance(out_activation, nn.Module):
            if not callable(out_activation):
                raise InvalidValueError(
                    'out_activation must be an nn.Module, a module factory, "mish" or None; '
                    f"got {out_activation!r}"
                )
            out_activation = out_activation()
        self.out_activation = out_activation
        parents, children = torch.triu_indices(self.n, self.n, offset=1)
        self.register_buffer("edge_index", torch.stack([parents, children]), persistent=False)
        logits = torch.randn(parents.numel()) * logit_init_std + logit_init_mean
        self.register_buffer("initial_gate_logits", logits.clone())
        if learn_gates:
            self.gate_logits = nn.Parameter(logits)
        else:  # fixed gates (a buffer): the paper's CelebA X runs, whose Table 4 counts have no logits
            self.register_buffer("gate_logits", logits)

    @classmethod
    def faithful(cls, n: int, unit_size: int = 1, **kw: object) -> XBlock:
        """The paper's XBlock (:data:`consistency.recipe.FAITHFUL`): non-residual units with
        Mish outputs, gate logits from ``N(0, 1)``; ``kw`` overrides any argument."""
        return cls(n, unit_size, **{**FAITHFUL.xblock_kwargs(), **kw})

    @property
    def out_features(self) -> int:
        """Width of the output, ``n * unit_size``."""
        return self.n * self.unit_size

    def extra_repr(self) -> str:
        return (
            f"n={self.n}, unit_size={self.unit_size}, tau={self.tau}, hard={self.hard}, "
            f"residual={self.residual}"
        )

    # ------------------------------------------------------------------ gates
    def sample_gates(self, batch: int, device: torch.device | None = None) -> Tensor:
        """Gates for one forward pass, ``(B or 1, n, n)``; ``[b, j, i]`` gates edge ``j -> i``.

        In training mode one Gumbel-sigmoid draw per row (``(B, n, n)``); in eval mode the
        deterministic gates (``(1, n, n)``). Pass the result as ``forward(..., gates=...)`` to
        run two inputs through the *same* gate draw (the equivariance loss does).
        """
        device = device if device is not None else self.gate_logits.device
        logits = self.gate_logits
        if self.training:
            u = torch.rand(batch, logits.numel(), device=device, dtype=logits.dtype)
            u = u.clamp(1e-6, 1 - 1e-6)
            soft = torch.sigmoid((logits + torch.log(u) - torch.log1p(-u)) / self.tau)
            gates = (soft > 0.5).to(soft) + soft - soft.detach() if self.hard else soft
        elif self.hard:
            gates = (logits > 0).to(logits).expand(1, -1)
        else:
            gates = torch.sigmoid(logits / self.tau).expand(1, -1)
        full = gates.new_zeros(gates.shape[0], self.n, self.n)
        full[:, self.edge_index[0], self.edge_index[1]] = gates
        return full

    @torch.no_grad()
    def adjacency(self) -> Tensor:
        """Deterministic gate matrix ``(n, n)``: ``A[j, i]`` is the gate on parent ``j`` -> child ``i``.

        Zero on and below the diagonal. Uses the eval-mode gates (``sigmoid(alpha / tau)``, or
        ``1[alpha > 0]`` when ``hard``), whatever mode the module is in.
        """
        logits = self.gate_logits.detach()
        gates = (logits > 0).to(logits) if self.hard else torch.sigmoid(logits / self.tau)
        adj = logits.new_zeros(self.n, self.n)
        adj[self.edge_index[0], self.edge_index[1]] = gates
        return adj

    def edge_density(self, threshold: float = 0.5) -> float:
        """Share of the ``n(n-1)/2`` possible edges whose gate exceeds ``threshold`` (0 when n = 1)."""
        possible = self.n * (self.n - 1) // 2
        if possible == 0:
            return 0.0
        return float((self.adjacency() > threshold).sum()) / possible

    def adjacency_density(self, threshold: float = 0.5) -> float:
        """Open edges (gate above ``threshold``) over all ``n²`` entries of the adjacency: the
        authors' Table 1 "sparsity" (``A.sum() / n²`` in ``score_model``, their
        ``experiments/EvaluationManager.py``), with decided gates. Only the ``n(n-1)/2`` edges
        above the diagonal can be open, so it is at most ``(n-1) / 2n`` (41.7 % for n = 6,
        45.8 % for n = 12: the values printed in the paper's Table 1). :meth:`edge_density` is
        the share of the allowed edges."""
        return float((self.adjacency() > threshold).sum()) / (self.n * self.n)

    def gate_confidence(self) -> float:
        """Mean ``|2 A[j, i] - 1|`` over possible edges: 0 = every gate undecided at 0.5, 1 = all at 0/1.

        Read it beside :meth:`edge_density`: a density read off undecided gates is noise.
        """
        if self.n < 2:
            return 1.0
        adj = self.adjacency()
        gates = adj[self.edge_index[0], self.edge_index[1]]
        return float((2 * gates - 1).abs().mean())

    def gate_penalty(self) -> Tensor:
        r"""Expected share of open edges, a differentiable sparsity penalty (scalar).

        .. math:: P = \frac{2}{n(n-1)} \sum_{j<i} \sigma(\alpha_{ji})

        :math:`\sigma(\alpha)` is the probability that a Gumbel-sigmoid gate is open (its limit
        as :math:`\tau \to 0`); adding ``weight * gate_penalty()`` to a loss pushes gates that
        the data does not need towards 0. Zero when ``n == 1``.
        """
        if self.gate_logits.numel() == 0:
            return self.gate_logits.sum()
        return torch.sigmoid(self.gate_logits).mean()

    @torch.no_grad()
    def gate_movement(self, threshold: float = 0.5) -> GateMovement:
        """How far the gate logits moved from their initial values, and how many edge decisions
        (``adjacency() > threshold``) changed since initialisation.

        A graph read off gates that never moved is the initialisation, not something learned:
        report this beside :meth:`edge_density` and :meth:`gate_confidence`.
        """
        possible = int(self.gate_logits.numel())
        if possible == 0:
            return GateMovement(0.0, 0.0, 0, 0)
        initial = self.initial_gate_logits.to(self.gate_logits)
        shift = (self.gate_logits.detach() - initial).abs()
        if not bool(torch.isfinite(initial).all()):
            return GateMovement(math.nan, math.nan, -1, possible)
        gates_now = self.adjacency()[self.edge_index[0], self.edge_index[1]] > threshold
        if self.hard:
            gates_then = initial > 0
        else:
            gates_then = torch.sigmoid(initial / self.tau) > threshold
        return GateMovement(
            float(shift.mean()), float(shift.max()), int((gates_now != gates_then).sum()), possible
        )

    # ---------------------------------------------------------------- forward
    def _intervention_value(self, unit: int, value: Tensor | float, like: Tensor) -> Tensor:
        v = torch.as_tensor(value, device=like.device, dtype=like.dtype)
        batch, u = like.shape[0], self.unit_size
        if v.ndim == 0:
            v = v.expand(u)
        if v.shape == (u,):
            return v.expand(batch, u)
        if v.shape == (batch, u):
            return v
        raise ShapeError(
            f"intervene[{unit}] must have shape (unit_size,) = ({u},) or (B, unit_size) = "
            f"({batch}, {u}); got {tuple(v.shape)}"
        )

    def forward(
        self,
        noise: Tensor,
        *,
        intervene: Mapping[int, Tensor | float] | None = None,
        gates: Tensor | None = None,
    ) -> Tensor:
        """Causes ``(B, n * unit_size)`` from noise ``(B, n)``.

        Args:
            noise: ``(B, n)``.
            intervene: ``{m: v}`` for ``do(Z_m := v)``, ``v`` of shape ``(unit_size,)`` or
                ``(B, unit_size)``: unit ``m``'s output is replaced (its parents are cut) and its
                descendants are recomputed from the new value.
            gates: gates from :meth:`sample_gates` to use instead of a fresh draw.
        """
        check_latents(noise, "noise", self.n, finite=False)
        interventions = dict(intervene or {})
        for unit in interventions:
            if not (isinstance(unit, int) and 0 <= unit < self.n):
                raise ShapeError(
                    f"intervene keys must be unit indices in [0, {self.n}); got {unit!r}"
                )
        batch = noise.shape[0]
        if gates is None:
            gates = self.sample_gates(batch, noise.device)
        elif gates.shape not in ((batch, self.n, self.n), (1, self.n, self.n)):
            raise ShapeError(
                f"gates must have shape (B, n, n) = ({batch}, {self.n}, {self.n}) or (1, n, n); "
                f"got {tuple(gates.shape)}"
            )
        # one growing (B, i * u) tensor of the causes so far; gates[:, :i, i] as a row slice
        incoming = gates.transpose(1, 2)  # [b, i, j]: the gate on edge j -> i
        causes: Tensor | None = None
        for i, f in enumerate(self.units):
            if i in interventions:
                z = self._intervention_value(i, interventions[i], noise)
            else:
                n_i = noise[:, i : i + 1]
                if causes is None:
                    inp = n_i
                else:
                    gate = incoming[:, i, :i].to(causes.dtype)
                    if self.unit_size > 1:
                        gate = gate.repeat_interleave(self.unit_size, dim=1)
                    inp = torch.cat([causes * gate, n_i.to(causes.dtype)], dim=1)
                z = f(inp)
                if self.residual:
                    z = z + n_i.to(z.dtype)
                if self.out_activation is not None:
                    z = self.out_activation(z)
            causes = z if causes is None else torch.cat([causes, z.to(causes.dtype)], dim=1)
        return cast(Tensor, causes)

    def causes(
        self,
        noise: Tensor,
        *,
        intervene: Mapping[int, Tensor | float] | None = None,
        gates: Tensor | None = None,
    ) -> Tensor:
        """:meth:`forward` reshaped unit-wise: ``(B, n, unit_size)``."""
        out = self.forward(noise, intervene=intervene, gates=gates)
        return out.view(noise.shape[0], self.n, self.unit_size)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[no-untyped-def]
        key = prefix + "initial_gate_logits"
        if key not in state_dict and prefix + "gate_logits" in state_dict:
            # a checkpoint from before the initial logits were recorded: movement is unknown
            state_dict[key] = torch.full_like(state_dict[prefix + "gate_logits"], math.nan)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def check_decoder(self, decoder: Callable[[Tensor], object]) -> None:
        """Raise :class:`~consistency.errors.ShapeError` unless ``decoder`` accepts this block's output.

        Runs ``decoder`` once on zeros ``(2, n * unit_size)`` (under ``no_grad``).
        """
        p = next(iter(self.parameters()))
        probe = torch.zeros(2, self.out_features, device=p.device, dtype=p.dtype)
        try:
            with torch.no_grad():
                decoder(probe)
        except RuntimeError as err:
            raise ShapeError(
                f"the decoder does not accept the XBlock's output of width n * unit_size = "
                f"{self.n} * {self.unit_size} = {self.out_features}; a decoder fed by "
                f"XBlock({self.n}, unit_size={self.unit_size}) must take {self.out_features} "
                f"inputs (the decoder raised: {err})"
            ) from err
