"""Ablation of the training recipe: which change makes consistency training work, one at a time.

Two directions, each over several seeds, on real MNIST with the S preset:

* **add one**: the recipe as it first landed (the paper's architecture, the authors' gate
  initialisation and τ schedule, PyTorch's default XBlock init, raw-unit loss, intervention
  values from the ring buffer, BatchNorm statistics updated by generated images) plus exactly
  one change of the working recipe;
* **drop one**: the working recipe (``consistency.models.Recipe()`` with τ annealed over the
  run) minus exactly one change.

Each row trains XCAE-I (and AE where the change touches the plain model too) and reports test
reconstruction error, mean off-diagonal invariance and self-consistency under posterior /
hybrid / uniform sampling (the ``spec`` convention), mean ± std over seeds. Writes
``benchmarks/results/ablation.md`` and ``.json`` (rows also stream to ``.jsonl``: rerunning
resumes).

    python benchmarks/ablate_recipe.py [--steps 600] [--seeds 11 13 17] [--jobs 2]
        [--rows working drop] [--changes core|all]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from _runs import (
    MODES,
    RunSpec,
    add_budget_arguments,
    fmt_mean_std,
    get,
    progress_line,
    run_all,
)

RESULTS = Path(__file__).resolve().parent / "results"

# the recipe as it landed: the paper's architecture, the authors' gate init and τ schedule,
# PyTorch's init in the XBlock, raw-unit loss with gradients through both responses, values
# from the ring buffer, BatchNorm statistics moved by generated images
LANDED: dict[str, Any] = {
    "recipe": {
        "faithful": True,
        "xblock_init": "pytorch",
        "stop_reference": False,
        "normalise": None,
        "intervention_values": "sampler",
        "batchnorm": "update",
    },
    "tau": "authors",
}
WORKING: dict[str, Any] = {"recipe": {}, "tau": "anneal"}

# name -> (change applied to LANDED, change applied to WORKING to undo it, touches plain AE)
CHANGES: dict[str, tuple[dict[str, Any], dict[str, Any], bool]] = {
    "output block conv→sigmoid (no BN)": (
        {"output_block": "conv"},
        {"output_block": "paper"},
        True,
    ),
    "encoder head linear (no final Mish)": (
        {"encoder_out_activation": False},
        {"encoder_out_activation": True},
        True,
    ),
    "XBlock Xavier init": ({"xblock_init": "xavier"}, {"xblock_init": "pytorch"}, False),
    "XBlock residual units (starts as identity)": (
        {"xblock_residual": True},
        {"xblock_residual": False},
        False,
    ),
    "gate logits start at 0": ({"gate_init_std": 0.0}, {"gate_init_std": 1.0}, False),
    "no Mish on XBlock output": (
        {"xblock_out_activation": False},
        {"xblock_out_activation": True},
        False,
    ),
    "τ annealed over the run (1→0.2)": ({"tau": "anneal"}, {"tau": "authors"}, False),
    "loss normalised by prior variances": ({"normalise": "noise"}, {"normalise": None}, False),
    "R(N) a fixed target (stop-gradient)": (
        {"stop_reference": True},
        {"stop_reference": False},
        False,
    ),
    "intervention values from the batch": (
        {"intervention_values": "batch"},
        {"intervention_values": "sampler"},
        False,
    ),
    "consistency passes use BatchNorm's running statistics (eval mode)": (
        {"batchnorm": "running"},
        {"batchnorm": "update"},
        False,
    ),
    "hybrid prior samples (made from the batch)": (
        {"sampling": "hybrid"},
        {"sampling": "posterior"},
        False,
    ),
    "the prior's own coordinates as the invariance reference": (
        {"reference": "noise"},
        {"reference": "response"},
        False,
    ),
}

# the rows run by default (--changes core): the consistency loss's side of the recipe, which
# decides whether XC training beats the plain model; the architecture changes (output block,
# encoder head, XBlock init / residual units, gates, τ) also change the plain AE and have
# single-seed measurements in docs/method.md (--changes all runs them too)
CORE = (
    "loss normalised by prior variances",
    "R(N) a fixed target (stop-gradient)",
    "consistency passes use BatchNorm's running statistics (eval mode)",
    "hybrid prior samples (made from the batch)",
    "the prior's own coordinates as the invariance reference",
)


# alternatives that were tried and rejected, each measured against the working recipe
ALTERNATIVES: dict[str, dict[str, Any]] = {
    "working, BatchNorm batch statistics (running ones untouched) in consistency passes": {
        "batchnorm": "batch"
    },
    "working, loss normalised by the response's variance": {"normalise": "response"},
}


def apply(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    recipe = dict(base["recipe"])
    tau = base["tau"]
    for k, v in change.items():
        if k == "tau":
            tau = v
        else:
            recipe[k] = v
    return {"recipe": recipe, "tau": tau}


def configs(which: list[str], changes: str) -> list[tuple[str, dict[str, Any], bool]]:
    """(row name, setting, also train AE) for the row groups asked for."""
    chosen = {n: c for n, c in CHANGES.items() if changes == "all" or n in CORE}
    rows: list[tuple[str, dict[str, Any], bool]] = []
    if "landed" in which:
        rows.append(("landed", LANDED, True))
    if "working" in which:
        rows.append(("working", WORKING, True))
    if "add" in which:
        rows += [(f"landed + {n}", apply(LANDED, a), ae) for n, (a, _, ae) in chosen.items()]
    if "drop" in which:
        rows += [(f"working − {n}", apply(WORKING, d), ae) for n, (_, d, ae) in chosen.items()]
    if "alternatives" in which:
        rows += [(n, apply(WORKING, c), False) for n, c in ALTERNATIVES.items()]
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_budget_arguments(
        parser, steps=600, seeds=[11, 13, 17], eval_data=2000, eval_interventions=5
    )
    groups = ["landed", "working", "add", "drop", "alternatives"]
    parser.add_argument(
        "--rows",
        nargs="+",
        default=groups,
        choices=groups,
        help="row groups: the two base recipes, add-one, drop-one, rejected alternatives",
    )
    parser.add_argument(
        "--changes",
        default="core",
        choices=["core", "all"],
        help="which changes get add-one / drop-one rows (core: the ones that decide the outcome)",
    )
    parser.add_argument("--name", default="ablation", help="results file stem")
    args = parser.parse_args(argv)

    specs: list[RunSpec] = []
    table: list[tuple[str, bool]] = []
    for name, setting, with_ae in configs(args.rows, args.changes):
        table.append((name, with_ae))
        variants = ["plain", "XC-I"] if with_ae else ["XC-I"]
        for seed in args.seeds:
            for variant in variants:
                specs.append(
                    RunSpec(
                        "AE",
                        variant,
                        seed,
                        args.steps,
                        batch_size=args.batch_size,
                        lr=args.lr,
                        recipe=setting["recipe"],
                        tau_schedule=setting["tau"],
                        eval_data=args.eval_data,
                        eval_samples=args.eval_samples,
                        eval_interventions=args.eval_interventions,
                        grad_clip=args.grad_clip,
                        config=name,
                        conventions=("spec",),
                    )
                )
    rows = run_all(specs, RESULTS / f"{args.name}.jsonl", jobs=args.jobs, on_row=progress_line)
    command = "python benchmarks/ablate_recipe.py " + " ".join(argv or sys.argv[1:])
    lines = [
        f"# Recipe ablation ({args.steps} steps, batch {args.batch_size}, lr {args.lr}, "
        f"seeds {' '.join(map(str, args.seeds))})",
        "",
        f"Made by `{command.strip()}`: real MNIST, preset S, CPU, one thread per run; "
        f"evaluation on {args.eval_data} test images, {args.eval_samples} prior samples × "
        f"{args.eval_interventions} interventions per dimension, `spec` convention. "
        "Mean ± std over seeds.",
        "",
        "| recipe | model | reconstruction | mean INV (off-diag) | SCN posterior | SCN hybrid | SCN uniform | edge density | logit movement |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, with_ae in table:
        for model in ["AE", "XCAE-I"] if with_ae else ["XCAE-I"]:
            sel = [r for r in rows if r["config"] == name and r["model"] == model]
            cells = [
                fmt_mean_std([r["test_reconstruction"] for r in sel], 2),
                fmt_mean_std([get(r, "spec.mean_invariance") for r in sel]),
                *(fmt_mean_std([get(r, f"spec.self_consistency.{m}") for r in sel]) for m in MODES),
                fmt_mean_std([get(r, "edge_density") for r in sel], 2),
                fmt_mean_std([get(r, "logit_movement") for r in sel], 3),
            ]
            lines.append(f"| {name} | {model} | " + " | ".join(cells) + " |")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    (RESULTS / f"{args.name}.json").write_text(
        json.dumps({"command": command.strip(), "runs": rows}, indent=1)
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
