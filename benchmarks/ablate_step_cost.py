"""What the cheaper consistency step costs in effect: one change at a time, on users' models.

The retrofit of ``benchmarks/defaults_retrofit.py`` (a user's conv AE with BatchNorm, ``convbn``,
and a fully connected AE, ``mlp``; real MNIST; plain twin with the same initial weights and
batches) trained with ``InvarianceLoss(model, **variant)`` for each variant below, every other
choice the library's default; all variants and the twin are re-run by this script with the same
code, so that only the named change differs:

* ``stats_gradient``: the BatchNorm statistics of the real batch carry their gradient into the
  generated pass (``DataStatistics(..., gradient=True)``, the recipe before this ablation);
* ``stats_constant``: the same statistics as constants, solved from the running-statistics
  update (``gradient=False``; no extra pass over the BatchNorm inputs);
* ``every2``: ``stats_constant`` and the loss computed on every second step with twice the
  weight (``every=2``), 16 prior samples per computed step;
* ``every2_rows32``: ``every2`` with 32 prior samples per computed step (the same prior samples
  per step on average as ``stats_constant``);
* ``every2_gradient``, ``every2_rows32_gradient``: the same two with ``stats_gradient``;
* ``every2_weight2``, ``every2_weight3``: ``every2_gradient`` with the weight 2 or 3 instead of
  the default 4 (the computed step's weight is ``every * weight``: 4 or 6, the average weight
  per step 2 or 3), to tell the lazy schedule's cost in reconstruction from the weight's;
* ``weight2``: ``stats_gradient`` at weight 2 on every step (the average weight of
  ``every2_weight2`` without the lazy schedule);
* ``rows8``: ``stats_gradient`` with 8 prior samples per step instead of 16;
* ``raw``, ``raw_every2``: ``stats_gradient`` and ``every2_gradient`` with the loss in raw
  latent units (``normalise=None``) instead of divided by the prior samples' variances;
* ``encoder_only``: ``stats_gradient`` with the generator's pass detached (run under
  ``no_grad``): the term trains the encoder (and the real batch's BatchNorm statistics in it)
  to read the intervened images back, and neither the decoder nor the XBlock; it skips the
  backward through the generator (``benchmarks/step_cost_floor.py`` times it).

The step times of the twin and of every variant are measured at ``--time-batch`` in one
process, alternating, after the runs (``--timing-only`` to measure them alone).

    python benchmarks/ablate_step_cost.py                       # 2 archs x 4 variants x 3 seeds
    python benchmarks/ablate_step_cost.py --archs convbn --variants stats_constant --seeds 0

Rows are appended to ``results/step_cost_ablation.jsonl`` as runs finish (a rerun resumes);
the table goes to ``results/step_cost_ablation.md`` / ``.json``.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import functools
import json
import multiprocessing as mp
import os
import statistics
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _runs import read_rows
from defaults_retrofit import (
    add_run_arguments,
    paired_ratio,
    score,
    step_times,
    timing_fields,
    train_loop,
    twins,
)

RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS: dict[str, dict[str, Any]] = {
    "stats_gradient": {"every": 1, "gradient": True},
    "stats_constant": {"every": 1, "gradient": False},
    "every2": {"every": 2, "gradient": False},
    "every2_rows32": {"every": 2, "n_samples": 32, "gradient": False},
    "every2_gradient": {"every": 2, "gradient": True},
    "every2_rows32_gradient": {"every": 2, "n_samples": 32, "gradient": True},
    "rows8": {"every": 1, "n_samples": 8, "gradient": True},
    "every2_weight2": {"every": 2, "weight": 2.0, "gradient": True},
    "every2_weight3": {"every": 2, "weight": 3.0, "gradient": True},
    "weight2": {"every": 1, "weight": 2.0, "gradient": True},
    "raw": {"every": 1, "normalise": None, "gradient": True},
    "raw_every2": {"every": 2, "normalise": None, "gradient": True},
    "encoder_only": {"every": 1, "gradient": True, "generator_gradient": False},
}
DEFAULT_VARIANTS = ["stats_gradient", "stats_constant", "every2", "every2_rows32"]


def build_loss(model: torch.nn.Module, variant: str) -> Any:
    """``InvarianceLoss(model, **kwargs)`` of the variant, with the loss's BatchNorm statistics
    built with the variant's ``gradient``."""
    from consistency import InvarianceLoss
    from consistency.module_state import DataStatistics

    kwargs = dict(VARIANTS[variant])
    gradient = kwargs.pop("gradient")
    generator_gradient = kwargs.pop("generator_gradient", True)
    loss = InvarianceLoss(model, **kwargs)
    if loss._data_statistics is not None:
        loss.remove_hooks()
        loss._data_statistics = DataStatistics(*loss.model.modules, gradient=gradient)
    if not generator_gradient:  # the loss's own handle (ResponseModel.of builds one per loss)
        generate = loss.model.generate_fn

        def detached(noise: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return generate(noise)

        loss.model.generate_fn = detached
    return loss


def key(job: dict[str, Any]) -> str:
    return f"run/{job['arch']}/{job['seed']}/{job['variant']}/{job['steps']}/{job['batch_size']}"


def run(job: dict[str, Any]) -> dict[str, Any]:
    """Train the twin (``variant="plain"``) or the retrofit with one variant's loss; score it."""
    torch.set_num_threads(1)
    from consistency.data import mnist

    plain, retrofit = twins(job["arch"], job["seed"])
    model = plain if job["variant"] == "plain" else retrofit
    loss = None if job["variant"] == "plain" else build_loss(model, job["variant"])
    seconds = train_loop(
        model,
        loss,
        mnist(job["data_root"], "train").images,
        steps=job["steps"],
        batch_size=job["batch_size"],
        lr=job["lr"],
        seed=job["seed"],
    )
    test = mnist(job["data_root"], "test").images[: job["eval_data"]]
    scores = score(model, test, job["eval_samples"])
    return {"key": key(job), "kind": "run", "job": job, **scores, "train_seconds": seconds}


def time_variants(
    arch: str, variants: list[str], batch: int, steps: int, rounds: int
) -> dict[str, Any]:
    """Median ms of a twin step and of each variant's retrofit step at ``batch``, alternating
    in rounds in one process (random images: the cost does not depend on the data)."""
    losses: dict[str, Any] = {"plain": None}
    losses.update({v: functools.partial(build_loss, variant=v) for v in variants})
    # warm-up: an even count, so that a lazy loss starts each round on a computed step
    times = step_times(arch, batch, steps, rounds, losses, warmup=4)
    ratios = {k: paired_ratio(times, k, "plain") for k in times}
    return {
        **timing_fields(arch, batch, rounds, times),
        "ratio": {k: r["median"] for k, r in ratios.items()},
        "ratio_quartiles": {k: [r["q1"], r["q3"]] for k, r in ratios.items()},
    }


def table(rows: dict[str, dict[str, Any]], args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    lines = [
        "# The consistency step made cheaper: what each change costs in effect and in time",
        "",
        f"`{' '.join(['python', 'benchmarks/ablate_step_cost.py', *sys.argv[1:]])}`",
        "",
        f"Real MNIST, {args.steps} steps × batch {args.batch_size}, Adam {args.lr}; scores on "
        f"{args.eval_data} test images' means ({args.eval_samples} prior samples × 10 "
        "interventions per dimension, `spec` convention). Each retrofit is trained with "
        "`InvarianceLoss(model, **variant)` beside its plain twin (same initial weights, same "
        "batches). Differences are retrofit − twin on the same seed.",
        "",
        "| arch | variant | seeds | Δ mean INV | Δ SCN hybrid | Δ SCN uniform | recon / twin | above twin (INV, hybrid, uniform, recon ≤ 1.1) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    summary: dict[str, Any] = {"command": lines[2], "runs": [], "variants": {}, "timing": {}}
    for arch in args.archs:
        for v in args.variants:
            deltas: dict[str, list[float]] = {"inv": [], "hybrid": [], "uniform": [], "recon": []}
            wins = [0, 0, 0, 0]
            for seed in args.seeds:
                p = rows.get(f"run/{arch}/{seed}/plain/{args.steps}/{args.batch_size}")
                r = rows.get(f"run/{arch}/{seed}/{v}/{args.steps}/{args.batch_size}")
                if p is None or r is None:
                    continue
                d_inv = r["mean_invariance"] - p["mean_invariance"]
                d_h = r["self_consistency"]["hybrid"] - p["self_consistency"]["hybrid"]
                d_u = r["self_consistency"]["uniform"] - p["self_consistency"]["uniform"]
                ratio = r["reconstruction"] / p["reconstruction"]
                for name, val in zip(deltas, (d_inv, d_h, d_u, ratio)):
                    deltas[name].append(val)
                wins[0] += d_inv > 0
                wins[1] += d_h > 0
                wins[2] += d_u > 0
                wins[3] += ratio <= 1.1
                summary["runs"].append({"arch": arch, "seed": seed, "variant": v,
                                        "plain": {k: p[k] for k in ("reconstruction", "mean_invariance", "self_consistency")},
                                        "retrofit": {k: r[k] for k in ("reconstruction", "mean_invariance", "self_consistency")}})  # fmt: skip
            n = len(deltas["inv"])
            if n == 0:
                continue

            def ms(vals: list[float], digits: int) -> str:
                mean = statistics.fmean(vals)
                sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
                return f"{mean:+.{digits}f} ± {sd:.{digits}f}"

            recon = statistics.fmean(deltas["recon"])
            lines.append(
                f"| {arch} | {v} | {n} | {ms(deltas['inv'], 4)} | {ms(deltas['hybrid'], 3)} | "
                f"{ms(deltas['uniform'], 3)} | {recon:.3f} | {wins[0]}/{n}, {wins[1]}/{n}, "
                f"{wins[2]}/{n}, {wins[3]}/{n} |"
            )
            summary["variants"][f"{arch}/{v}"] = {
                "seeds": n,
                "delta": {k: statistics.fmean(x) for k, x in deltas.items() if k != "recon"},
                "reconstruction_ratio": recon,
                "wins": dict(zip(("inv", "hybrid", "uniform", "recon_within_10pct"), wins)),
            }
    lines += [
        "",
        f"Step time at batch {args.time_batch}: {args.rounds} rounds × {args.time_steps} steps, "
        "twin and variants alternating in one process; ms are medians over rounds, the ratio "
        "(with its quartiles, where measured) the median over rounds of the variant's time over "
        "the twin's in the same round:",
        "",
        "| arch | threads | twin ms | " + " | ".join(args.variants) + " |",
        "|---|---|---|" + "---|" * len(args.variants),
    ]
    for arch in args.archs:
        t = rows.get(f"timing/{arch}/{args.time_batch}")
        if t is None:
            continue
        summary["timing"][arch] = t
        quart = t.get("ratio_quartiles", {})
        cells = [
            (
                f"{t['ms'][v]:.1f} ms ({t['ratio'][v]:.2f}×"
                + (f", {quart[v][0]:.2f}–{quart[v][1]:.2f}" if v in quart else "")
                + ")"
            )
            if v in t["ms"]
            else "–"
            for v in args.variants
        ]
        lines.append(
            f"| {arch} | {t['threads']} | {t['ms']['plain']:.1f} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines) + "\n", summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_run_arguments(parser)
    parser.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS, choices=list(VARIANTS))
    parser.add_argument("--timing-only", action="store_true", help="measure the step times (again)")
    parser.add_argument("--no-timing", action="store_true", help="leave the step times for later")
    parser.add_argument("--out", default=str(RESULTS / "step_cost_ablation"))
    args = parser.parse_args(argv)
    out = Path(args.out)
    jsonl = out.with_suffix(".jsonl")
    rows = read_rows(jsonl)
    if not args.timing_only:
        jobs = [
            dict(arch=a, seed=s, variant=v, steps=args.steps, batch_size=args.batch_size,
                 lr=args.lr, eval_data=args.eval_data, eval_samples=args.eval_samples,
                 data_root=args.data_root)
            for a in args.archs for s in args.seeds for v in ("plain", *args.variants)
            if not (a == "mlp" and v == "stats_gradient")  # no BatchNorm: = stats_constant
        ]  # fmt: skip
        todo = [j for j in jobs if key(j) not in rows]
        from tqdm.auto import tqdm

        with cf.ProcessPoolExecutor(args.workers, mp_context=mp.get_context("spawn")) as pool:
            for row in tqdm(pool.map(run, todo), total=len(todo), desc="runs"):
                rows[row["key"]] = row
                with jsonl.open("a") as f:
                    f.write(json.dumps(row) + "\n")
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    for arch in [] if args.no_timing else args.archs:
        k = f"timing/{arch}/{args.time_batch}"
        if k not in rows or args.timing_only:
            variants = [v for v in args.variants if not (arch == "mlp" and v == "stats_gradient")]
            rows[k] = time_variants(arch, variants, args.time_batch, args.time_steps, args.rounds)
            with jsonl.open("a") as f:
                f.write(json.dumps(rows[k]) + "\n")
    text, summary = table(rows, args)
    out.with_suffix(".md").write_text(text)
    out.with_suffix(".json").write_text(json.dumps(summary, indent=1))
    print(text)


if __name__ == "__main__":
    main()
