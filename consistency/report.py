"""The result of an evaluation: :class:`ConsistencyReport` and :class:`SelfConsistencyTable`,
their text and JSON forms. Figures are drawn by :mod:`consistency.plots`
(``plots.save_report_figures``) when the caller asks; this module imports no plotting code.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from .xblock import GateMovement

__all__ = ["ConsistencyReport", "SelfConsistencyTable"]


def _fmt(x: float) -> str:
    return "  nan" if math.isnan(x) else f"{x:5.2f}"


def _matrix_str(name: str, m: Tensor) -> list[str]:
    n = m.shape[0]
    lines = [
        f"{name} [row m = intervened, column i = response]",
        "      " + " ".join(f"{i:>5d}" for i in range(n)),
    ]
    lines += [f"{r:>5d} " + " ".join(_fmt(float(v)) for v in m[r]) for r in range(n)]
    return lines


@dataclass
class ConsistencyReport:
    """Scores of one evaluation (docs/method.md, "Consistency scores").

    Attributes:
        mode: prior sampling mode used.
        convention: ``"spec"`` or ``"authors"``.
        invariance: ``(n, n)`` INV[m, i]; 1 off the diagonal is perfect.
        equivariance: ``(n, n)`` EQV[m, i], or ``None`` without an XBlock.
        self_consistency: ``(n,)`` SCN[i].
        collapsed: dimensions whose diagonal invariance exceeds ``collapse_threshold``.
        collapse_threshold: the threshold used (default 0.9).
        mmd_hybrid: IMQ-kernel squared MMD between the posterior bank and its hybridised
            version, one kernel scale set by the data (:func:`~consistency.functional.imq_mmd`).
        adjacency: ``(n, n)`` XBlock gates (row parent, column child) or ``None``.
        edge_density: open edges (gate > 0.5) over the ``n(n-1)/2`` allowed ones, or ``None``.
        gate_confidence: mean ``|2A - 1|`` over possible edges, or ``None``.
        gate_movement: how far the gate logits moved from their initial values and how many
            edge decisions changed (:meth:`~consistency.XBlock.gate_movement`), or ``None``: a
            confident graph whose logits never moved is its initialisation.
        mean_invariance: mean off-diagonal invariance (NaNs ignored).
        mean_equivariance: mean equivariance, or ``None``.
        mean_self_consistency: mean self-consistency.
        n_samples, n_interventions: Monte-Carlo sizes.
        mmd_hybrid_multiscale: the same MMD² summed over the authors' seven fixed kernel
            scales (the paper's Fig. 8; :func:`~consistency.functional.imq_mmd_multiscale`).
        adjacency_density: open edges over all ``n²`` entries of the adjacency (the authors'
            Table 1 "sparsity", ``A.sum() / n²``; at most ``(n-1) / 2n``), or ``None``.
    """

    mode: str
    convention: str
    invariance: Tensor
    equivariance: Tensor | None
    self_consistency: Tensor
    collapsed: list[int]
    collapse_threshold: float
    mmd_hybrid: float
    adjacency: Tensor | None
    edge_density: float | None
    gate_confidence: float | None
    gate_movement: GateMovement | None
    mean_invariance: float
    mean_equivariance: float | None
    mean_self_consistency: float
    n_samples: int
    n_interventions: int
    mmd_hybrid_multiscale: float = math.nan
    adjacency_density: float | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.invariance.shape[0])

    @property
    def active(self) -> list[int]:
        """The dimensions not in :attr:`collapsed` (the model's active units)."""
        dead = set(self.collapsed)
        return [i for i in range(self.n) if i not in dead]

    @property
    def mean_self_consistency_active(self) -> float:
        """Mean self-consistency over the :attr:`active` dimensions only (NaN when every
        dimension is collapsed).

        A collapsed dimension scores at most 0 by construction (the response ignores it, so
        :math:`R(N)_i` does not follow :math:`N_i`), and one of them can move the mean by more
        than any difference between two models' active dimensions; read the two means
        together with :attr:`collapsed`.
        """
        active = self.active
        if not active:
            return math.nan
        return float(self.self_consistency[active].nanmean())

    @property
    def graph_undecided(self) -> bool:
        """Whether the XBlock's gates are too close to 0.5 for a graph to mean anything (< 0.5)."""
        return self.gate_confidence is not None and self.gate_confidence < 0.5

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (tensors as nested lists, NaN as ``None``)."""

        def clean(v: Any) -> Any:
            if isinstance(v, Tensor):
                return clean(v.detach().cpu().double().tolist())
            if isinstance(v, float):
                return None if math.isnan(v) else v
            if isinstance(v, tuple) and hasattr(v, "_asdict"):  # NamedTuples as dicts
                return clean(dict(v._asdict()))
            if isinstance(v, list):
                return [clean(x) for x in v]
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            return v

        return {k: clean(v) for k, v in asdict(self).items()}

    def save(self, directory: str | Path) -> Path:
        """Write ``report.json`` and ``report.txt`` to ``directory`` (created if needed); the
        heatmaps are :func:`consistency.plots.save_report_figures`'s job."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(json.dumps(self.to_dict(), indent=2))
        (out / "report.txt").write_text(str(self) + "\n")
        return out

    def __str__(self) -> str:
        lines = [
            f"ConsistencyReport(mode={self.mode!r}, convention={self.convention!r}, n={self.n}, "
            f"samples={self.n_samples}, interventions/dim={self.n_interventions})",
            f"  mean off-diagonal invariance : {_fmt(self.mean_invariance)}",
        ]
        if self.mean_equivariance is not None:
            lines.append(f"  mean equivariance            : {_fmt(self.mean_equivariance)}")
        active = (
            f" ({_fmt(self.mean_self_consistency_active)} over the {len(self.active)} active "
            "dims: collapsed dims score <= 0)"
            if self.collapsed
            else ""
        )
        lines += [
            f"  mean self-consistency        : {_fmt(self.mean_self_consistency)}{active}",
            "  self-consistency per dim     : "
            + " ".join(_fmt(float(v)) for v in self.self_consistency),
            f"  collapsed dims (diag INV > {self.collapse_threshold}): {self.collapsed or 'none'}",
            f"  noise independence MMD^2     : {self.mmd_hybrid:.4g} (7 scales: "
            f"{self.mmd_hybrid_multiscale:.4g})",
        ]
        if self.edge_density is not None:
            note = (
                " (UNDECIDED: gates near 0.5, the graph is noise)" if self.graph_undecided else ""
            )
            lines.append(
                f"  XBlock edge density          : {self.edge_density:.2f} of allowed edges"
                + (
                    ""
                    if self.adjacency_density is None
                    else f" ({self.adjacency_density:.2f} of n²)"
                )
                + f", gate confidence {self.gate_confidence:.2f}{note}"
            )
            if self.gate_movement is not None:
                moved = self.gate_movement
                lines.append(
                    f"  gate logits since init       : moved {moved.mean_shift:.3f} on average "
                    f"(max {moved.max_shift:.3f}); {moved.flipped} of {moved.possible} edge "
                    "decisions changed"
                )
        lines += _matrix_str("invariance", self.invariance)
        if self.equivariance is not None:
            lines += _matrix_str("equivariance", self.equivariance)
        return "\n".join(lines)


@dataclass
class SelfConsistencyTable:
    """Self-consistency under several sampling modes: the paper's Table 2 row for one model.

    Attributes:
        modes: the sampling modes, one per row.
        values: ``(len(modes), n)`` SCN per mode and dimension.
    """

    modes: tuple[str, ...]
    values: Tensor

    def means(self) -> dict[str, float]:
        """Mean self-consistency per mode."""
        return {m: float(v.nanmean()) for m, v in zip(self.modes, self.values)}

    def __str__(self) -> str:
        return "\n".join(f"{m:>9s}: {_fmt(v)}" for m, v in self.means().items())
