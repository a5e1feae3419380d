"""Cost of the consistency losses on the paper's MNIST AE S, against a plain AE step, in one run.

Measures (batch 128, interleaved rounds, medians):
  (a) plain AE training step;
  (b) AE + InvarianceLoss (dims="random", reusing the reconstruction's responses);
  (b2) the same with stop_reference=True (responses under no_grad) and 64 of the 128 rows;
  (c) XAE + EquivarianceLoss with the XBlock;
  (d) AE + a literal loop-over-dimensions Algorithm 1 (kept here as the reference).
Prints the ratios b/a, c/a, d/b and each step's peak memory (CUDA: max allocated; CPU: the
increase in peak RSS (VmHWM) of a fresh subprocess running that step after set-up).

    python benchmarks/bench_losses.py [--rounds 10] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable

import torch
from _common import interleaved_times, paper_ae, peak_rss_kb
from torch.nn import functional as F

from consistency import (
    AggregatePosterior,
    EquivarianceLoss,
    InvarianceLoss,
    XBlock,
    intervene,
    response,
)
from consistency.models import PaperModel

BATCH = 128
N = 6


def make_steps(device: torch.device) -> dict[str, Callable[[], None]]:
    torch.manual_seed(0)
    x = torch.rand(BATCH, 1, 28, 28, device=device)
    steps: dict[str, Callable[[], None]] = {}

    def build(xblock: bool) -> tuple[PaperModel, torch.optim.Optimizer, AggregatePosterior]:
        # the benchmarks' XBlock is the library default (no output Mish), as in the first measurements
        model = paper_ae("S", "X" if xblock else "plain").to(device)
        if xblock:
            model.latent = XBlock(N, 1).to(device)
        sampler = AggregatePosterior(N, capacity=10_000, device=device)
        sampler.update(model.encoder(x).detach())
        return model, torch.optim.Adam(model.parameters(), lr=1e-4), sampler

    def step_with(
        model: PaperModel,
        opt: torch.optim.Optimizer,
        sampler: AggregatePosterior,
        extra: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None,
    ) -> Callable[[], None]:
        def step() -> None:
            opt.zero_grad()
            z = model.encoder(x)
            sampler.update(z)
            x_hat = model.generate(z)
            loss = F.mse_loss(x_hat, x, reduction="sum") / BATCH
            if extra is not None:
                loss = loss + 4.0 * extra(z, x_hat)
            loss.backward()
            opt.step()

        return step

    m, o, s = build(False)
    steps["a_plain"] = step_with(m, o, s, None)

    m, o, s = build(False)
    inv = InvarianceLoss.faithful(m, s, dims="random", intervention_values="batch")
    steps["b_invariance"] = step_with(
        m, o, s, lambda z, x_hat, inv=inv, m=m: inv(z, responses=m.encoder(x_hat))
    )

    m, o, s = build(False)
    inv2 = InvarianceLoss.faithful(
        m, s, dims="random", intervention_values="batch", stop_reference=True, n_samples=64
    )

    def cheap(
        z: torch.Tensor, x_hat: torch.Tensor, inv: InvarianceLoss = inv2, m: PaperModel = m
    ) -> torch.Tensor:
        with torch.no_grad():
            responses = m.encoder(x_hat)
        return inv(z, responses=responses)

    steps["b2_invariance_stopref_64"] = step_with(m, o, s, cheap)

    m, o, s = build(True)
    eqv = EquivarianceLoss.faithful(m, s, intervention_values="batch", stop_reference=False)
    steps["c_equivariance"] = step_with(m, o, s, lambda z, x_hat, eqv=eqv: eqv(z))

    m, o, s = build(False)

    def literal_algorithm1(
        z: torch.Tensor, x_hat: torch.Tensor, m: PaperModel = m, s: AggregatePosterior = s
    ) -> torch.Tensor:
        total = z.new_zeros(())
        for dim in range(N):  # Algorithm 1: for m, for I_m: sample N, intervene, compare responses
            prior = s.sample(BATCH, "posterior")
            values = s.intervention_values(torch.full((BATCH,), dim))
            r_ref = response(m.encoder, m.generate, prior)
            r_int = response(m.encoder, m.generate, intervene(prior, dim, values))
            mask = torch.ones(N, device=z.device)
            mask[dim] = 0
            total = total + ((r_int - r_ref).square() * mask).sum(1).mean() / N
        return total / N

    steps["d_literal_loop"] = step_with(m, o, s, literal_algorithm1)
    return steps


def peak_memory_mb(name: str, device: torch.device) -> float:
    if device.type == "cuda":
        step = make_steps(device)[name]
        step()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    out = subprocess.run(
        [sys.executable, __file__, "--_rss", name], capture_output=True, text=True, check=True
    )
    return float(json.loads(out.stdout.strip().splitlines()[-1])["mb"])


def _rss_child(name: str) -> None:
    steps = make_steps(torch.device("cpu"))
    step = steps[name]
    before = peak_rss_kb()
    for _ in range(2):
        step()
    print(json.dumps({"mb": (peak_rss_kb() - before) / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--_rss", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._rss:
        _rss_child(args._rss)
        return
    device = torch.device(args.device)
    steps = make_steps(device)
    if device.type == "cuda":
        steps = {k: (lambda f=f: (f(), torch.cuda.synchronize())[0]) for k, f in steps.items()}
    t = interleaved_times(steps, rounds=args.rounds)
    mem = {k: peak_memory_mb(k, device) for k in t}
    print(
        f"device={device} batch={BATCH} n={N} threads={torch.get_num_threads()} torch={torch.__version__}"
    )
    print("| step | median ms | ratio to (a) | peak memory MB |")
    print("|---|---|---|---|")
    for k, v in t.items():
        print(f"| {k} | {v * 1e3:.1f} | {v / t['a_plain']:.2f} | {mem[k]:.0f} |")
    print(f"b/a = {t['b_invariance'] / t['a_plain']:.2f} (target <= 2.0)")
    print(f"c/a = {t['c_equivariance'] / t['a_plain']:.2f}")
    print(
        f"b2/a = {t['b2_invariance_stopref_64'] / t['a_plain']:.2f} (stop_reference, 64 of 128 prior samples)"
    )
    print(f"d/b = {t['d_literal_loop'] / t['b_invariance']:.2f} (target >= n = {N})")
    print(f"d/b2 = {t['d_literal_loop'] / t['b2_invariance_stopref_64']:.2f}")


if __name__ == "__main__":
    main()
