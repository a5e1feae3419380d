"""Cost of the real batch's BatchNorm statistics that ``batchnorm="data"`` records, by form.

The consistency losses' default normalises the generated passes with each BatchNorm layer's
statistics of the step's real batch, gradient included (``consistency.module_state``). Three
ways to compute a per-channel mean and biased variance with their gradient, forward + backward,
on the BatchNorm inputs of ``benchmarks/defaults_retrofit.py``'s conv AE at batch 128, in one
process, interleaved rounds, medians; ratios against ``Tensor.var``:

* ``Tensor.var``: ``x.mean(dims), x.var(dims, unbiased=False)``;
* composite: ``(x - x.mean(dims, keepdim=True)).square().mean(dims)`` through autograd;
* fused: the library's ``_Moments`` (one saved centred tensor, one fused backward).

    python benchmarks/bench_batchnorm_statistics.py [--rounds 15] [--threads 2]

Writes ``results/batchnorm_statistics.md``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from consistency.module_state import _moments

SHAPES = [
    (128, 32, 14, 14),
    (128, 64, 7, 7),
    (128, 256),
    (128, 256),
    (128, 3136),
    (128, 32, 14, 14),
]
RESULTS = Path(__file__).resolve().parent / "results"


def _var(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    dims = [0, *range(2, x.ndim)]
    return x.mean(dims), x.var(dims, unbiased=False)


def _composite(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    dims = [0, *range(2, x.ndim)]
    mean = x.mean(dims, keepdim=True)
    return mean.flatten(), (x - mean).square().mean(dims)


FORMS: dict[str, Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]] = {
    "Tensor.var": _var,
    "composite": _composite,
    "fused (library)": _moments,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    xs = [torch.randn(s, requires_grad=True) for s in SHAPES]

    def step(form: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]) -> None:
        total = torch.zeros(())
        for x in xs:
            mean, var = form(x)
            total = total + mean.sum() + var.sum()
        total.backward()

    times: dict[str, list[float]] = {k: [] for k in FORMS}
    for form in FORMS.values():
        for _ in range(3):
            step(form)
    for _ in range(args.rounds):
        for name, form in FORMS.items():
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step(form)
            times[name].append((time.perf_counter() - t0) / args.steps)
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["Tensor.var"]
    lines = [
        "# BatchNorm statistics of the real batch, forward + backward, by form",
        "",
        f"`python benchmarks/bench_batchnorm_statistics.py {' '.join(sys.argv[1:] if argv is None else argv)}`".replace(
            " `", "`"
        ),
        "",
        f"The six BatchNorm inputs of the conv AE at batch 128, {args.threads} threads, median "
        f"of {args.rounds} rounds × {args.steps} steps, interleaved, one process.",
        "",
        "| form | ms per step (6 layers) | ratio to Tensor.var |",
        "|---|---|---|",
    ]
    lines += [f"| {k} | {1e3 * v:.2f} | {v / base:.2f} |" for k, v in med.items()]
    text = "\n".join(lines) + "\n"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "batchnorm_statistics.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
