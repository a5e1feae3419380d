"""Where a retrofit's training step spends its time, and the floor of the method's own cost.

The retrofit of ``benchmarks/defaults_retrofit.py`` (a user's conv AE with BatchNorm,
``convbn``, and a fully connected AE, ``mlp``) at ``--batch``, every entry timed against the
plain twin in the same process, alternating in rounds (``defaults_retrofit.round_seconds``;
the ratio is the median over rounds of the entry's time over the twin's in the same round):

* ``xblock``: the retrofit model (``model.latent = XBlock(n)``) trained on its reconstruction
  alone: what the block costs in the main pass and the optimiser;
* ``hand_written``: the retrofit with the default consistency term written out in plain torch
  in this file (16 hybrid rows of the batch's detached means, one coordinate of each set to a
  value from the batch, through the generator and the encoder with the BatchNorm layers
  normalising with the real batch's statistics, gradient included, the squared change of the
  other coordinates over the prior rows' variances, weight 4): the same estimator as
  ``InvarianceLoss(model)`` (checked on one draw), without any of the library's classes but the
  BatchNorm context (:class:`consistency.module_state.DataStatistics`);
* ``hand_written_constant_statistics``: the same with the real batch's statistics as constants
  (``DataStatistics(gradient=False)``): what their gradient costs;
* ``hand_written_no_generator_gradient``: the generated images detached (the generator's pass
  under ``no_grad``): what the backward through the generator costs (the term then trains the
  encoder only: a cost probe, not a recipe);
* ``library``: ``InvarianceLoss(model)``, the default;
* ``library_every2``: ``InvarianceLoss(model, every=2)``.

With ``--compile`` a second timing compares, in one process, the eager plain step with the
plain and the default retrofit's objective (forward and loss) under ``torch.compile``
(inductor; compile time left out).

    python benchmarks/step_cost_floor.py                   # both archs, batch 128
    python benchmarks/step_cost_floor.py --archs convbn --rounds 10

Each timing is appended to ``results/step_cost_floor.jsonl``; the table of the latest timing
per architecture goes to ``results/step_cost_floor.md``. Run it alone: other work on the cores
moves the numbers.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _runs import read_rows
from defaults_retrofit import (
    ARCHS,
    LATENTS,
    paired_ratio,
    round_seconds,
    step_times,
    timing_fields,
    twins,
)

RESULTS = Path(__file__).resolve().parent / "results"
ROWS, WEIGHT = 16, 4.0  # the defaults of InvarianceLoss (checked in check_same_estimator)
ENTRIES = (
    "xblock",
    "hand_written",
    "hand_written_constant_statistics",
    "hand_written_no_generator_gradient",
    "library",
    "library_every2",
)


def intervened(prior: Tensor, dims: Tensor, values: Tensor) -> Tensor:
    """``prior`` with coordinate ``dims[k]`` of row ``k`` set to ``values[k]``."""
    out = prior.clone()
    out[torch.arange(prior.shape[0], device=prior.device), dims] = values
    return out


def penalty(
    model: nn.Module,
    prior: Tensor,
    dims: Tensor,
    values: Tensor,
    *,
    generator_gradient: bool = True,
) -> Tensor:
    """The invariance term on given prior rows, intervened coordinates and values, in plain
    torch: ``mean_k (1/n) sum_{i != m_k} (R(N~_k)_i - N_k,i)^2 / var_i(N)``;
    ``generator_gradient=False`` runs the generator under ``no_grad``."""
    rows, n = prior.shape
    with torch.set_grad_enabled(torch.is_grad_enabled() and generator_gradient):
        images = model.decoder(model.latent(intervened(prior, dims, values)))
    change = (model.encoder(images) - prior).square() / prior.var(0, unbiased=False)
    off = torch.ones_like(change)
    off[torch.arange(rows, device=prior.device), dims] = 0
    return WEIGHT * (change * off).sum(1).mean() / n


def hand_written(
    model: nn.Module, *, gradient: bool = True, generator_gradient: bool = True
) -> Callable[[Tensor], Tensor]:
    """The default consistency term as a closure ``means -> loss`` (see the module's doc)."""
    from consistency.module_state import DataStatistics

    stats = DataStatistics(model, gradient=gradient)

    def term(means: Tensor) -> Tensor:
        z = means.detach()
        batch, n = z.shape
        prior = z.gather(0, torch.randint(batch, (ROWS, n), device=z.device))  # hybrid rows
        dims = torch.randint(n, (ROWS,), device=z.device)
        values = z[torch.randint(batch, (ROWS,), device=z.device), dims]
        with stats.applied():
            return penalty(model, prior, dims, values, generator_gradient=generator_gradient)

    return term


def check_same_estimator(arch: str) -> None:
    """Raise unless the hand-written term equals ``InvarianceLoss(model)`` given the same prior
    rows, dimensions and values (eval mode: no gate noise, no batch statistics)."""
    from consistency import InvarianceLoss, XBlock
    from consistency.intervention import Interventions

    torch.manual_seed(0)
    model = ARCHS[arch](LATENTS[arch])
    model.latent = XBlock(LATENTS[arch])
    model.eval()
    loss = InvarianceLoss(model, batchnorm="running")
    if (loss.n_samples, loss.weight) != (ROWS, WEIGHT):
        raise RuntimeError(
            f"the defaults moved: n_samples={loss.n_samples}, weight={loss.weight}; "
            f"this benchmark writes {ROWS}, {WEIGHT}"
        )
    with torch.no_grad():
        z = model.encoder(torch.rand(64, 1, 28, 28))
        prior = z[:ROWS]
        dims = torch.randint(z.shape[1], (ROWS,))
        values = z[torch.arange(ROWS) + ROWS, dims]
        ours = penalty(model, prior, dims, values)
        noise = intervened(prior, dims, values)
        iv = Interventions(noise=noise, source=torch.arange(ROWS), dims=dims, values=values)
        loss._interventions = lambda *_: iv  # type: ignore[method-assign]
        theirs = loss.weight * loss._compute(prior, z, None)
    if not torch.allclose(ours, theirs, rtol=1e-5, atol=1e-7):
        raise RuntimeError(f"hand-written term {float(ours)} != InvarianceLoss {float(theirs)}")


def factories(arch: str) -> dict[str, Callable[[nn.Module], Any] | None]:
    """The twin (``None``) and one loss factory per entry (BatchNorm entries only for convbn)."""
    from consistency import InvarianceLoss

    made: dict[str, Callable[[nn.Module], Any] | None] = {
        "plain": None,
        "xblock": lambda m: lambda means: means.new_zeros(()),
        "hand_written": hand_written,
        "hand_written_constant_statistics": functools.partial(hand_written, gradient=False),
        "hand_written_no_generator_gradient": functools.partial(
            hand_written, generator_gradient=False
        ),
        "library": InvarianceLoss,
        "library_every2": functools.partial(InvarianceLoss, every=2),
    }
    if arch != "convbn":  # no BatchNorm: the statistics entry is the hand-written one
        del made["hand_written_constant_statistics"]
    return made


def measure(arch: str, batch: int, steps: int, rounds: int) -> dict[str, Any]:
    """One timing row of ``arch`` at ``batch``: ms and paired ratios of every entry."""
    check_same_estimator(arch)
    # an even warm-up: the lazy loss starts each round on a computed step
    times = step_times(arch, batch, steps, rounds, factories(arch), warmup=4)
    return {
        **timing_fields(arch, batch, rounds, times),
        "steps": steps,
        "ratio": {k: paired_ratio(times, k, "plain") for k in times if k != "plain"},
        "library_over_hand_written": paired_ratio(times, "library", "hand_written"),
    }


def compiled_times(arch: str, batch: int, steps: int, rounds: int) -> dict[str, Any]:
    """The eager plain step against the plain and the retrofit's objective compiled."""
    from consistency import InvarianceLoss

    x = torch.rand(batch, 1, 28, 28)
    plain, retrofit = twins(arch, 0)

    def objective(model: nn.Module, term: Any) -> Callable[[Tensor], Tensor]:
        def loss(x: Tensor) -> Tensor:
            means = model.encoder(x)
            out = (model.decoder(model.latent(means)) - x).square().sum((1, 2, 3)).mean()
            return out if term is None else out + term(means)

        return loss

    eager_plain = copy.deepcopy(plain)
    made = {
        "eager_plain": (eager_plain, objective(eager_plain, None)),
        "compiled_plain": (plain, torch.compile(objective(plain, None))),
        "compiled_library": (
            retrofit,
            torch.compile(objective(retrofit, InvarianceLoss(retrofit))),
        ),
    }

    def step(name: str) -> None:
        _, loss = made[name]
        opt = opts[name]
        value = loss(x)
        opt.zero_grad()
        value.backward()
        opt.step()

    opts = {k: torch.optim.Adam(m.parameters(), lr=1e-3) for k, (m, _) in made.items()}
    times = round_seconds({k: functools.partial(step, k) for k in made}, steps, rounds, warmup=4)
    return {
        "ms": {k: 1e3 * statistics.median(v) for k, v in times.items()},
        "ratio": {k: paired_ratio(times, k, "eager_plain") for k in times if k != "eager_plain"},
        "library_over_compiled_plain": paired_ratio(times, "compiled_library", "compiled_plain"),
    }


def table(rows: list[dict[str, Any]]) -> str:
    """The Markdown table of the latest timing of each architecture."""
    latest = {row["arch"]: row for row in rows}
    lines = [
        "# Where a retrofit's step spends its time",
        "",
        "`python benchmarks/step_cost_floor.py --compile` (the last table needs `--compile`)",
        "",
        "Each entry against the plain twin in the same process (alternating rounds; ms are "
        "medians over rounds, the ratio the median over rounds of the entry's time over the "
        "twin's in the same round, quartiles in brackets). `hand_written` is the default "
        "consistency term in plain torch (the same estimator as `InvarianceLoss(model)`, "
        "checked on one draw), the floor of what the method itself costs.",
        "",
        "| arch | batch | threads | entry | ms | × plain step |",
        "|---|---|---|---|---|---|",
    ]
    for arch, row in latest.items():
        head = f"| {arch} | {row['batch']} | {row['threads']} |"
        lines.append(f"{head} plain twin | {row['ms']['plain']:.1f} | 1 |")
        for entry in ENTRIES:
            r = row["ratio"].get(entry)
            if r is None:
                continue
            lines.append(
                f"{head} {entry} | {row['ms'][entry]:.1f} | "
                f"{r['median']:.2f} ({r['q1']:.2f}–{r['q3']:.2f}) |"
            )
    lines += ["", "The library's step over the hand-written one's, paired in the same rounds:", ""]
    for arch, row in latest.items():
        r = row.get("library_over_hand_written")
        if r is not None:
            lines.append(f"- {arch}: {r['median']:.3f} ({r['q1']:.3f}–{r['q3']:.3f})")
    compiled = {arch: row["compiled"] for arch, row in latest.items() if "compiled" in row}
    if compiled:
        lines += ["", "Under `torch.compile` (`--compile`; against the eager plain step of the "
                  "same rounds):", "", "| arch | eager plain ms | compiled plain | compiled "
                  "retrofit | retrofit / plain, both compiled |", "|---|---|---|---|---|"]  # fmt: skip
        for arch, c in compiled.items():
            cells = [
                f"{c['ms'][k]:.1f} ms ({c['ratio'][k]['median']:.2f}×)"
                for k in ("compiled_plain", "compiled_library")
            ]
            r = c["library_over_compiled_plain"]
            lines.append(
                f"| {arch} | {c['ms']['eager_plain']:.1f} | {cells[0]} | {cells[1]} | "
                f"{r['median']:.2f} ({r['q1']:.2f}–{r['q3']:.2f}) |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--archs", nargs="+", default=list(ARCHS), choices=list(ARCHS))
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10, help="steps per entry per round")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument(
        "--compile", action="store_true", help="also time the steps under torch.compile"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "step_cost_floor.jsonl")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for arch in args.archs:
        row = measure(arch, args.batch, args.steps, args.rounds)
        if args.compile:
            row["compiled"] = compiled_times(arch, args.batch, args.steps, args.rounds)
        with args.out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"{arch}: " + ", ".join(f"{k} {v['median']:.2f}x" for k, v in row["ratio"].items()))
    rows = [r for r in read_rows(args.out).values() if r.get("kind") == "timing"]
    args.out.with_suffix(".md").write_text(table(rows))


if __name__ == "__main__":
    main()
