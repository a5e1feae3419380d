"""Speed of consistency training and of the evaluator, in one run, as ratios to a baseline.

Every timed step is measured in interleaved rounds (medians) against the plain step of the same
model measured in the same run, because the machines are shared and noisy:

(1) training steps of the paper's models (``PaperModel.loss`` + backward + Adam, batch 128):
    XC-I at the library default, XC-I with every batch row as a prior sample (the old default),
    XC-I with ``consistency_samples`` in {8, 16, 32, 64}, the literal loop-over-dimensions
    Algorithm 1, X and XC-E, each against the plain AE step of the same preset (S and Standard);
(2) XBlock(n, u) forward+backward, n in {6, 12, 32}, u in {1, 4}, against the AE S step;
(3) the default XC-I step against the plain step for batch sizes 32 ... 512;
(4) evaluator throughput (responses per second) of a conv AE S with n in {6, 12, 32} latents,
    and its peak memory (CUDA: max allocated; CPU: the peak-RSS increase of a fresh process),
    for two evaluation sizes T·K and two ``batch_size``s: memory follows ``batch_size``.

    python benchmarks/bench_speed.py                  # all of it (CPU: ~5 minutes)
    python benchmarks/bench_speed.py --smoke          # seconds: every code path, tiny sizes
    python benchmarks/bench_speed.py --device cuda --amp --compile --out summary.md

``--amp`` runs the training steps under bf16 autocast; ``--compile`` wraps encoder and decoder
in ``torch.compile``. Writes the Markdown tables to stdout and to ``--out`` when given.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import torch
from _common import interleaved_times, peak_rss_kb

from consistency import ConsistencyEvaluator, intervene, response
from consistency.models import PRESETS, PaperModel, Recipe

ROWS = (8, 16, 32, 64)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _model(
    preset: str, variant: str, device: torch.device, compile_: bool, **recipe: Any
) -> PaperModel:
    torch.manual_seed(0)
    model = (
        PaperModel("AE", PRESETS[preset], variant, recipe=Recipe().replace(**recipe))
        .to(device)
        .train()
    )  # type: ignore[arg-type]
    if compile_:
        model.encoder = torch.compile(model.encoder)  # type: ignore[assignment]
        model.decoder = torch.compile(model.decoder)  # type: ignore[assignment]
    return model


def _train_step(model: PaperModel, x: torch.Tensor, amp: bool) -> Callable[[], None]:
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    with torch.no_grad():
        model.sampler.update(model.means(x))
    autocast = (lambda: torch.autocast(x.device.type, dtype=torch.bfloat16)) if amp else nullcontext

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast():
            total = model.loss(x).total
        total.backward()
        opt.step()
        _sync(x.device)

    return step


def _literal_algorithm1(model: PaperModel, x: torch.Tensor) -> Callable[[], None]:
    """AE step + Algorithm 1 as written: for every dimension, a reference and an intervened
    response of the whole batch (2n extra passes), raw squared differences."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    n = model.n

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        z = model.means(x)
        total = model.loss(x).total
        prior = z.detach()
        for dim in range(n):
            values = prior[torch.randint(0, prior.shape[0], (prior.shape[0],)), dim]
            r_ref = response(model.means, model.generate, prior)
            r_int = response(model.means, model.generate, intervene(prior, dim, values))
            keep = torch.ones(n, device=x.device)
            keep[dim] = 0
            total = total + 4.0 * ((r_int - r_ref).square() * keep).sum(1).mean() / n
        total.backward()
        opt.step()
        _sync(x.device)

    return step


def _images(preset: str, batch: int, device: torch.device) -> torch.Tensor:
    p = PRESETS[preset]
    g = torch.Generator().manual_seed(0)
    return torch.rand(batch, p.channels, p.image_size, p.image_size, generator=g).to(device)


def training_steps(preset: str, args: argparse.Namespace, device: torch.device) -> dict[str, float]:
    x = _images(preset, args.batch, device)
    c = args.compile
    steps: dict[str, Callable[[], None]] = {
        "plain": _train_step(_model(preset, "plain", device, c), x, args.amp),
        "XC-I default": _train_step(_model(preset, "XC-I", device, c), x, args.amp),
        "XC-I all rows": _train_step(
            _model(preset, "XC-I", device, c, n_samples=None), x, args.amp
        ),
    }
    for k in args.rows:
        steps[f"XC-I {k} rows"] = _train_step(
            _model(preset, "XC-I", device, c, n_samples=k), x, args.amp
        )
    steps["X"] = _train_step(_model(preset, "X", device, c), x, args.amp)
    steps["XC-E default"] = _train_step(_model(preset, "XC-E", device, c), x, args.amp)
    if not args.smoke:
        steps["literal Algorithm 1"] = _literal_algorithm1(_model(preset, "plain", device, c), x)
    return interleaved_times(steps, rounds=args.rounds, warmup=args.warmup)


def xblock_steps(args: argparse.Namespace, device: torch.device) -> dict[str, float]:
    from consistency import XBlock

    x = _images("S", args.batch, device)
    steps: dict[str, Callable[[], None]] = {
        "AE S step": _train_step(_model("S", "plain", device, False), x, False)
    }
    for n in args.ns:
        for u in (1, 4):
            block = XBlock(n, u).to(device).train()
            noise = torch.randn(args.batch, n, device=device)

            def fwd_bwd(block: XBlock = block, noise: torch.Tensor = noise) -> None:
                block.zero_grad(set_to_none=True)
                block(noise).square().mean().backward()
                _sync(device)

            steps[f"XBlock({n}, {u})"] = fwd_bwd
    return interleaved_times(steps, rounds=args.rounds, warmup=args.warmup)


def batch_sweep(args: argparse.Namespace, device: torch.device) -> dict[int, float]:
    ratios = {}
    for b in args.batches:
        x = _images("S", b, device)
        t = interleaved_times(
            {
                "plain": _train_step(_model("S", "plain", device, args.compile), x, args.amp),
                "xci": _train_step(_model("S", "XC-I", device, args.compile), x, args.amp),
            },
            rounds=args.rounds,
            warmup=args.warmup,
        )
        ratios[b] = t["xci"] / t["plain"]
    return ratios


def _evaluator(
    n: int, t: int, k: int, batch_size: int, device: torch.device, base: str = "S"
) -> ConsistencyEvaluator:
    torch.manual_seed(0)
    preset = dataclasses.replace(PRESETS[base], name=f"{base}-n{n}", n=n)
    model = PaperModel("AE", preset, "plain").to(device).eval()
    with torch.no_grad():
        model.sampler.update(torch.randn(2000, n, device=device))
    return model.evaluator(
        n_samples=t,
        n_interventions=k,
        max_batch=batch_size,
        progress=False,
        generator=torch.Generator(device).manual_seed(0),
    )


def _peak_memory_mb(n: int, t: int, k: int, batch_size: int, device: torch.device) -> float:
    if device.type == "cuda":
        ev = _evaluator(n, t, k, batch_size, device)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        ev.evaluate()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    spec = json.dumps([n, t, k, batch_size])
    out = subprocess.run(
        [sys.executable, __file__, "--_rss", spec], capture_output=True, text=True, check=True
    )
    return float(json.loads(out.stdout.strip().splitlines()[-1])["mb"])


def _rss_child(spec: str) -> None:
    n, t, k, batch_size = json.loads(spec)
    ev = _evaluator(n, t, k, batch_size, torch.device("cpu"))
    before = peak_rss_kb()  # model and sampler built; the evaluation's own peak comes next
    ev.evaluate()
    print(json.dumps({"mb": (peak_rss_kb() - before) / 1024}))


def evaluator_throughput(args: argparse.Namespace, device: torch.device) -> list[dict[str, Any]]:
    rows = []
    t, k = args.eval_samples, args.eval_interventions
    configs = [(n, t, k, args.eval_batch) for n in args.ns]
    big = args.ns[-1]
    configs += [(big, t, 2 * k, args.eval_batch), (big, t, k, 4 * args.eval_batch)]
    for n, t_, k_, bs in configs:
        ev = _evaluator(n, t_, k_, bs, device)
        ev.evaluate()
        _sync(device)
        t0 = time.perf_counter()
        ev.evaluate()
        _sync(device)
        seconds = time.perf_counter() - t0
        responses = t_ * n * k_ + t_  # intervened rows + the reference pass
        rows.append(
            {
                "n": n,
                "T": t_,
                "K": k_,
                "batch_size": bs,
                "responses_per_s": responses / seconds,
                "seconds": seconds,
                "peak_mb": _peak_memory_mb(n, t_, k_, bs, device),
            }
        )
    return rows


def _ratio_table(title: str, times: dict[str, float], baseline: str, digits: int) -> list[str]:
    """A Markdown table of median times and their ratio to ``times[baseline]``."""
    lines = [title, "", f"| step | median ms | ratio to {baseline} |", "|---|---|---|"]
    lines += [
        f"| {k} | {v * 1e3:.{digits}f} | {v / times[baseline]:.{digits + 1}f} |"
        for k, v in times.items()
    ]
    return [*lines, ""]


def _training_lines(preset: str, args: argparse.Namespace, device: torch.device) -> list[str]:
    title = (
        f"### Training step, AE {preset}, batch {args.batch} "
        f"({args.rounds} interleaved rounds, medians)"
    )
    return _ratio_table(title, training_steps(preset, args, device), "plain", 1)


def _xblock_lines(args: argparse.Namespace, device: torch.device) -> list[str]:
    title = f"### XBlock forward+backward, batch {args.batch}, against one AE S training step"
    return _ratio_table(title, xblock_steps(args, device), "AE S step", 2)


def _batch_lines(args: argparse.Namespace, device: torch.device) -> list[str]:
    sweep = batch_sweep(args, device)
    lines = [
        "### Default XC-I step / plain step, AE S, by batch size",
        "",
        "| batch | ratio |",
        "|---|---|",
    ]
    return lines + [f"| {b} | {r:.2f} |" for b, r in sweep.items()] + [""]


def _evaluator_lines(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "### Evaluator throughput, conv AE S with n latents (one `evaluate()`, posterior mode)",
        "",
        "| n | T | K | batch_size | responses / s | seconds | peak memory MB |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['n']} | {r['T']} | {r['K']} | {r['batch_size']} | {r['responses_per_s']:.0f} | "
        f"{r['seconds']:.2f} | {r['peak_mb']:.0f} |"
        for r in rows
    ]
    return [*lines, ""]


def _celeba_lines(args: argparse.Namespace, device: torch.device) -> list[str]:
    t, k, bs = (8, 2, 64) if args.smoke else (1000, 10, 512)
    ev = _evaluator(32, t, k, bs, device, base="v32")
    _sync(device)
    t0 = time.perf_counter()
    ev.evaluate()
    _sync(device)
    seconds = time.perf_counter() - t0
    responses = t * 32 * k + t
    return [
        "### Evaluator, v32 CelebA AE (n = 32, 128x128x3), one `evaluate()` including warm-up",
        "",
        f"T = {t}, K = {k}, batch_size {bs}: {responses} responses in {seconds:.1f} s = "
        f"{responses / seconds:.0f} responses / s",
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one round: seconds")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast in the training steps")
    parser.add_argument("--compile", action="store_true", help="torch.compile encoder and decoder")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--out", default=None, help="also write the Markdown here")
    parser.add_argument("--presets", nargs="+", default=["S", "Standard"])
    parser.add_argument(
        "--rows",
        type=int,
        nargs="*",
        default=list(ROWS),
        help="consistency_samples values timed in the training section",
    )
    parser.add_argument(
        "--sections",
        nargs="+",
        default=["training", "xblock", "batch", "evaluator"],
        choices=["training", "xblock", "batch", "evaluator", "celeba"],
        help="what to measure; celeba: one evaluation of the v32 CelebA AE (n = 32, "
        "128x128x3) at T = 1000, K = 10 (a GPU-sized job)",
    )
    parser.add_argument(
        "--eval-samples", type=int, default=None, help="T (default: 200 on CPU, 1000 on CUDA)"
    )
    parser.add_argument(
        "--eval-interventions", type=int, default=None, help="K (default: 5 on CPU, 10 on CUDA)"
    )
    parser.add_argument("--_rss", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._rss:
        _rss_child(args._rss)
        return
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    args.batch, args.warmup = 128, 2
    args.ns, args.batches, args.eval_batch = (6, 12, 32), (32, 64, 128, 256, 512), 512
    if args.eval_samples is None:
        args.eval_samples = 1000 if cuda else 200
    if args.eval_interventions is None:
        args.eval_interventions = 10 if cuda else 5
    if args.smoke:
        args.batch, args.rounds, args.warmup, args.rows = 16, 1, 1, [8]
        args.presets, args.ns, args.batches, args.eval_batch = ["S"], (6,), (16,), 64
        args.eval_samples, args.eval_interventions = 16, 2

    lines = [
        f"device={device} threads={torch.get_num_threads()} torch={torch.__version__} "
        f"amp={args.amp} compile={args.compile} smoke={args.smoke}",
        "",
    ]
    if "training" in args.sections:
        for preset in args.presets:
            lines += _training_lines(preset, args, device)
    if "xblock" in args.sections:
        lines += _xblock_lines(args, device)
    if "batch" in args.sections:
        lines += _batch_lines(args, device)
    if "evaluator" in args.sections:
        lines += _evaluator_lines(evaluator_throughput(args, device))
    if "celeba" in args.sections:
        lines += _celeba_lines(args, device)
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
