"""``ConsistencyMetric``: update / compute / reset, for a user's validation loop."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ._checks import check_positive_int, user_stacklevel
from ._dist import is_distributed
from .errors import EmptySamplerError, InvalidTypeError, InvalidValueError, ShapeError
from .evaluator import CONVENTION_DEFAULTS, ConsistencyEvaluator, Convention
from .report import ConsistencyReport, SelfConsistencyTable
from .response import ResponseModel
from .sampler import SAMPLING_MODES, AggregatePosterior, _check_mode

__all__ = ["ConsistencyMetric", "MetricResult"]


class MetricResult(NamedTuple):
    """What :meth:`ConsistencyMetric.compute` returns.

    Attributes:
        report: the scores under ``mode`` (:class:`ConsistencyReport`).
        self_consistency: self-consistency under every mode asked for (Table 2's row).
        reconstruction: mean squared error per image (summed over pixels) over every image seen.
        images: how many images were seen (over all ranks).
    """

    report: ConsistencyReport
    self_consistency: SelfConsistencyTable
    reconstruction: float
    images: int

    def scalars(self) -> dict[str, float]:
        """Every scalar of the result, flat, for a logger: ``mean_invariance``,
        ``mean_self_consistency``, ``mean_self_consistency_active`` (over the dimensions that are
        not collapsed), ``collapsed_dims`` (how many), ``self_consistency/<mode>`` for each mode of the table,
        ``mmd_hybrid`` and ``mmd_hybrid_multiscale`` (the noise MMD), ``reconstruction``, and
        with an XBlock ``mean_equivariance``, ``gates/edge_density``, ``gates/confidence``,
        ``gates/mean_shift`` and ``gates/flipped``.

        Example:
            >>> import torch
            >>> from consistency import ConsistencyMetric, ResponseModel
            >>> metric = ConsistencyMetric(ResponseModel(torch.nn.Linear(5, 3),
            ...     torch.nn.Linear(3, 5)), n=3, n_samples=10, n_interventions=2)
            >>> metric.update(torch.randn(16, 5))
            >>> sorted(metric.compute().scalars())[:4]
            ['collapsed_dims', 'mean_invariance', 'mean_self_consistency', 'mean_self_consistency_active']
        """
        report = self.report
        out = {
            "mean_invariance": report.mean_invariance,
            "mean_self_consistency": report.mean_self_consistency,
            "mean_self_consistency_active": report.mean_self_consistency_active,
            "collapsed_dims": float(len(report.collapsed)),
            **{f"self_consistency/{m}": v for m, v in self.self_consistency.means().items()},
            "mmd_hybrid": report.mmd_hybrid,
            "mmd_hybrid_multiscale": report.mmd_hybrid_multiscale,
            "reconstruction": self.reconstruction,
        }
        if report.mean_equivariance is not None:
            out["mean_equivariance"] = report.mean_equivariance
        if report.edge_density is not None:
            out["gates/edge_density"] = report.edge_density
        if report.gate_confidence is not None:
            out["gates/confidence"] = report.gate_confidence
        if report.gate_movement is not None:
            out["gates/mean_shift"] = report.gate_movement.mean_shift
            out["gates/flipped"] = float(report.gate_movement.flipped)
        return {k: float(v) for k, v in out.items()}


def infer_width(handle: ResponseModel, model: object) -> int | None:
    """The latent width of a model: its XBlock's ``n``, else an integer attribute ``n`` of the
    model, else ``None``."""
    xblock = handle.xblock
    found = xblock.n if xblock is not None else getattr(model, "n", None)
    return found if isinstance(found, int) and not isinstance(found, bool) else None


class ConsistencyMetric(nn.Module):
    r"""Consistency scores accumulated over a validation loop (torchmetrics-style).

    ``update(images)`` stores the encoder's means of the batch in the metric's own aggregate
    posterior and adds the batch's reconstruction error; ``compute()`` evaluates the scores on
    everything seen; ``reset()`` starts over. Under ``torch.distributed`` the bank gathers the
    means of every rank and the error sums are all-reduced, so every rank computes the same
    report (call ``update`` and ``compute`` on every rank).

    .. math:: \mathrm{rec} = \frac{1}{|X|}\sum_{x \in X} \|G(\mathbb{E}[E(x)]) - x\|_2^2

    Args:
        model: the autoencoder, as :class:`ConsistencyEvaluator` takes it.
        n: latent width (default: the XBlock's ``n``, or the model's integer ``n``).
        capacity: most means kept in :attr:`sampler` (the oldest are overwritten).
        n_samples, n_interventions, scn_samples, pool_size, max_batch, convention: as
            :class:`ConsistencyEvaluator` (``None``: the convention's sizes; ``n_samples`` is
            capped at the number of images seen).
        mode: the sampling mode of the report.
        modes: the modes of the self-consistency table.
        seed: seed of the evaluation's random generator (the same report for the same data).
        progress: progress bars during :meth:`compute`.

    The sampler's bank and the sums are buffers: move the metric with ``metric.to(device)`` to where the
    model runs.

    Example:
        >>> import torch
        >>> from consistency import ResponseModel
        >>> model = ResponseModel(torch.nn.Linear(5, 3), torch.nn.Linear(3, 5))
        >>> metric = ConsistencyMetric(model, n=3, n_samples=20, n_interventions=2)
        >>> for x in torch.randn(4, 16, 5):
        ...     metric.update(x)
        >>> result = metric.compute()
        >>> result.images, result.report.invariance.shape
        (64, torch.Size([3, 3]))
    """

    sum_squared_error: Tensor
    count: Tensor

    def __init__(
        self,
        model: nn.Module | ResponseModel,
        *,
        n: int | None = None,
        capacity: int = 10_000,
        n_samples: int | None = None,
        n_interventions: int | None = None,
        scn_samples: int | None = None,
        pool_size: int | None = None,
        max_batch: int = 512,
        convention: Convention = "spec",
        mode: str = "posterior",
        modes: Sequence[str] = SAMPLING_MODES,
        seed: int = 0,
        progress: bool = False,
    ) -> None:
        super().__init__()
        handle = ResponseModel.of(
            model, max_batch=check_positive_int(max_batch, "max_batch"), owner="ConsistencyMetric"
        )
        if n is None:
            found = infer_width(handle, model)
            if found is None:
                raise InvalidValueError(
                    "ConsistencyMetric: pass n= (the latent width); the model has no XBlock or "
                    "integer attribute n to read it from"
                )
            n = found
        if check_positive_int(n, "n") < 2:
            raise InvalidValueError(
                f"ConsistencyMetric: the consistency scores need n >= 2 latent dimensions (an "
                f"off-target dimension to measure); got n = {n}"
            )
        self._handle = (handle,)
        self._range_checked = False
        self.sampler = AggregatePosterior(n, capacity=capacity)
        self.register_buffer("sum_squared_error", torch.zeros((), dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))
        if convention not in CONVENTION_DEFAULTS:
            raise InvalidValueError(f'convention must be "spec" or "authors"; got {convention!r}')
        defaults = CONVENTION_DEFAULTS[convention]
        self._evaluator_kw: dict[str, Any] = dict(
            n_samples=check_positive_int(
                defaults.n_samples if n_samples is None else n_samples, "n_samples", 2
            ),
            n_interventions=check_positive_int(
                defaults.n_interventions if n_interventions is None else n_interventions,
                "n_interventions",
            ),
            scn_samples=None
            if scn_samples is None
            else check_positive_int(scn_samples, "scn_samples", 2),
            pool_size=None if pool_size is None else check_positive_int(pool_size, "pool_size", 2),
            max_batch=max_batch,
            convention=convention,
            progress=progress,
        )
        self.mode = _check_mode(mode)
        self.modes = tuple(_check_mode(m) for m in modes)
        self.seed = int(seed)

    @property
    def n(self) -> int:
        return self.sampler.dim

    @property
    def model(self) -> ResponseModel:
        """The :class:`~consistency.ResponseModel` the metric evaluates."""
        return self._handle[0]

    @torch.no_grad()
    def update(self, images: Tensor) -> None:
        """Add a batch ``(B, *x)``: its means go into the bank, its reconstruction error into the
        sums. The networks run in eval mode (restored after) without gradients."""
        if isinstance(images, (tuple, list)):
            raise InvalidTypeError(
                f"update takes the images only, a torch.Tensor (B, *x); got a {type(images).__name__} "
                f"of {len(images)} (a batch of (images, labels)? pass metric.update(batch[0]))"
            )
        if not isinstance(images, Tensor):
            raise InvalidTypeError(f"images must be a torch.Tensor; got {type(images).__name__}")
        if not images.is_floating_point():
            raise InvalidTypeError(
                f"images must be floating point, like the model's training data; got {images.dtype} "
                "(for uint8 pixels pass images.float() / 255)"
            )
        if not self._range_checked and images.numel():
            self._range_checked = True
            top = float(images.detach().amax())
            if top > 10.0:
                warnings.warn(
                    f"images reach {top:.4g}: they look like pixels in [0, 255], and the "
                    "reconstruction error is summed in those units; divide by 255 if the model "
                    "was trained on [0, 1]",
                    stacklevel=user_stacklevel(),
                )
        if images.ndim < 2:
            raise ShapeError(
                f"images must have a batch axis and at least one more, (B, *x); got shape "
                f"{tuple(images.shape)}"
            )
        handle = self.model
        with handle.evaluation():
            means = handle.means(images)
            error = (handle.generate(means).double() - images.double()).square().flatten(1).sum(1)
            self.sampler.update(means)  # gathered across ranks; after the checks above passed
        self.sum_squared_error += error.sum().to(self.sum_squared_error)
        self.count += images.shape[0]

    def reconstruction(self) -> tuple[float, int]:
        """Mean reconstruction error over every image seen (all ranks) and their number."""
        sums = torch.stack([self.sum_squared_error, self.count.double()])
        if is_distributed():
            dist.all_reduce(sums)
        count = int(sums[1])
        return (float(sums[0] / sums[1]) if count else float("nan")), count

    def evaluator(self) -> ConsistencyEvaluator:
        """A :class:`ConsistencyEvaluator` on the images seen so far (its generator seeded with
        ``seed``, so the same data give the same report)."""
        if len(self.sampler) < 2:
            raise EmptySamplerError(
                f"ConsistencyMetric needs at least 2 images seen; got {len(self.sampler)}: "
                "call update(images) first"
            )
        device = self.sampler.bank_buffer.device
        kw = dict(self._evaluator_kw)
        kw["n_samples"] = min(kw["n_samples"], len(self.sampler))
        return ConsistencyEvaluator(
            self.model,
            self.sampler,
            generator=torch.Generator(device=device).manual_seed(self.seed),
            **kw,
        )

    def compute(self) -> MetricResult:
        """Scores and reconstruction error over everything seen (identical on every rank)."""
        evaluator = self.evaluator()
        report = evaluator.evaluate(self.mode)
        table = evaluator.self_consistency_table(self.modes)
        error, count = self.reconstruction()
        return MetricResult(report, table, error, count)

    def reset(self) -> None:
        """Forget every image seen."""
        self.sampler.reset()
        self.sum_squared_error.zero_()
        self.count.zero_()
