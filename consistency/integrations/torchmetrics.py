"""The library's scores as ``torchmetrics.Metric`` subclasses (optional: needs torchmetrics).

:class:`ConsistencyScores` keeps the encoder means of every image seen and the summed
reconstruction error as metric states (``dist_reduce_fx="cat"`` / ``"sum"``), so they sync
across processes as torchmetrics does; :meth:`~ConsistencyScores.compute` runs
:class:`~consistency.ConsistencyEvaluator` on the gathered means with a generator seeded with
``seed``: the values equal :class:`~consistency.ConsistencyMetric`'s on the same data.
:class:`DisentanglementScores` keeps codes and factors and computes IRS, MIG and DCI with
:func:`~consistency.metrics.ground_truth_scores`. Both return a dict of scalar tensors, work in a
``MetricCollection``, and ``plot()`` returns ``(fig, ax)`` as torchmetrics' own metrics do.

Example:
    >>> import torch
    >>> from consistency import ResponseModel
    >>> enc, dec = torch.nn.Linear(4, 2), torch.nn.Linear(2, 4)
    >>> metric = ConsistencyScores(ResponseModel(enc, dec), n=2, n_samples=20, n_interventions=2)
    >>> metric.update(torch.randn(16, 4))
    >>> sorted(metric.compute())[:3]
    ['mean_invariance', 'mmd_hybrid', 'reconstruction']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

try:
    from torchmetrics import Metric
    from torchmetrics.utilities.data import dim_zero_cat
except ImportError as err:  # pragma: no cover - exercised only without torchmetrics
    raise ImportError(
        "consistency.integrations.torchmetrics needs torchmetrics: pip install torchmetrics"
    ) from err

from ..consistency_metric import infer_width
from ..errors import InvalidValueError
from ..evaluator import CONVENTION_DEFAULTS, ConsistencyEvaluator, Convention
from ..response import ResponseModel
from ..sampler import SAMPLING_MODES, AggregatePosterior

__all__ = ["ConsistencyScores", "DisentanglementScores"]


class ConsistencyScores(Metric):
    r"""Mean invariance, mean equivariance (with an XBlock), self-consistency per sampling mode,
    the noise MMD and the reconstruction error, as one torchmetrics metric.

    .. math:: \mathrm{INV}[m, i] = 1 - \mathbb{E}_{I_m}\Big[\frac{\mathbb{E}_N[\Delta R_i^2]/\sigma_i'^2}{\mathbb{E}_N[\Delta N_m^2]/\sigma_m^2}\Big]

    Args:
        model: the autoencoder (as :class:`~consistency.ConsistencyMetric` takes it).
        n: latent width (``None``: read from the model's XBlock or ``.n``).
        n_samples, n_interventions, convention, mode, seed, max_batch: as
            :class:`~consistency.ConsistencyMetric`.

    Shapes:
        ``update(images)``: ``(B, *x)``. ``compute()``: a dict of 0-d tensors.
    """

    full_state_update = False
    higher_is_better = True
    is_differentiable = False
    means: list[Tensor]
    sum_squared_error: Tensor
    count: Tensor

    def __init__(
        self,
        model: nn.Module | ResponseModel,
        *,
        n: int | None = None,
        n_samples: int | None = None,
        n_interventions: int | None = None,
        convention: Convention = "spec",
        mode: str = "posterior",
        seed: int = 0,
        max_batch: int = 512,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        handle = ResponseModel.of(model, max_batch=max_batch, owner="ConsistencyScores")
        if n is None:
            n = infer_width(handle, model)
        if not isinstance(n, int) or n < 2:
            raise InvalidValueError(
                f"ConsistencyScores needs the latent width n >= 2 (pass n=); got {n!r}"
            )
        if convention not in CONVENTION_DEFAULTS:
            raise InvalidValueError(f'convention must be "spec" or "authors"; got {convention!r}')
        if mode not in SAMPLING_MODES:
            raise InvalidValueError(f"mode must be one of {SAMPLING_MODES}; got {mode!r}")
        self._handle = (handle,)  # a tuple: not registered as a submodule of the metric
        self.n = n
        defaults = CONVENTION_DEFAULTS[convention]
        self.n_samples = defaults.n_samples if n_samples is None else int(n_samples)
        self.n_interventions = (
            defaults.n_interventions if n_interventions is None else int(n_interventions)
        )
        self.convention: Convention = convention
        self.mode = mode
        self.seed = int(seed)
        self.add_state("means", default=[], dist_reduce_fx="cat")
        self.add_state(
            "sum_squared_error", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum"
        )
        self.add_state("count", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    @property
    def model(self) -> ResponseModel:
        return self._handle[0]

    def update(self, images: Tensor) -> None:
        """Add a batch: its means and its reconstruction error (networks in eval mode, no
        gradients, modes restored)."""
        handle = self.model
        with handle.evaluation():
            means = handle.means(images)
            error = (handle.generate(means).double() - images.double()).square().flatten(1).sum(1)
        self.means.append(means.detach())
        self.sum_squared_error += error.sum()
        self.count += images.shape[0]

    def compute(self) -> dict[str, Tensor]:
        """The scores over every image seen (on every process, after the sync)."""
        means = dim_zero_cat(self.means) if len(self.means) else torch.zeros(0, self.n)
        if means.shape[0] < 2:
            raise InvalidValueError(
                f"ConsistencyScores needs at least 2 images seen; got {means.shape[0]}"
            )
        bank = AggregatePosterior(self.n, capacity=means.shape[0])
        bank.to(device=means.device, dtype=means.dtype)
        bank.update(means, sync=False)  # torchmetrics has gathered them already
        evaluator = ConsistencyEvaluator(
            self.model,
            bank,
            n_samples=min(self.n_samples, means.shape[0]),
            n_interventions=self.n_interventions,
            convention=self.convention,
            generator=torch.Generator(device=means.device).manual_seed(self.seed),
            progress=False,
        )
        report = evaluator.evaluate(self.mode)
        table = evaluator.self_consistency_table(SAMPLING_MODES).means()
        out = {
            "mean_invariance": torch.tensor(report.mean_invariance, dtype=torch.float64),
            "mmd_hybrid": torch.tensor(report.mmd_hybrid, dtype=torch.float64),
            "reconstruction": self.sum_squared_error / self.count,
            **{
                f"self_consistency_{m}": torch.tensor(v, dtype=torch.float64)
                for m, v in table.items()
            },
        }
        if report.mean_equivariance is not None:
            out["mean_equivariance"] = torch.tensor(report.mean_equivariance, dtype=torch.float64)
        return out

    def plot(self, val: Any = None, ax: Any = None) -> Any:
        """``(fig, ax)``: a bar per score (torchmetrics' ``plot`` convention)."""
        return self._plot(val, ax)


class DisentanglementScores(Metric):
    r"""The disentanglement scores (by default IRS, MIG and DCI; any of
    :data:`~consistency.metrics.CODE_METRICS` by name) on codes and true factors gathered over
    every batch (and process), by :func:`~consistency.metrics.ground_truth_scores`.

    .. math:: \mathrm{MIG} = \frac{1}{F}\sum_k \frac{I(z_{j^{(1)}}; v_k) - I(z_{j^{(2)}}; v_k)}{H(v_k)}

    Args:
        metrics: which scores (names of :data:`~consistency.metrics.CODE_METRICS`).
        factor_bins: bins for continuous factors (``None``: factors already discrete).
        importance: DCI's importance estimator, ``"lasso"`` or ``"gbt"``.

    Shapes:
        ``update(codes, factors)``: ``(B, n)`` and ``(B, F)``. ``compute()``: a dict of 0-d tensors.
    """

    full_state_update = False
    higher_is_better = True
    is_differentiable = False
    codes: list[Tensor]
    factors: list[Tensor]

    def __init__(
        self,
        *,
        metrics: Sequence[str] = ("irs", "mig", "dci"),
        factor_bins: int | None = 20,
        importance: str = "lasso",
        **kwargs: Any,
    ) -> None:
        from ..metrics import CODE_METRICS

        super().__init__(**kwargs)
        unknown = [m for m in metrics if m not in CODE_METRICS]
        if unknown:
            raise InvalidValueError(
                f"DisentanglementScores: metrics must be among {CODE_METRICS} (scores from codes "
                f"and factors); got {unknown}"
            )
        self.metrics = tuple(metrics)
        self.factor_bins = factor_bins
        self.importance = importance
        self.add_state("codes", default=[], dist_reduce_fx="cat")
        self.add_state("factors", default=[], dist_reduce_fx="cat")

    def update(self, codes: Tensor, factors: Tensor) -> None:
        if codes.ndim != 2 or factors.ndim != 2 or codes.shape[0] != factors.shape[0]:
            raise InvalidValueError(
                f"codes and factors must be (B, n) and (B, F) with the same B; got "
                f"{tuple(codes.shape)} and {tuple(factors.shape)}"
            )
        self.codes.append(codes.detach())
        self.factors.append(factors.detach())

    def compute(self) -> dict[str, Tensor]:
        from ..metrics import ground_truth_scores

        scores = ground_truth_scores(
            dim_zero_cat(self.codes),
            dim_zero_cat(self.factors),
            metrics=self.metrics,
            factor_bins=self.factor_bins,
            importance=self.importance,  # type: ignore[arg-type]
        )
        return {k: torch.tensor(v, dtype=torch.float64) for k, v in scores.summary().items()}

    def plot(self, val: Any = None, ax: Any = None) -> Any:
        """``(fig, ax)``: a bar per score (torchmetrics' ``plot`` convention)."""
        return self._plot(val, ax)
