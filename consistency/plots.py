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
    colorbar_label: str = "score",
    caption: str | None = None,
    mask_lower: bool = False,
) -> Figure:
    """Heatmap of an ``(n, n)`` matrix with each value written in its cell (paper Fig. 3), a
    labelled colour bar and an optional one-line caption under it (what good looks like).
    ``mask_lower`` greys out the cells on and below the diagonal (an XBlock's impossible edges)."""
    m = matrix.detach().float().cpu()
    n = m.shape[0]
    fig, ax = plt.subplots(figsize=(2.2 + 0.6 * n, 1.6 + 0.55 * n))
    shown = m.clone()
    if mask_lower:
        shown[torch.ones_like(m, dtype=torch.bool).tril()] = float("nan")
    cmap = matplotlib.colormaps["viridis"].copy()
    cmap.set_bad("0.85")
    im = ax.imshow(shown.numpy(), vmin=vmin, vmax=vmax, cmap=cmap)
    for r in range(n):
        for c in range(m.shape[1]):
            if mask_lower and c <= r:
                continue
            v = float(m[r, c])
            ax.text(
                c,
                r,
                "nan" if v != v else f"{v:.2f}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if v == v and v < (vmin + vmax) / 2 else "black",
            )
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel, xticks=range(m.shape[1]), yticks=range(n))
    bar = fig.colorbar(im, ax=ax, fraction=0.046)
    bar.set_label(colorbar_label, fontsize=8)
    if caption:
        fig.text(0.5, 0.01, caption, ha="center", va="bottom", fontsize=7, wrap=True)
        fig.tight_layout(rect=(0, 0.08, 1, 1))
    else:
        fig.tight_layout()
    return fig


def plot_invariance(report: ConsistencyReport) -> Figure:
    """INV[m, i] heatmap."""
    return plot_score_matrix(
        report.invariance,
        f"invariance INV[m, i] ({report.mode} prior, {report.convention})",
        colorbar_label="INV (1 = response i ignores the intervention on m)",
        caption="good: 1 off the diagonal; the diagonal near 0 (near 1 = a collapsed dimension)",
    )


def plot_equivariance(report: ConsistencyReport) -> Figure:
    """EQV[m, i] heatmap (the report must come from a model with an XBlock)."""
    if report.equivariance is None:
        raise InvalidValueError(
            "this report has no equivariance: evaluate with xblock=... to get one"
        )
    return plot_score_matrix(
        report.equivariance,
        f"equivariance EQV[m, i] ({report.mode} prior, {report.convention})",
        xlabel="cause unit i",
        colorbar_label="EQV (1 = intervening before or after R agrees)",
        caption="good: 1 everywhere; read it beside self-consistency (a constant map also scores 1)",
    )


def plot_adjacency(source: ConsistencyReport | Any) -> Figure:
    """The XBlock's gate matrix (row parent, column child) with its gate confidence (appendix
    A.4.4); the title says when the gates are undecided (confidence < 0.5: the graph is noise)."""
    if isinstance(source, ConsistencyReport):
        adj, conf = source.adjacency, source.gate_confidence
    else:
        adj, conf = source.adjacency(), source.gate_confidence()
    if adj is None:
        raise InvalidValueError("no adjacency: the report was computed without an XBlock")
    undecided = conf is not None and conf < 0.5
    title = f"XBlock gates, confidence {conf:.2f}" + (
        "\nUNDECIDED: gates near 0.5, the graph is noise" if undecided else ""
    )
    return plot_score_matrix(
        adj,
        title,
        xlabel="child unit",
        ylabel="parent unit",
        colorbar_label="gate (1 = edge open, 0 = closed)",
        caption="good: gates near 0 or 1 (confidence near 1); grey cells cannot hold an edge",
        mask_lower=True,
    )


def plot_traversal_responses(
    evaluator: ConsistencyEvaluator, dims: Sequence[int] | None = None, steps: int = 20
) -> Figure:
    """Mean response error ``R(Ñ) − Ñ`` along traversals, one panel per traversed dim (paper
    Fig. 2), three panels a row, one legend for the figure."""
    dims = list(range(evaluator.n)) if dims is None else list(dims)
    cols = min(3, len(dims))
    rows = -(-len(dims) // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.6 * cols + 1.4, 2.9 * rows + 0.7), squeeze=False
    )
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    lines = []
    for ax, d in zip(axes.flat, dims):
        err = evaluator.traversal_responses(d, steps).float().cpu()  # (T, steps, n)
        grid = evaluator.traversal_grid(d, steps).float().cpu()
        mean, std = err.mean(0), err.std(0)
        for i in range(evaluator.n):
            colour = colours[i % len(colours)]
            (line,) = ax.plot(
                grid.numpy(), mean[:, i].numpy(), lw=2.4 if i == d else 1.1, color=colour
            )
            ax.fill_between(
                grid.numpy(),
                (mean[:, i] - std[:, i]).numpy(),
                (mean[:, i] + std[:, i]).numpy(),
                alpha=0.08,
                color=colour,
            )
            if ax is axes.flat[0]:
                lines.append(line)
        ax.axhline(0, color="k", lw=0.6)
        ax.set(title=f"traversing N{d} (bold: N{d} itself)", xlabel=f"value of N{d}")
        ax.set_ylabel("R(Ñ) − Ñ", fontsize=8)
    for ax in list(axes.flat)[len(dims) :]:
        ax.set_visible(False)
    fig.legend(
        lines,
        [f"dim {i}" for i in range(evaluator.n)],
        loc="center right",
        fontsize=8,
        title="response coordinate",
        title_fontsize=8,
    )
    fig.suptitle(
        "response error along each traversal: good is 0 for every coordinate "
        "(lines: mean over prior samples; bands: ± 1 s.d.)",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0, 0.86, 0.95))
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
    images: Tensor,
    rows: int,
    cols: int,
    title: str,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
) -> Figure:
    imgs = _images(images)
    fig, axes = plt.subplots(
        rows, cols, figsize=(0.95 * cols + 1.3, 0.95 * rows + 0.9), squeeze=False
    )
    for idx, ax in enumerate(axes.flat):
        if idx < len(imgs):
            ax.imshow(imgs[idx], cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
    if row_labels is not None:
        for r, lab in enumerate(row_labels):
            axes[r][0].set_ylabel(lab, fontsize=7, rotation=0, ha="right", va="center")
    if col_labels is not None:
        for c, lab in enumerate(col_labels):
            axes[0][c].set_title(lab, fontsize=7)
    fig.suptitle(title, fontsize=9)
    if xlabel:
        fig.supxlabel(xlabel, fontsize=8)
    if ylabel:
        fig.supylabel(ylabel, fontsize=8)
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
    rows, labels = [], []
    for m in range(n):
        grid = evaluator.traversal_grid(m, steps)
        rows.append(intervene(base.expand(steps, n), m, grid))
        labels.append(f"N{m}\n{float(grid[0]):.2g} … {float(grid[-1]):.2g}")
    images = _decode(evaluator, torch.cat(rows))
    quantiles = [f"q{100 * k / (steps - 1):.0f}" for k in range(steps)]
    return _grid(
        images,
        n,
        steps,
        "latent traversals: row m sweeps N_m over its quantiles (row label: the value "
        "range),\nthe other coordinates fixed",
        labels,
        quantiles,
        xlabel="quantile of Q(N_m) (q0 = min, q100 = max)",
    )


def plot_hybridisation_grid(evaluator: ConsistencyEvaluator, n_pairs: int = 6) -> Figure:
    """Row 0: base samples N¹; row 1: alternatives N²; row 2 + i: N¹ with coordinate i taken from N²."""
    n = evaluator.n
    g = evaluator.generator
    n1 = evaluator.sampler.sample(n_pairs, "posterior", generator=g)
    n2 = evaluator.sampler.sample(n_pairs, "posterior", generator=g)
    rows = [n1, n2] + [intervene(n1, i, n2[:, i]) for i in range(n)]
    images = _decode(evaluator, torch.cat(rows))
    return _grid(
        images,
        n + 2,
        n_pairs,
        "hybridisation: each column a pair (N¹, N²);\nrow 'N¹, i←N²' decodes N¹ with "
        "coordinate i taken from N²",
        ["N¹", "N²"] + [f"N¹, {i}←N²" for i in range(n)],
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
    v = "N" if space == "noise" else "Z"
    return _grid(
        images,
        n,
        n,
        f"double intervention on {v}:\ncell (i, j) takes {v}_i from a second sample and {v}_j "
        "from a third (diagonal: only i)",
        [f"i = {i}" for i in range(n)],
        [f"j = {j}" for j in range(n)],
        xlabel="j: the coordinate from the third sample",
        ylabel="i: the coordinate from the second sample",
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
