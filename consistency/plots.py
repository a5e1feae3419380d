"""Pictures of consistency (optional layer: needs the ``examples`` extra, i.e. matplotlib).

Every function returns a ``matplotlib.figure.Figure``; :func:`save_figures` writes PNGs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

try:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
except ImportError as err:  # pragma: no cover - exercised only without matplotlib
    raise ImportError(
        "consistency.plots needs matplotlib: pip install 'interventional-consistency[examples]'"
    ) from err

from .errors import InvalidValueError
from .evaluator import ConsistencyEvaluator
from .intervention import intervene
from .report import ConsistencyReport

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "plot_adjacency",
    "plot_double_intervention",
    "plot_equivariance",
    "plot_hybridisation_grid",
    "plot_invariance",
    "plot_latent_traversals",
    "plot_reconstructions_and_samples",
    "plot_score_matrix",
    "plot_traversal_responses",
    "save_figures",
    "save_report_figures",
]


def plot_score_matrix(
    matrix: Tensor,
    title: str,
    *,
    vmin: float = 0.0,
    vmax: float = 1.0,
    xlabel: str = "response dim i",
    ylabel: str = "intervened dim m",
) -> Figure:
    """Heatmap of an ``(n, n)`` matrix with each value written in its cell (paper Fig. 3)."""
    m = matrix.detach().float().cpu()
    n = m.shape[0]
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * n, 0.8 + 0.5 * n))
    im = ax.imshow(m.numpy(), vmin=vmin, vmax=vmax, cmap="viridis")
    for r in range(n):
        for c in range(m.shape[1]):
            v = float(m[r, c])
            ax.text(
                c,
                r,
                "nan" if v != v else f"{v:.2f}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if v == v and v < (vmin + vmax) / 2 else "black",
            )
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel, xticks=range(m.shape[1]), yticks=range(n))
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def plot_invariance(report: ConsistencyReport) -> Figure:
    """INV[m, i] heatmap."""
    return plot_score_matrix(report.invariance, f"invariance ({report.mode})")


def plot_equivariance(report: ConsistencyReport) -> Figure:
    """EQV[m, i] heatmap (the report must come from a model with an XBlock)."""
    if report.equivariance is None:
        raise InvalidValueError(
            "this report has no equivariance: evaluate with xblock=... to get one"
        )
    return plot_score_matrix(report.equivariance, f"equivariance ({report.mode})")


def plot_adjacency(source: ConsistencyReport | Any) -> Figure:
    """The XBlock's gate matrix (row parent, column child) with its gate confidence (appendix A.4.4)."""
    if isinstance(source, ConsistencyReport):
        adj, conf = source.adjacency, source.gate_confidence
    else:
        adj, conf = source.adjacency(), source.gate_confidence()
    if adj is None:
        raise InvalidValueError("no adjacency: the report was computed without an XBlock")
    fig = plot_score_matrix(
        adj, f"XBlock gates (confidence {conf:.2f})", xlabel="child", ylabel="parent"
    )
    return fig


def plot_traversal_responses(
    evaluator: ConsistencyEvaluator, dims: Sequence[int] | None = None, steps: int = 20
) -> Figure:
    """Mean response error ``R(Ñ) − Ñ`` along traversals, one panel per traversed dim (paper Fig. 2)."""
    dims = list(range(evaluator.n)) if dims is None else list(dims)
    fig, axes = plt.subplots(1, len(dims), figsize=(3 * len(dims), 2.6), squeeze=False)
    for ax, d in zip(axes[0], dims):
        err = evaluator.traversal_responses(d, steps).float().cpu()  # (T, steps, n)
        grid = evaluator.traversal_grid(d, steps).float().cpu()
        mean, std = err.mean(0), err.std(0)
        for i in range(evaluator.n):
            ax.plot(grid.numpy(), mean[:, i].numpy(), lw=2 if i == d else 1, label=f"{i}")
            ax.fill_between(
                grid.numpy(),
                (mean[:, i] - std[:, i]).numpy(),
                (mean[:, i] + std[:, i]).numpy(),
                alpha=0.1,
            )
        ax.axhline(0, color="k", lw=0.5)
        ax.set(title=f"traverse N{d}", xlabel=f"N{d}", ylabel="R(Ñ) − Ñ")
    axes[0][-1].legend(title="dim", fontsize=6, loc="best")
    fig.tight_layout()
    return fig


def _images(x: Tensor) -> Any:
    x = x.detach().float().cpu().clamp(0, 1)
    if x.ndim == 2:  # flat outputs: show as a 1-pixel-high strip
        x = x[:, None, None, :]
    if x.ndim == 3:
        x = x[:, None]
    x = x.permute(0, 2, 3, 1)
    return x[..., 0].numpy() if x.shape[-1] == 1 else x.numpy()


def _grid(
    images: Tensor, rows: int, cols: int, title: str, row_labels: Sequence[str] | None = None
) -> Figure:
    imgs = _images(images)
    fig, axes = plt.subplots(
        rows, cols, figsize=(0.9 * cols + 0.6, 0.9 * rows + 0.4), squeeze=False
    )
    for idx, ax in enumerate(axes.flat):
        if idx < len(imgs):
            ax.imshow(imgs[idx], cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
    if row_labels is not None:
        for r, lab in enumerate(row_labels):
            axes[r][0].set_ylabel(lab, fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def _decode(evaluator: ConsistencyEvaluator, noise: Tensor) -> Tensor:
    return evaluator.generate(noise)


def plot_latent_traversals(
    evaluator: ConsistencyEvaluator, steps: int = 9, base: Tensor | None = None
) -> Figure:
    """Image grid: row ``m`` decodes a base sample with ``N_m`` swept over the quantiles of ``Q(N_m)``."""
    n = evaluator.n
    base = (
        evaluator.sampler.sample(1, "posterior", generator=evaluator.generator)
        if base is None
        else base[:1]
    )
    rows = []
    for m in range(n):
        grid = evaluator.traversal_grid(m, steps)
        rows.append(intervene(base.expand(steps, n), m, grid))
    images = _decode(evaluator, torch.cat(rows))
    return _grid(images, n, steps, "latent traversals", [f"N{m}" for m in range(n)])


def plot_hybridisation_grid(evaluator: ConsistencyEvaluator, n_pairs: int = 6) -> Figure:
    """Row 0: base samples N¹; row 1: alternatives N²; row 2 + i: N¹ with coordinate i taken from N²."""
    n = evaluator.n
    g = evaluator.generator
    n1 = evaluator.sampler.sample(n_pairs, "posterior", generator=g)
    n2 = evaluator.sampler.sample(n_pairs, "posterior", generator=g)
    rows = [n1, n2] + [intervene(n1, i, n2[:, i]) for i in range(n)]
    images = _decode(evaluator, torch.cat(rows))
    return _grid(
        images, n + 2, n_pairs, "hybridisation", ["N¹", "N²"] + [f"N¹, {i}←N²" for i in range(n)]
    )


def plot_double_intervention(
    evaluator: ConsistencyEvaluator,
    *,
    space: str = "noise",
    cause_decoder: Callable[[Tensor], Tensor] | None = None,
) -> Figure:
    """The ``n × n`` double-intervention matrix (Figs. 34–35): cell ``(i, j)`` decodes N¹ with
    coordinate ``i`` from N² and ``j`` from N³ (on the diagonal, ``i`` from N²).

    ``space="causes"`` intervenes on the XBlock's causes instead, ``do(Z_i := S(N²)_i, Z_j := S(N³)_j)``,
    and needs ``cause_decoder`` (causes -> images, the decoder without the XBlock).
    """
    n = evaluator.n
    g = evaluator.generator
    n1, n2, n3 = (evaluator.sampler.sample(1, "posterior", generator=g) for _ in range(3))
    if space == "noise":
        cells = []
        for i in range(n):
            for j in range(n):
                x = intervene(n1, i, n2[:, i])
                cells.append(x if i == j else intervene(x, j, n3[:, j]))
        images = _decode(evaluator, torch.cat(cells))
    elif space == "causes":
        block = evaluator.xblock
        if block is None or cause_decoder is None:
            raise InvalidValueError(
                'space="causes" needs an evaluator with xblock=... and cause_decoder=...'
            )
        with evaluator.evaluation_mode():
            z2, z3 = block.causes(n2)[0], block.causes(n3)[0]
            out = []
            for i in range(n):
                for j in range(n):
                    do = {i: z2[i]} if i == j else {i: z2[i], j: z3[j]}
                    out.append(cause_decoder(block(n1, intervene=do)))
            images = torch.cat(out)
    else:
        raise InvalidValueError(f'space must be "noise" or "causes"; got {space!r}')
    return _grid(
        images,
        n,
        n,
        f"double intervention on {'N' if space == 'noise' else 'Z'}",
        [f"{i}" for i in range(n)],
    )


def plot_reconstructions_and_samples(
    evaluator: ConsistencyEvaluator, images: Tensor, n_show: int = 8
) -> Figure:
    """Data, reconstructions and hybrid prior samples, one row each (paper Fig. 7)."""

    x = images[:n_show]
    with evaluator.evaluation_mode():
        recon = evaluator.model.generate(evaluator.model.means(x))
    samples = _decode(
        evaluator, evaluator.sampler.sample(x.shape[0], "hybrid", generator=evaluator.generator)
    )
    return _grid(
        torch.cat([x.to(recon), recon, samples]),
        3,
        x.shape[0],
        "data / reconstructions / hybrid samples",
        ["data", "recon", "hybrid"],
    )


def save_report_figures(report: ConsistencyReport, directory: str | Path) -> list[Path]:
    """Write the report's heatmaps (invariance, equivariance, adjacency) as PNGs."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    figures = {"invariance": plot_invariance(report)}
    if report.equivariance is not None:
        figures["equivariance"] = plot_equivariance(report)
    if report.adjacency is not None:
        figures["adjacency"] = plot_adjacency(report)
    return _write(figures, out, suffix=f"_{report.mode}")


def save_figures(
    evaluator: ConsistencyEvaluator,
    directory: str | Path,
    *,
    images: Tensor | None = None,
    cause_decoder: Callable[[Tensor], Tensor] | None = None,
) -> list[Path]:
    """Write every evaluator picture (traversal responses, traversals, hybridisation, double
    interventions, and reconstructions when ``images`` are given) as PNGs in ``directory``."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    figures = {
        "traversal_responses": plot_traversal_responses(evaluator),
        "latent_traversals": plot_latent_traversals(evaluator),
        "hybridisation": plot_hybridisation_grid(evaluator),
        "double_intervention_noise": plot_double_intervention(evaluator),
    }
    if evaluator.xblock is not None and cause_decoder is not None:
        figures["double_intervention_causes"] = plot_double_intervention(
            evaluator, space="causes", cause_decoder=cause_decoder
        )
    if images is not None:
        figures["reconstructions_samples"] = plot_reconstructions_and_samples(evaluator, images)
    return _write(figures, out)


def _write(figures: dict[str, Figure], out: Path, suffix: str = "") -> list[Path]:
    paths = []
    for name, fig in figures.items():
        path = out / f"{name}{suffix}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths
