"""ConsistencyEvaluator: the paper's consistency scores and diagnostics for any encoder/decoder."""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from ._checks import check_positive_int
from .errors import EmptySamplerError, InvalidTypeError, InvalidValueError
from .functional import (
    ScoreSums,
    _consistency_compute,
    _consistency_update,
    hybridise,
    imq_mmd,
    imq_mmd_multiscale,
    self_consistency,
    self_consistency_authors,
    self_consistency_levels,
)
from .intervention import intervene
from .module_state import evaluation_mode
from .report import ConsistencyReport, SelfConsistencyTable
from .response import ResponseModel
from .sampler import AggregatePosterior, _check_mode
from .xblock import XBlock

__all__ = [
    "CONVENTION_DEFAULTS",
    "ConsistencyEvaluator",
    "ConsistencyReport",
    "ConventionDefaults",
    "SelfConsistencyTable",
]

Convention = Literal["spec", "authors"]


@dataclass(frozen=True)
class ConventionDefaults:
    """The Monte-Carlo sizes a convention uses when the caller gives none.

    Attributes:
        n_samples: prior samples ``T`` of the invariance and equivariance scores.
        n_interventions: interventions ``K`` per dimension.
        scn_samples: prior samples of each self-consistency score (``None``: ``n_samples``).
    """

    n_samples: int
    n_interventions: int
    scn_samples: int | None


CONVENTION_DEFAULTS: dict[str, ConventionDefaults] = {
    "spec": ConventionDefaults(n_samples=1000, n_interventions=10, scn_samples=None),
    # the authors' experiments/EvaluationManager.py: evaluate_invariance's 50 interventions x 50
    # samples, score_SCN_under_perturbation's 1000 samples
    "authors": ConventionDefaults(n_samples=50, n_interventions=50, scn_samples=1000),
}


def _progress(total: int, enabled: bool, desc: str) -> Any:
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, leave=False)


class ConsistencyEvaluator:
    r"""The paper's consistency scores for an encoder/decoder pair (torchmetrics-style).

    Holds configuration; :meth:`evaluate` computes a :class:`ConsistencyReport`. With ``T``
    prior samples and ``K`` interventions :math:`I_m = do(N_m := v)` per dimension:

    .. math:: \mathrm{INV}[m, i] = 1 - \mathbb{E}_{I_m}\Big[\frac{\mathbb{E}_N[\Delta R_i^2]/\sigma_i'^2}{\mathbb{E}_N[\Delta N_m^2]/\sigma_m^2}\Big]

    and likewise EQV (in cause space) and SCN (docs/method.md). Networks run in eval mode under
    ``no_grad`` in chunks of ``max_batch`` rows (memory bounded whatever ``n``, ``K``, ``T``); the
    train/eval flag of every module of the model is restored afterwards.

    Args:
        model: the autoencoder (an ``nn.Module`` with ``.encoder`` / ``.latent`` /
            ``.decoder`` or ``encode`` / ``generate``, or a
            :class:`~consistency.ResponseModel`); its XBlock, when it has one, enables
            equivariance (cause space) and the learned graph.
        sampler: the aggregate posterior, filled with encoder means of the data.
        n_samples: prior samples ``T`` (>= 2) of the invariance and equivariance scores
            (``None``: the convention's, :data:`CONVENTION_DEFAULTS`: 1000 / 50).
        n_interventions: interventions ``K`` per dimension (``None``: 10 / 50).
        scn_samples: prior samples of each self-consistency score (``None``: ``n_samples``
            in ``spec``, 1000 in ``authors``).
        pool_size: draw this many rows of the bank (without replacement) once per call and
            take every prior sample and intervention value from them (the authors' pool of
            encoder codes: 128 reproduces their runs); ``None``: the whole bank.
        max_batch: largest batch sent through the networks.
        collapse_threshold: diagonal invariance above this marks a collapsed dimension.
        convention: ``"spec"`` (default: docs/method.md's scores) or ``"authors"`` (the scores
            as the authors' code computed the paper's tables: one-step self-consistency over the
            response's standard deviation, clamped to [0, 1]; invariance and equivariance on
            hybrid prior samples, in absolute changes over the mean intervention size;
            docs/method.md, "The authors' convention").
        generator: random generator (a fixed one makes evaluations repeatable).
        progress: show a tqdm bar (when tqdm is installed).

    Example:
        >>> import torch
        >>> from consistency import AggregatePosterior, ResponseModel
        >>> q = AggregatePosterior(3); q.update(torch.randn(500, 3))
        >>> model = ResponseModel(lambda x: x / 2, lambda n: n * 2)
        >>> ev = ConsistencyEvaluator(model, q, n_samples=200, progress=False)
        >>> report = ev.evaluate()
        >>> round(report.mean_invariance, 4), round(report.mean_self_consistency, 4)
        (1.0, 1.0)
    """

    def __init__(
        self,
        model: nn.Module | ResponseModel,
        sampler: AggregatePosterior,
        *,
        n_samples: int | None = None,
        n_interventions: int | None = None,
        scn_samples: int | None = None,
        pool_size: int | None = None,
        max_batch: int = 512,
        collapse_threshold: float = 0.9,
        convention: Convention = "spec",
        generator: torch.Generator | None = None,
        progress: bool = True,
    ) -> None:
        max_batch = check_positive_int(max_batch, "max_batch")
        handle = ResponseModel.of(model, max_batch=max_batch, owner="ConsistencyEvaluator")
        xblock = handle.xblock
        if not isinstance(sampler, AggregatePosterior):
            raise InvalidTypeError(
                f"ConsistencyEvaluator: sampler must be an AggregatePosterior; got "
                f"{type(sampler).__name__}"
            )
        if len(sampler) == 0:
            raise EmptySamplerError(
                "cannot build a ConsistencyEvaluator on an empty AggregatePosterior: "
                "call sampler.update(encoder_means) over the data first"
            )
        if convention not in CONVENTION_DEFAULTS:
            raise InvalidValueError(f'convention must be "spec" or "authors"; got {convention!r}')
        defaults = CONVENTION_DEFAULTS[convention]
        for name, value in (("n_samples", n_samples), ("scn_samples", scn_samples)):
            if isinstance(value, int) and not isinstance(value, bool) and value < 2:
                raise InvalidValueError(
                    f"{name} must be >= 2 (standard deviations need two samples); got {value}"
                )
        if pool_size is not None:
            pool_size = check_positive_int(pool_size, "pool_size", 2)
        if xblock is not None and xblock.n != sampler.dim:
            raise InvalidValueError(
                f"xblock has n = {xblock.n} units but the sampler has dim = {sampler.dim}"
            )
        self.model = handle
        self.sampler = sampler
        self.n_samples = check_positive_int(
            defaults.n_samples if n_samples is None else n_samples, "n_samples", 2
        )
        self.n_interventions = check_positive_int(
            defaults.n_interventions if n_interventions is None else n_interventions,
            "n_interventions",
        )
        if scn_samples is None:
            scn_samples = self.n_samples if defaults.scn_samples is None else defaults.scn_samples
        self.scn_samples = check_positive_int(scn_samples, "scn_samples", 2)
        self.pool_size = pool_size
        self.max_batch = max_batch
        self.collapse_threshold = float(collapse_threshold)
        self.convention: Convention = convention
        self.generator = generator
        self.progress = progress

    @property
    def n(self) -> int:
        return self.sampler.dim

    @property
    def xblock(self) -> XBlock | None:
        return self.model.xblock

    def evaluation_mode(self) -> contextlib.AbstractContextManager[None]:
        """A context with every module the evaluator knows (encoder, generator, XBlock, ``model``)
        in eval mode, restored on exit."""
        return evaluation_mode(*self.model.modules)

    def generate(self, noise: Tensor) -> Tensor:
        """Images for noise ``(B, n)`` through the generative map, in chunks of the handle's
        ``max_batch``, without gradients
        and in eval mode."""
        with self.model.evaluation():
            return self.model.generate(noise)

    def _respond(self, noise: Tensor) -> Tensor:
        return self.model.respond(noise).to(noise.dtype)

    def _causes(self, noise: Tensor) -> Tensor:
        return self.model.causes(noise).to(noise.dtype)

    # --------------------------------------------------------------- scores
    def evaluate(self, mode: str = "posterior") -> ConsistencyReport:
        """Compute every score with prior samples drawn in ``mode``."""
        mode = _check_mode(mode)
        with self.evaluation_mode():
            return self._evaluate(mode)

    def _source(self) -> AggregatePosterior:
        """Where this call's prior samples and intervention values come from: the sampler, or
        a pool of ``pool_size`` of its rows drawn without replacement."""
        if self.pool_size is None or self.pool_size >= len(self.sampler):
            return self.sampler
        bank = self.sampler.bank
        pool = AggregatePosterior(self.n, capacity=self.pool_size)
        pool.to(device=bank.device, dtype=bank.dtype)
        pool.update(self._distinct_rows(bank, self.pool_size))
        return pool

    def _distinct_rows(self, bank: Tensor, k: int) -> Tensor:
        """``min(k, len(bank))`` distinct rows of ``bank`` in random order (the generator's)."""
        g = self.generator
        rows = torch.randperm(
            len(bank), generator=g, device=g.device if g is not None else bank.device
        )
        return bank[rows[:k].to(bank.device)]

    def _prior(self, source: AggregatePosterior, k: int, mode: str) -> Tensor:
        """``k`` prior samples in ``mode``; in the authors' convention posterior samples are
        distinct rows (without replacement, so at most the pool's size)."""
        if self.convention == "authors" and mode == "posterior":
            return self._distinct_rows(source.bank, k).clone()
        return source.sample(k, mode, generator=self.generator)

    def _evaluate(self, mode: str) -> ConsistencyReport:
        """Draw the prior samples and values, run every intervention block, then score. In the
        authors' convention invariance and equivariance always use hybrid prior samples, and
        self-consistency its own ``scn_samples`` in ``mode``."""
        n, k = self.n, self.n_interventions
        source = self._source()
        authors = self.convention == "authors"
        prior = self._prior(source, self.n_samples, "hybrid" if authors else mode)
        ref = self._respond(prior)
        dims = torch.arange(n, device=prior.device).repeat_interleave(k)  # (n*K,)
        values = source.intervention_values(dims, generator=self.generator).view(n, k)
        sums = self._intervention_sums(prior, ref, values, mode)
        invariance, equivariance = _consistency_compute(
            sums, k, *self._variances(prior, ref), self.convention
        )
        if authors or self.scn_samples != self.n_samples:
            scn_prior = self._prior(source, self.scn_samples, mode)
            scn = self._self_consistency(scn_prior, self._respond(scn_prior))
        else:
            scn = self_consistency(prior, ref)
        self._warn_degenerate(
            prior.double().var(0, unbiased=False), ref.double().var(0, unbiased=False)
        )
        return self._report(mode, invariance, equivariance, scn, source)

    def _variances(self, prior: Tensor, ref: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """Per-coordinate variances over the prior samples: of the noise ``(n,)``, of the
        response ``(n,)`` (unbiased in the authors' convention), and of each cause unit (summed
        over its dims, ``(n,)``; ``spec`` only) or ``None``."""
        noise_var = prior.double().var(0, unbiased=False)
        resp_var = ref.double().var(0, unbiased=self.convention == "authors")
        cause_var = None
        if self.xblock is not None and self.convention == "spec":
            t = prior.shape[0]
            causes = self._causes(prior).double().view(t, self.n, -1)
            cause_var = causes.var(0, unbiased=False).sum(-1)
        return noise_var, resp_var, cause_var

    def _intervention_sums(
        self, prior: Tensor, ref: Tensor, values: Tensor, mode: str
    ) -> ScoreSums:
        """Every intervention block ``(m, k)`` of ``T`` rows through the networks, grouped into
        chunks of at most ``max_batch`` rows; the per-block averages of every chunk, stacked."""
        n, t = self.n, prior.shape[0]
        chunks: list[ScoreSums] = []
        per_chunk = max(1, self.max_batch // t)
        pairs = [(m, j) for m in range(n) for j in range(values.shape[1])]
        bar = _progress(len(pairs), self.progress, f"consistency ({mode})")
        for start in range(0, len(pairs), per_chunk):
            block = pairs[start : start + per_chunk]
            block_dims = torch.tensor([m for m, _ in block], device=prior.device)
            block_values = torch.stack([values[m, j] for m, j in block])
            ms, vs = block_dims.repeat_interleave(t), block_values.repeat_interleave(t)
            noisy = intervene(prior.repeat(len(block), 1), ms, vs)
            moved = self._respond(noisy)
            causes = causes_back = None
            if self.xblock is not None and self.convention == "authors":
                # S(I(R(N))) against S(R(I(N))) (the authors' noise_equivariance)
                refs = intervene(ref.repeat(len(block), 1), ms, vs)
                causes = self._causes(refs).view(len(block) * t, n, -1)
                causes_back = self._causes(moved).view(len(block) * t, n, -1)
            elif self.xblock is not None:
                causes = self._causes(noisy).view(len(block) * t, n, -1)
                causes_back = self._causes(intervene(moved, ms, vs)).view(len(block) * t, n, -1)
            chunks.append(
                _consistency_update(
                    prior,
                    ref,
                    moved,
                    block_dims,
                    block_values,
                    self.convention,
                    causes,
                    causes_back,
                )
            )
            if bar is not None:
                bar.update(len(block))
        if bar is not None:
            bar.close()
        return ScoreSums(
            torch.cat([c.change for c in chunks]),
            torch.cat([c.size for c in chunks]),
            None
            if self.xblock is None
            else torch.cat([c.eq_change for c in chunks if c.eq_change is not None]),
        )

    def _noise_mmd(self, source: AggregatePosterior) -> tuple[float, float]:
        """Squared IMQ MMD between posterior rows of ``source`` and hybrids of it (as many as the
        prior samples, at least 2): the single-scale form and the authors' seven-scale sum."""
        bank = source.bank
        m_rows = min(len(bank), max(self.n_samples, 2))
        if m_rows < 2:
            return math.nan, math.nan
        posterior = self._distinct_rows(bank, m_rows)
        hybrids = hybridise(bank, m_rows, self.generator)
        return float(imq_mmd(posterior, hybrids)), float(imq_mmd_multiscale(posterior, hybrids))

    def _report(
        self,
        mode: str,
        invariance: Tensor,
        equivariance: Tensor | None,
        scn: Tensor,
        source: AggregatePosterior,
    ) -> ConsistencyReport:
        """The :class:`ConsistencyReport` of the scores, with the collapsed dimensions, the noise
        MMD and the XBlock's graph statistics."""
        n = self.n
        off = ~torch.eye(n, dtype=torch.bool, device=invariance.device)
        diag = invariance.diagonal()
        collapsed = [
            int(i)
            for i in range(n)
            if not math.isnan(float(diag[i])) and float(diag[i]) > self.collapse_threshold
        ]
        xb = self.xblock
        mmd, mmd_multiscale = self._noise_mmd(source)
        return ConsistencyReport(
            mode=mode,
            convention=self.convention,
            invariance=invariance.float().cpu(),
            equivariance=None if equivariance is None else equivariance.float().cpu(),
            self_consistency=scn.float().cpu(),
            collapsed=collapsed,
            collapse_threshold=self.collapse_threshold,
            mmd_hybrid=mmd,
            mmd_hybrid_multiscale=mmd_multiscale,
            adjacency=None if xb is None else xb.adjacency().float().cpu(),
            edge_density=None if xb is None else xb.edge_density(),
            adjacency_density=None if xb is None else xb.adjacency_density(),
            gate_confidence=None if xb is None else xb.gate_confidence(),
            gate_movement=None if xb is None else xb.gate_movement(),
            mean_invariance=float(invariance[off].nanmean()) if n > 1 else math.nan,
            mean_equivariance=None if equivariance is None else float(equivariance.nanmean()),
            mean_self_consistency=float(scn.double().nanmean()),
            n_samples=self.n_samples,
            n_interventions=self.n_interventions,
        )

    def _self_consistency(self, prior: Tensor, response: Tensor) -> Tensor:
        """SCN ``(n,)`` of ``prior`` ``(T, n)`` against its response ``R(prior)``."""
        if self.convention == "authors":
            return self_consistency_authors(prior, response)
        return self_consistency(prior, response)

    @staticmethod
    def _warn_degenerate(noise_var: Tensor, resp_var: Tensor) -> None:
        for name, var in (("prior", noise_var), ("response", resp_var)):
            dead = [int(i) for i in (var == 0).nonzero().flatten().tolist()]
            if dead:
                warnings.warn(
                    f"{name} coordinate(s) {dead} have zero variance over the samples: "
                    "their scores are reported as NaN",
                    RuntimeWarning,
                    stacklevel=4,
                )

    def self_consistency_table(
        self, modes: Sequence[str] = ("posterior", "hybrid", "uniform")
    ) -> SelfConsistencyTable:
        """Self-consistency under each sampling mode (the paper's Table 2 row for one model),
        ``scn_samples`` prior samples per mode."""
        checked = [_check_mode(mode) for mode in modes]
        with self.evaluation_mode():
            source = self._source()
            # every mode's prior samples go through the networks together (chunked by
            # max_batch), then each mode's block is scored on its own
            priors = [self._prior(source, self.scn_samples, mode) for mode in checked]
            responses = self._respond(torch.cat(priors)).split([p.shape[0] for p in priors])
            rows = [self._self_consistency(p, r) for p, r in zip(priors, responses)]
        return SelfConsistencyTable(tuple(modes), torch.stack(rows).float().cpu())

    def self_consistency_levels(
        self, mode: str = "hybrid", levels: Sequence[int] = (1, 5, 10)
    ) -> dict[int, float]:
        r"""The authors' levelled self-consistency (``score_model``'s ``SCN``, ``SCN+``,
        ``SCN++`` at levels 1, 5, 10): mean over units of
        :math:`1 - \mathbb{E}_t|N_i - R^L(N)_i|`, unnormalised and unclamped
        (:func:`~consistency.functional.self_consistency_levels`), on ``scn_samples`` prior
        samples in ``mode`` (their default: hybrid). Either convention."""
        mode = _check_mode(mode)
        wanted = sorted({check_positive_int(level, "level") for level in levels})
        with self.evaluation_mode():
            prior = self._prior(self._source(), self.scn_samples, mode)
            iterates, out = [], prior
            for _ in range(wanted[-1]):
                out = self._respond(out)
                iterates.append(out)
            scores = self_consistency_levels(prior, [iterates[level - 1] for level in wanted])
        return {level: float(row.double().nanmean()) for level, row in zip(wanted, scores)}

    def traversal_grid(self, dim: int, steps: int = 20) -> Tensor:
        """``steps`` values spanning ``Q(N_dim)``: its quantiles from 0 to 1, ``(steps,)``."""
        if not 0 <= dim < self.n:
            raise InvalidValueError(f"dim must lie in [0, {self.n}); got {dim}")
        check_positive_int(steps, "steps", 2)
        bank = self.sampler.bank[:, dim].double()
        q = torch.linspace(0, 1, steps, dtype=torch.float64, device=bank.device)
        return torch.quantile(bank, q).to(self.sampler.bank.dtype)

    def traversal_responses(
        self, dim: int, steps: int = 20, n_samples: int | None = None
    ) -> Tensor:
        r"""Response error along a traversal of ``dim`` (paper Fig. 2): ``(T, steps, n)``.

        For each prior sample and each grid value ``v`` (quantiles of ``Q(N_dim)``), records
        :math:`R(\tilde N) - \tilde N` with :math:`\tilde N = I_{dim, v}(N)`.
        """
        grid = self.traversal_grid(dim, steps)
        t = n_samples if n_samples is not None else min(self.n_samples, 64)
        with self.evaluation_mode():
            prior = self.sampler.sample(t, "posterior", generator=self.generator)
            base = prior.repeat_interleave(steps, dim=0)
            noisy = intervene(base, dim, grid.repeat(t))
            err = self._respond(noisy) - noisy
        return err.view(t, steps, self.n)
