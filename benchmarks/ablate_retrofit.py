"""Ablation on users' models: one change at a time to the retrofit of ``defaults_retrofit.py``.

Each row trains one model of an architecture of ``defaults_retrofit.py`` (``convbn``, ``mlp``)
for one seed with the same init, batches and evaluation as there, in one of the variants

* ``plain``: no XBlock, no loss (the twin);
* ``X``: the XBlock alone; ``C``: the loss alone (no XBlock); ``XC``: both (the retrofit);

and ``key=value`` changes: ``weight``, ``sampling``, ``bn`` (the loss's ``batchnorm``, or
``data_detached``: the real batch's statistics without their gradient),
``rows`` (``n_samples``), ``gate_init`` (the XBlock's initial logit, default 0), ``edges=none`` (gate
logits fixed at -30: no parent reaches a unit), ``gates=mean`` (the XBlock in eval mode during
training: deterministic gates), ``tau``, ``init``, ``residual``.

    python benchmarks/ablate_retrofit.py mlp 0 XC gate_init=0 [--steps 800]

One JSON row per run is appended to ``results/retrofit_ablation.jsonl``. The rows committed
there were measured before 0.2 with a script that spelled the same settings in the old keywords
(``prior="hybrid", reference="prior", n_samples=32`` and ``frozen_batchnorm`` in the loop;
``"api": "pre-0.2"``); the XBlock class then defaulted to non-residual units, which those rows
record as ``residual=0``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from defaults_retrofit import LATENTS, score, train_loop, twins

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("arch", choices=sorted(LATENTS))
    parser.add_argument("seed", type=int)
    parser.add_argument("variant", choices=["plain", "X", "C", "XC"])
    parser.add_argument("changes", nargs="*", help="key=value changes (see above)")
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--eval-data", type=int, default=5000)
    parser.add_argument("--eval-samples", type=int, default=1000)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", default=str(RESULTS / "retrofit_ablation.jsonl"))
    args = parser.parse_args(argv)
    extra = dict(c.split("=", 1) for c in args.changes)
    torch.set_num_threads(1)
    from consistency import InvarianceLoss, XBlock
    from consistency.data import mnist

    plain, _ = twins(args.arch, args.seed)  # the same encoder / decoder init as the benchmark
    model = plain
    n = LATENTS[args.arch]
    if "X" in args.variant:
        block = XBlock(
            n,
            tau=float(extra.get("tau", 0.5)),
            init=extra.get("init", "xavier"),  # type: ignore[arg-type]
            residual=extra.get("residual", "1") == "1",
            logit_init_mean=float(extra.get("gate_init", 0.0)),
        )
        if extra.get("edges") == "none":
            block.gate_logits.data.fill_(-30.0)
            block.gate_logits.requires_grad_(False)
        model.latent = block
        if extra.get("gates") == "mean":
            block.eval()
    loss_fn = None
    if "C" in args.variant:
        kw: dict = {"weight": float(extra.get("weight", 4.0))}
        if "sampling" in extra:
            kw["sampling"] = extra["sampling"]
        if extra.get("bn") == "data_detached":  # the real batch's statistics without gradient
            import consistency.module_state as ms

            normalise = ms._normalise_with
            ms._normalise_with = lambda layer, stats, x: normalise(  # type: ignore[assignment]
                layer, (stats[0].detach(), stats[1].detach()), x
            )
        elif "bn" in extra:
            kw["batchnorm"] = extra["bn"]
        if "rows" in extra:
            kw["n_samples"] = int(extra["rows"])
        loss_fn = InvarianceLoss(model, **kw)
    seconds = train_loop(
        model,
        loss_fn,
        mnist(args.data_root, "train").images,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=1e-3,
        seed=args.seed,
    )
    scores = score(model, mnist(args.data_root, "test").images[: args.eval_data], args.eval_samples)
    row = {
        "arch": args.arch,
        "seed": args.seed,
        "variant": args.variant,
        "extra": extra,
        "steps": args.steps,
        "api": "0.2",
        args.variant: {
            "rec": scores["reconstruction"],
            "inv": scores["mean_invariance"],
            "scn": scores["self_consistency"],
            "train_s": seconds,
        },
    }
    with Path(args.out).open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row))
    return row


if __name__ == "__main__":
    main()
