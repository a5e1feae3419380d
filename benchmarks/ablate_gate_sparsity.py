"""Can the XBlock's gates learn that the shapes' factors are independent (an empty graph)?

XCAE-I on the dSprites-like shapes (5 independent factors, full factorial), trained as
``ground_truth.py`` trains it, for several gate schedules: the weight of the gate sparsity
penalty (:meth:`~consistency.XBlock.gate_penalty`, ``Recipe.gate_sparsity``) and a learning-rate
multiplier for the gate logits (``TrainConfig.gate_lr_scale``); τ keeps the library's anneal
1 → 0.2. Each schedule's runs go through ``ground_truth.py`` into
``results/gate_sparsity/<tag>.jsonl`` (resumable); the baseline is ``ground_truth.jsonl``'s
XCAE-I rows (library defaults: no sparsity, gate rate × 1). Target (issue 24): learned density
(open edges over the 10 allowed) ≤ 0.1 on every seed with INV and SCN within the baseline's
spread over seeds.

    python benchmarks/ablate_gate_sparsity.py [--seeds 0 1 2] [--jobs 1]

The table goes to ``results/gate_sparsity.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ground_truth
from _runs import get as _get

RESULTS = Path(__file__).resolve().parent / "results"
# (tag, gate sparsity weight, gate learning-rate multiplier)
# (tags have no dot: ground_truth.py names its files with Path.with_suffix)
SCHEDULES: tuple[tuple[str, float, float], ...] = (
    ("sparsity0p1", 0.1, 1.0),
    ("sparsity0p1-gatelr10", 0.1, 10.0),
    ("sparsity1-gatelr10", 1.0, 10.0),
)
METRICS = (
    ("edge density", "edge_density"),
    ("INV", "spec.mean_invariance"),
    ("SCN post.", "spec.self_consistency.posterior"),
    ("SCN hybrid", "spec.self_consistency.hybrid"),
    ("SCN unif.", "spec.self_consistency.uniform"),
    ("recon", "test_reconstruction"),
    ("logit shift", "logit_movement"),
)


def _rows(path: Path, seeds: list[int]) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [
        r
        for r in rows
        if r["model"] == "XCAE-I" and r["run"]["dataset"] == "shapes" and r["seed"] in seeds
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    out = RESULTS / "gate_sparsity"
    out.mkdir(parents=True, exist_ok=True)
    seeds = [str(s) for s in args.seeds]
    for tag, weight, scale in SCHEDULES:
        if args.report_only:
            continue
        ground_truth.main(
            ["--datasets", "shapes", "--models", "XCAE-I", "--seeds", *seeds, "--jobs",
             str(args.jobs), "--recipe", f"gate_sparsity={weight}", f"gate_lr_scale={scale}",
             "--results", str(out / tag)]
        )  # fmt: skip
    base = _rows(RESULTS / "ground_truth.jsonl", args.seeds)
    table = [("defaults (no sparsity, gate lr × 1)", base)] + [
        (f"sparsity {w:g}, gate lr × {s:g}", _rows(out / f"{tag}.jsonl", args.seeds))
        for tag, w, s in SCHEDULES
    ]
    lines = [
        "# Gates on independent factors: the shapes, XCAE-I, gate schedules",
        "",
        "`python benchmarks/ablate_gate_sparsity.py "
        + " ".join(argv if argv is not None else sys.argv[1:])
        + "`",
        "",
        "Each schedule trained as `ground_truth.py` trains XCAE-I on the shapes (900 steps × 128, "
        "Adam 1e-3, τ annealed 1 → 0.2); edge density = open edges (gate > 0.5) over the 10 "
        "allowed. Mean ± sd over seeds; per seed in `results/gate_sparsity/*.jsonl`.",
        "",
        "| schedule | seeds | " + " | ".join(m for m, _ in METRICS) + " | density ≤ 0.1 |",
        "|---|---|" + "---|" * len(METRICS) + "---|",
    ]
    spread: dict[str, tuple[float, float]] = {}
    for label, rows in table:
        if not rows:
            continue
        cells = []
        for name, path in METRICS:
            vals = [v for v in (_get(r, path) for r in rows) if v is not None]
            mean = statistics.fmean(vals) if vals else float("nan")
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            if label.startswith("defaults") and vals:
                spread[name] = (min(vals), max(vals))
            cells.append(f"{mean:.3f} ± {sd:.3f}" if vals else "–")
        sparse = sum((_get(r, "edge_density") or 0.0) <= 0.1 for r in rows)
        lines.append(
            f"| {label} | {len(rows)} | " + " | ".join(cells) + f" | {sparse}/{len(rows)} |"
        )
    lines += ["", "Within the defaults' range over seeds (min–max), per schedule:", ""]
    for label, rows in table[1:]:
        if not rows or not spread:
            continue
        verdicts = []
        for name in ("INV", "SCN post.", "SCN hybrid", "SCN unif."):
            path = dict(METRICS)[name]
            lo, hi = spread[name]
            mean = statistics.fmean(v for v in (_get(r, path) for r in rows) if v is not None)
            verdicts.append(
                f"{name} {mean:.3f} {'in' if mean >= lo else 'below'} [{lo:.3f}, {hi:.3f}]"
            )
        lines.append(f"- {label}: " + "; ".join(verdicts))
    (RESULTS / "gate_sparsity.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
