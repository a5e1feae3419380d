"""Which warm-up lets the consistency loss help a VAE: one change at a time, several seeds.

The β-VAE's posterior collapse (``ablate_vae_collapse.py``) was cured by a KL warm-up (the KL
weight ramps 0 → 1 over 300 of 1000 steps, ``TrainConfig.kl_warmup_steps``). The same warm-up
applied to the AVAE family pushed XCAVAE-I below the plain AVAE (spec hybrid SCN 0.650 / 0.632
against 0.817 / 0.891, seeds 11 and 13), where without it XCAVAE-I is above. The AVAE's loss is
reconstruction + β·KL + β·(Cemgil et al.'s consistency term) (+ the invariance loss for XC-I);
the warm-up ramped the KL alone, so for 300 steps the AVAE term and the invariance loss ran
against a weak KL. One change at a time, the plain model and its XC-I twin on the same seeds:

* ``none``: no warm-up (config ``default`` of ``mnist_paper.jsonl``);
* ``kl``: the KL ramped (config ``default-klwarm``);
* ``kl+avae`` (AVAE only): the KL and the AVAE term ramped together (config
  ``default-betawarm``);
* ``kl, loss ramped`` (XC-I only; the plain model has no such loss, its row is the ``kl``
  one): the KL ramped and the invariance loss's weight ramped over the same steps
  (``TrainConfig.warmup_steps``; config ``default-klwarm-cwarm``).

Each run is ``reproduce_mnist.py``'s (preset S, real MNIST, 1000 steps × 64, Adam 1e-3, spec
scores on 5000 test means), so the rows go to ``results/mnist_paper.jsonl`` and the runs
already there are reused. ``_runs`` passes ``warmup_steps`` explicitly (0 unless the recipe
dict names it), so the ``kl`` rows ramp the KL alone; the library ramps the β-VAE's KL only,
and the worker here ramps the AVAE's for the ``kl`` conditions.

    python benchmarks/ablate_kl_warmup.py [--family AVAE] [--seeds 11 13 17] [--report-only]

The table goes to ``results/kl_warmup_<family>.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _runs import (
    LABELS,
    RunSpec,
    _done,
    command_line,
    fmt_mean_std,
    get,
    progress_line,
    run,
    run_all,
)

RESULTS = Path(__file__).resolve().parent / "results"
WARMUP = 300
# (condition, config name, recipe dict, variants it trains, families)
CONDITIONS: tuple[tuple[str, str, dict[str, Any], tuple[str, ...], tuple[str, ...]], ...] = (
    ("none", "default", {}, ("plain", "XC-I"), ("VAE", "AVAE")),
    ("kl", "default-klwarm", {"kl_warmup_steps": WARMUP}, ("plain", "XC-I"), ("VAE", "AVAE")),
    (
        "kl+avae",
        "default-betawarm",
        {"kl_warmup_steps": WARMUP, "avae_term_warmup": True},
        ("plain", "XC-I"),
        ("AVAE",),
    ),
    (
        "kl, loss ramped",
        "default-klwarm-cwarm",
        {"kl_warmup_steps": WARMUP, "warmup_steps": WARMUP},
        ("XC-I",),
        ("VAE", "AVAE"),
    ),
)
METRICS = (
    ("SCN post.", "spec.self_consistency.posterior"),
    ("SCN hybrid", "spec.self_consistency.hybrid"),
    ("SCN unif.", "spec.self_consistency.uniform"),
    ("INV", "spec.mean_invariance"),
    ("recon", "test_reconstruction"),
)


def worker(spec: RunSpec, out_root: str | None) -> dict[str, Any]:
    """``_runs.run`` with what the library does not ramp: the AVAE's KL (``train`` ramps the
    β-VAE's only) and, for ``kl+avae``, the AVAE's own term with it. A pool's worker process
    runs many specs, so the patches are undone before returning: an earlier version left them
    in place, and the runs after it in the same process trained with them (those rows were
    dropped and re-run)."""
    import consistency.train as train_module
    from consistency.models import PaperModel

    recipe = dict(spec.recipe)
    term_too = bool(recipe.pop("avae_term_warmup", False))
    library_schedules, avae_term = train_module._apply_schedules, PaperModel._avae_term
    if spec.family == "AVAE" and recipe.get("kl_warmup_steps"):

        def schedules(model: Any, step: int, config: Any) -> None:
            library_schedules(model, step, config)
            model.kl_scale = min(1.0, step / config.kl_warmup_steps)

        train_module._apply_schedules = schedules  # type: ignore[assignment]
        if term_too:

            def ramped(self: PaperModel, *args: Any) -> Any:
                return self.kl_scale * avae_term(self, *args)

            PaperModel._avae_term = ramped  # type: ignore[method-assign]
    try:
        return run(dataclasses.replace(spec, recipe=recipe), out_root)
    finally:
        train_module._apply_schedules = library_schedules  # type: ignore[assignment]
        PaperModel._avae_term = avae_term  # type: ignore[method-assign]


def specs(family: str, seeds: list[int]) -> list[tuple[str, RunSpec]]:
    out = []
    for seed in seeds:
        for condition, config, recipe, variants, families in CONDITIONS:
            if family not in families:
                continue
            for variant in variants:
                spec = RunSpec(
                    family, variant, seed, 1000, eval_data=5000, eval_samples=500, eval_interventions=5,
                    config=config, recipe=recipe,
                )  # fmt: skip
                out.append((condition, spec))
    return out


def table(
    rows: dict[tuple[str, str, int], dict[str, Any]], family: str, seeds: list[int]
) -> list[str]:
    plain_model, xc_model = LABELS[(family, "plain")], LABELS[(family, "XC-I")]
    lines = [
        "| condition | model | " + " | ".join(m for m, _ in METRICS) + " | collapsed | seeds |",
        "|---|---|" + "---|" * (len(METRICS) + 2),
    ]
    for condition, *_ in CONDITIONS:
        for model in (plain_model, xc_model):
            found = [rows[(condition, model, s)] for s in seeds if (condition, model, s) in rows]
            if not found:
                continue
            collapsed = sum(bool(r["spec"]["collapsed"]) for r in found)
            lines.append(
                f"| {condition} | {model} | "
                + " | ".join(fmt_mean_std(get(r, path) for r in found) for _, path in METRICS)
                + f" | {collapsed}/{len(found)} | {len(found)} |"
            )
    lines += [
        "",
        f"Per seed, spec hybrid SCN, {xc_model} − {plain_model} (the plain row of the same "
        "warm-up):",
        "",
    ]
    for condition, *_ in CONDITIONS:
        plain_condition = "kl" if condition == "kl, loss ramped" else condition
        diffs = []
        for s in seeds:
            xc, plain = (
                rows.get((condition, xc_model, s)),
                rows.get((plain_condition, plain_model, s)),
            )
            if xc is None or plain is None:
                continue
            d = get(xc, "spec.self_consistency.hybrid") - get(  # type: ignore[operator]
                plain, "spec.self_consistency.hybrid"
            )
            diffs.append(f"seed {s} {d:+.3f}")
        if diffs:
            lines.append(f"- {condition}: " + ", ".join(diffs))
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--family", default="AVAE", choices=["VAE", "AVAE"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[11, 13, 17])
    parser.add_argument(
        "--conditions", nargs="+", default=[c[0] for c in CONDITIONS],
        choices=[c[0] for c in CONDITIONS], help="train only these (the table shows every row found)",
    )  # fmt: skip
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--results", default=str(RESULTS / "mnist_paper.jsonl"))
    parser.add_argument("--report-only", action="store_true", help="write the table, train nothing")
    args = parser.parse_args(argv)
    labelled = specs(args.family, args.seeds)
    plain_model, xc_model = LABELS[(args.family, "plain")], LABELS[(args.family, "XC-I")]
    path = Path(args.results)
    if not args.report_only:
        wanted = [s for c, s in labelled if c in args.conditions]
        run_all(wanted, path, jobs=args.jobs, on_row=progress_line, worker=worker)
    done = _done(path)
    keyed = {
        (condition, done[s.key()]["model"], s.seed): done[s.key()]
        for condition, s in labelled
        if s.key() in done
    }
    command = command_line("ablate_kl_warmup.py", argv)
    lines = [
        f"# The {args.family} family and the KL warm-up: one change at a time",
        "",
        f"Made by `{command}`.",
        "",
        f"{plain_model} and {xc_model} (β = 1{', ρ = 0.975' if args.family == 'AVAE' else ''}, "
        "preset S), real MNIST, 1000 steps × 64, Adam 1e-3; "
        f"warm-ups over the first {WARMUP} steps; spec scores on 5000 test means (500 samples × 5 "
        "interventions). Mean ± std over seeds "
        + ", ".join(map(str, args.seeds))
        + "; 'collapsed': runs with a latent whose posterior means barely vary.",
        "",
        *table(keyed, args.family, args.seeds),
    ]
    (RESULTS / f"kl_warmup_{args.family}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
