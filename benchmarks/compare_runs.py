"""Evaluate finished training runs side by side (both score conventions), from their checkpoints.

    python benchmarks/compare_runs.py RUN_DIR [RUN_DIR ...] [--dataset mnist] [--data-root DIR]

Each RUN_DIR is an ``--out`` folder of ``examples/mnist_xcae.py`` (it holds ``checkpoint.pt``).
Prints test reconstruction error, mean off-diagonal invariance, mean equivariance and the
self-consistency row under the three sampling modes, in the library's convention and in the
authors' (the paper's computation, docs/method.md), all measured with ``ConsistencyEvaluator``
on the same test data and the same seed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from consistency import ConsistencyMetric
from consistency.data import SceneDataset, mnist
from consistency.models import build_model
from consistency.train import load_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--dataset", default="mnist", choices=["mnist", "scene"])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    test = (
        mnist(args.data_root, "test").images
        if args.dataset == "mnist"
        else SceneDataset(10_000, seed=1).images
    )
    rows = {}
    for run in args.runs:
        ckpt = load_checkpoint(Path(run) / "checkpoint.pt", map_location="cpu")
        cfg = ckpt["config"]
        state = ckpt["model"]
        spec = (
            ckpt.get("model_spec") or json.loads((Path(run) / "report.json").read_text())["extras"]
        )
        model = build_model(spec["family"], spec["preset"], spec["variant"])
        model.load_state_dict(state)
        row = {"steps": float(ckpt["step"])}
        for convention in ("spec", "authors"):
            authors = convention == "authors"  # their sample counts on their pool of 128 codes
            metric = ConsistencyMetric(
                model,
                n=model.n,
                capacity=len(test),
                n_samples=None if authors else args.samples,
                n_interventions=None if authors else 10,
                pool_size=128 if authors else None,
                convention=convention,
                seed=args.seed,
            )
            for x in test.split(500):
                metric.update(x)
            row["test reconstruction"] = metric.reconstruction()[0]
            ev = metric.evaluator()
            report = ev.evaluate("posterior")
            row[f"mean off-diag INV ({convention})"] = report.mean_invariance
            if report.mean_equivariance is not None:
                row[f"mean EQV ({convention})"] = report.mean_equivariance
            for mode, value in ev.self_consistency_table().means().items():
                row[f"SCN {mode} ({convention})"] = value
        rows[Path(run).name] = row
        print(f"{run}: seed {cfg['seed']}, {ckpt['step']} steps")
    keys = list(dict.fromkeys(k for r in rows.values() for k in r))
    names = list(rows)
    print("| metric | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for k in keys:
        print(
            f"| {k} | "
            + " | ".join("—" if k not in rows[n] else f"{rows[n][k]:.3f}" for n in names)
            + " |"
        )


if __name__ == "__main__":
    main()
