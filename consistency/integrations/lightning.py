"""A Lightning callback that scores consistency during validation and logs it (optional: needs
``lightning``).

:class:`ConsistencyCallback` feeds a bounded number of validation batches to a
:class:`~consistency.ConsistencyMetric` every ``every_n_epochs`` epochs and, at the end of that
validation, logs every scalar of :meth:`MetricResult.scalars
<consistency.MetricResult.scalars>` through the LightningModule's ``log_dict`` (so they reach
every logger, and ``ModelCheckpoint(monitor="consistency/self_consistency/hybrid")`` works),
and the figures (invariance heatmap, latent traversals, the XBlock's gates) to every logger that
takes images: TensorBoard (``add_figure``), W&B and the other loggers with a ``log_image``
method; loggers without images (CSV, for one) get PNG files in their log directory. No logger
library is imported: a logger is recognised by what it has.

Example:
    >>> import lightning as L
    >>> callback = ConsistencyCallback(every_n_epochs=2, max_batches=4)
    >>> isinstance(callback, L.Callback)
    True
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch import Tensor, nn

try:
    import lightning.pytorch as pl
except ImportError as err:  # pragma: no cover - exercised only without lightning
    raise ImportError(
        "consistency.integrations.lightning needs Lightning: pip install lightning"
    ) from err

from .._checks import check_positive_int
from ..consistency_metric import ConsistencyMetric, MetricResult
from ..errors import InvalidTypeError, InvalidValueError
from ..evaluator import Convention
from ..response import ResponseModel
from ..sampler import SAMPLING_MODES

__all__ = ["FIGURES", "ConsistencyCallback"]

FIGURES = ("invariance", "traversals", "adjacency")
"""The figures the callback can log: the INV heatmap, the latent traversals and the gates."""

ModelSource = str | Callable[[Any], "nn.Module | ResponseModel"] | None


def _default_images(batch: Any) -> Tensor:
    if isinstance(batch, Tensor):
        return batch
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], Tensor):
        return batch[0]
    if isinstance(batch, dict) and isinstance(batch.get("images"), Tensor):
        return batch["images"]
    raise InvalidTypeError(
        "ConsistencyCallback: cannot find the images in a validation batch of type "
        f"{type(batch).__name__} (it reads a tensor, the first item of a tuple/list, or "
        "batch['images']); pass images=lambda batch: ... to say where they are"
    )


class ConsistencyCallback(pl.Callback):
    r"""Consistency scores of the model, logged at the end of validation every ``k`` epochs.

    .. math:: \mathrm{SCN}_i = 1 - \frac{\mathbb{E}_N[(R(N)_i - N_i)^2]}{\mathrm{Var}(N_i)}

    The scalars are logged under ``prefix/`` with the LightningModule's ``log_dict`` (so every
    logger gets them at the step of the validation); the figures go to each logger that takes
    images, and to PNG files for the others. The last result is kept in :attr:`last_result`
    and its scalars in :attr:`last_scores`.

    Args:
        model: which model to score: ``None`` (default) the LightningModule itself (an
            ``nn.Module`` with ``.encoder`` / ``.decoder`` (and ``.latent``), or ``encode`` /
            ``generate``), the name of one of its attributes, or a function of the
            LightningModule returning the model or a :class:`~consistency.ResponseModel`.
        every_n_epochs: score on the validations of epochs ``0, k, 2k, ...``.
        max_batches: validation batches fed to the metric each time (the scores' data).
        images: where the images are in a validation batch (default: the batch itself, its
            first item, or ``batch["images"]``).
        n_samples, n_interventions, convention, mode, modes, seed: as
            :class:`~consistency.ConsistencyMetric`.
        figures: which of :data:`FIGURES` to log (``()``: none; the adjacency only with an
            XBlock).
        prefix: the scalars' and the figures' name prefix.
        figure_dir: where PNGs go for loggers without images (default: the logger's log
            directory, else the trainer's ``default_root_dir``), under ``consistency_figures/``.

    Example:
        >>> callback = ConsistencyCallback(model="autoencoder", figures=("invariance",))
        >>> callback.figures
        ('invariance',)
    """

    def __init__(
        self,
        model: ModelSource = None,
        *,
        every_n_epochs: int = 1,
        max_batches: int = 8,
        images: Callable[[Any], Tensor] | None = None,
        n_samples: int = 200,
        n_interventions: int = 5,
        convention: Convention = "spec",
        mode: str = "posterior",
        modes: Sequence[str] = SAMPLING_MODES,
        seed: int = 0,
        figures: Sequence[str] = FIGURES,
        prefix: str = "consistency",
        figure_dir: str | Path | None = None,
    ) -> None:
        super().__init__()
        if not (model is None or isinstance(model, str) or callable(model)):
            raise InvalidTypeError(
                "ConsistencyCallback: model must be None (the LightningModule), an attribute "
                f"name or a function of the LightningModule; got {type(model).__name__}"
            )
        unknown = [f for f in figures if f not in FIGURES]
        if unknown:
            raise InvalidValueError(
                f"ConsistencyCallback: figures must be among {FIGURES}; got {unknown}"
            )
        if mode not in SAMPLING_MODES or any(m not in SAMPLING_MODES for m in modes):
            raise InvalidValueError(
                f"ConsistencyCallback: mode and modes must be among {SAMPLING_MODES}; got "
                f"{mode!r} and {tuple(modes)}"
            )
        self.model = model
        self.every_n_epochs = check_positive_int(every_n_epochs, "every_n_epochs")
        self.max_batches = check_positive_int(max_batches, "max_batches")
        self.images = images if images is not None else _default_images
        self.metric_kwargs: dict[str, Any] = dict(
            n_samples=check_positive_int(n_samples, "n_samples", 2),
            n_interventions=check_positive_int(n_interventions, "n_interventions"),
            convention=convention,
            mode=mode,
            modes=tuple(modes),
            seed=int(seed),
        )
        self.figures = tuple(figures)
        self.prefix = str(prefix).rstrip("/")
        self.figure_dir = None if figure_dir is None else Path(figure_dir)
        self.metric: ConsistencyMetric | None = None
        self.last_result: MetricResult | None = None
        self.last_scores: dict[str, float] = {}
        self._active = False
        self._batches = 0

    # ---------------------------------------------------------------- the model
    def _target(self, pl_module: Any) -> nn.Module | ResponseModel:
        if self.model is None:
            return pl_module
        if isinstance(self.model, str):
            if not hasattr(pl_module, self.model):
                raise InvalidValueError(
                    f"ConsistencyCallback: the LightningModule {type(pl_module).__name__} has "
                    f"no attribute {self.model!r}"
                )
            return getattr(pl_module, self.model)
        return self.model(pl_module)

    def _metric(self, pl_module: Any) -> ConsistencyMetric:
        if self.metric is None:
            self.metric = ConsistencyMetric(self._target(pl_module), **self.metric_kwargs)
        return self.metric.to(pl_module.device)

    # ---------------------------------------------------------------- hooks
    def on_validation_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self._active = (
            not trainer.sanity_checking and trainer.current_epoch % self.every_n_epochs == 0
        )
        self._batches = 0
        if self._active:
            self._metric(pl_module).reset()

    def on_validation_batch_end(
        self,
        trainer: Any,
        pl_module: Any,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not self._active or self._batches >= self.max_batches:
            return
        self._metric(pl_module).update(self.images(batch))
        self._batches += 1

    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if not self._active or self._batches == 0 or self.metric is None:
            return
        self._active = False
        result = self.metric.compute()  # identical on every rank (the metric syncs its state)
        self.last_result = result
        self.last_scores = result.scalars()
        pl_module.log_dict(
            {f"{self.prefix}/{k}": v for k, v in self.last_scores.items()},
            on_step=False,
            on_epoch=True,
            sync_dist=False,
        )
        if self.figures and trainer.is_global_zero:
            self._log_figures(trainer, result)

    # ---------------------------------------------------------------- figures
    def _make_figures(self, result: MetricResult) -> dict[str, Any]:
        try:
            from .. import plots
        except ImportError:  # pragma: no cover - matplotlib missing
            warnings.warn(
                "ConsistencyCallback: figures need matplotlib (pip install matplotlib); "
                "logging the scalars only",
                stacklevel=2,
            )
            return {}
        metric = self.metric
        made: dict[str, Any] = {}
        if "invariance" in self.figures:
            made["invariance"] = plots.plot_invariance(result.report)
        if "traversals" in self.figures and metric is not None:
            made["traversals"] = plots.plot_latent_traversals(metric.evaluator())
        if "adjacency" in self.figures and result.report.adjacency is not None:
            made["adjacency"] = plots.plot_adjacency(result.report)
        return made

    def _log_figures(self, trainer: Any, result: MetricResult) -> None:
        figures = self._make_figures(result)
        if not figures:
            return
        import matplotlib.pyplot as plt

        step = int(trainer.global_step)
        loggers = list(getattr(trainer, "loggers", []) or [])
        try:
            for name, fig in figures.items():
                tag = f"{self.prefix}/{name}"
                saved = not loggers
                for logger in loggers:
                    experiment: Any = getattr(logger, "experiment", None)
                    if hasattr(experiment, "add_figure"):  # TensorBoard's SummaryWriter
                        experiment.add_figure(tag, fig, global_step=step, close=False)
                    elif callable(getattr(logger, "log_image", None)):  # W&B, Neptune, ...
                        logger.log_image(key=tag, images=[_rgb(fig)], step=step)
                    else:
                        saved = True
                if saved:
                    self._save(trainer, loggers, name, fig, step)
        finally:
            for fig in figures.values():
                plt.close(fig)

    def _save(self, trainer: Any, loggers: list[Any], name: str, fig: Any, step: int) -> None:
        root = self.figure_dir
        if root is None:
            dirs = [getattr(lg, "log_dir", None) for lg in loggers]
            found = next((d for d in dirs if isinstance(d, (str, Path))), None)
            root = Path(found if found is not None else trainer.default_root_dir)
        out = root / "consistency_figures"
        out.mkdir(parents=True, exist_ok=True)
        fig.savefig(out / f"{name}_step{step}.png", dpi=100)


def _rgb(fig: Any) -> Any:
    """The figure as an ``(H, W, 3)`` uint8 array (what every image logger takes)."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
