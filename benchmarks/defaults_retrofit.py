"""The library's defaults on models that are not the library's: a retrofit beside its plain twin.

A user's autoencoder (not from ``consistency.models``) gets ``model.latent = XBlock(n)`` and
``loss = reconstruction + InvarianceLoss(model)(means)`` in a plain loop — no recipe keyword, no
context manager — and is trained beside its plain twin: the same initial encoder and decoder,
the same batches, the same optimiser. Both are then scored on real MNIST test images (posterior
means of ``--eval-data`` images as the aggregate posterior; ``spec`` convention), and the step
times of both are measured at ``--time-batch`` in the same process.

Two architectures: ``convbn``, a conv AE with BatchNorm in encoder and decoder (n = 6), and
``mlp``, a fully connected AE without normalisation (n = 10).

    python benchmarks/defaults_retrofit.py                 # 2 architectures x seeds 0 1 2
    python benchmarks/defaults_retrofit.py --archs convbn --seeds 0 --steps 200

Runs go to worker processes (one thread each); each finished run is appended to
``results/defaults_retrofit.jsonl`` (an interrupted benchmark resumes), the timing to the same
file, and the table to ``results/defaults_retrofit.md`` / ``.json``.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import copy
import functools
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _runs import read_rows

RESULTS = Path(__file__).resolve().parent / "results"
MODES = ("posterior", "hybrid", "uniform")
LATENTS = {"convbn": 6, "mlp": 10}


class ConvBN(nn.Module):
    """A user's conv autoencoder with BatchNorm everywhere but the output layers."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 32, 4, 2, 1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 4, 2, 1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.Flatten(), nn.Linear(3136, 256), nn.BatchNorm1d(256), nn.ReLU(),
            nn.Linear(256, n),
        )  # fmt: skip
        self.latent: nn.Module = nn.Identity()
        self.decoder = nn.Sequential(
            nn.Linear(n, 256), nn.BatchNorm1d(256), nn.ReLU(),
            nn.Linear(256, 3136), nn.BatchNorm1d(3136), nn.ReLU(),
            nn.Unflatten(1, (64, 7, 7)),
            nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.ConvTranspose2d(32, 1, 4, 2, 1), nn.Sigmoid(),
        )  # fmt: skip


class MLP(nn.Module):
    """A user's fully connected autoencoder, no normalisation layers."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, n)
        )
        self.latent: nn.Module = nn.Identity()
        self.decoder = nn.Sequential(
            nn.Linear(n, 256),
            nn.ReLU(),
            nn.Linear(256, 784),
            nn.Sigmoid(),
            nn.Unflatten(1, (1, 28, 28)),
        )


ARCHS = {"convbn": ConvBN, "mlp": MLP}


def twins(arch: str, seed: int) -> tuple[nn.Module, nn.Module]:
    """A plain model and its retrofit, sharing the initial encoder and decoder."""
    from consistency import XBlock

    torch.manual_seed(seed)
    plain = ARCHS[arch](LATENTS[arch])
    retrofit = copy.deepcopy(plain)
    retrofit.latent = XBlock(LATENTS[arch])  # <- the retrofit
    return plain, retrofit


def reconstruction(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    z = model.encoder(x)
    return (model.decoder(model.latent(z)) - x).square().sum((1, 2, 3)).mean()


def train_loop(
    model: nn.Module,
    loss_fn: Any,
    images: torch.Tensor,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
) -> float:
    """The user's loop: Adam on the summed squared error (+ ``loss_fn(means)`` when given);
    batches from a generator seeded with ``seed``; the training seconds."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    batches = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed + 1)  # gate noise and prior samples: the same stream for every run
    model.train()
    t0 = time.perf_counter()
    for _ in range(steps):
        x = images[torch.randint(len(images), (batch_size,), generator=batches)]
        means = model.encoder(x)
        loss = (model.decoder(model.latent(means)) - x).square().sum((1, 2, 3)).mean()
        if loss_fn is not None:
            loss = loss + loss_fn(means)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def score(model: nn.Module, test: torch.Tensor, eval_samples: int) -> dict[str, Any]:
    """Test reconstruction and the consistency scores on the test images' means."""
    from consistency import AggregatePosterior, ConsistencyEvaluator

    model.eval()
    with torch.no_grad():
        chunks = test.split(500)
        means = torch.cat([model.encoder(c) for c in chunks])
        rec = float(torch.cat([
            (model.decoder(model.latent(m)) - c).square().sum((1, 2, 3))
            for m, c in zip(means.split(500), chunks)
        ]).mean())  # fmt: skip
    bank = AggregatePosterior(means.shape[1], capacity=len(means))
    bank.update(means)
    evaluator = ConsistencyEvaluator(
        model,
        bank,
        n_samples=eval_samples,
        n_interventions=10,
        generator=torch.Generator().manual_seed(0),
        progress=False,
    )
    return {
        "reconstruction": rec,
        "mean_invariance": evaluator.evaluate("posterior").mean_invariance,
        "self_consistency": evaluator.self_consistency_table(MODES).means(),
    }


def run(job: dict[str, Any]) -> dict[str, Any]:
    """Train one model of a pair (``job["variant"]``: ``plain`` or ``retrofit``) and score it."""
    torch.set_num_threads(1)
    from consistency import InvarianceLoss
    from consistency.data import mnist

    plain, retrofit = twins(job["arch"], job["seed"])
    model = plain if job["variant"] == "plain" else retrofit
    invariance = InvarianceLoss(model) if job["variant"] == "retrofit" else None  # the change
    seconds = train_loop(
        model,
        invariance,
        mnist(job["data_root"], "train").images,
        steps=job["steps"],
        batch_size=job["batch_size"],
        lr=job["lr"],
        seed=job["seed"],
    )
    scores = score(
        model, mnist(job["data_root"], "test").images[: job["eval_data"]], job["eval_samples"]
    )
    return {"key": key(job), "kind": "run", "job": job, **scores, "train_seconds": seconds}


def round_seconds(
    step_fns: dict[str, Callable[[], None]],
    steps: int,
    rounds: int,
    *,
    warmup: int,
    device: torch.device | str = "cpu",
) -> dict[str, list[float]]:
    """Seconds per call of each function in each round: ``warmup`` calls each, then ``rounds``
    rounds in which every function in turn runs ``steps`` times (alternating, so that drifts of
    the machine hit all alike). On CUDA the clock stops after the device has finished."""
    device = torch.device(device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for fn in step_fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in step_fns}
    for _ in range(rounds):
        for name, fn in step_fns.items():
            sync()
            t0 = time.perf_counter()
            for _ in range(steps):
                fn()
            sync()
            times[name].append((time.perf_counter() - t0) / steps)
    return times


def timing_key(arch: str, batch: int, device: str = "cpu") -> str:
    """The row key of a timing (CPU timings keep the key they always had)."""
    return f"timing/{arch}/{batch}" + ("" if device == "cpu" else f"/{device}")


def timing_fields(
    arch: str, batch: int, rounds: int, times: dict[str, list[float]]
) -> dict[str, Any]:
    """The fields every CPU timing row starts with: its key, what was timed, and the median ms
    over rounds of each entry of ``times`` (:func:`round_seconds`)."""
    return {
        "key": timing_key(arch, batch),
        "kind": "timing",
        "arch": arch,
        "batch": batch,
        "threads": torch.get_num_threads(),
        "rounds": rounds,
        "ms": {k: 1e3 * statistics.median(v) for k, v in times.items()},
    }


def paired_ratio(times: dict[str, list[float]], name: str, baseline: str) -> dict[str, float]:
    """Median and quartiles over rounds of ``name``'s time over ``baseline``'s in the same round
    (a paired ratio: a slow round of the machine slows both)."""
    ratios = [a / b for a, b in zip(times[name], times[baseline])]
    q1, _, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
    return {"median": statistics.median(ratios), "q1": q1, "q3": q3}


def step_times(
    arch: str,
    batch: int,
    steps: int,
    rounds: int,
    losses: dict[str, Callable[[nn.Module], Any] | None],
    *,
    warmup: int,
    device: str = "cpu",
) -> dict[str, list[float]]:
    """Seconds per training step in each round (:func:`round_seconds`) of one model per entry
    of ``losses`` at ``batch`` on ``device``: the plain twin for ``None``, else a retrofit
    trained with the loss the factory builds from it (random images: the cost does not depend
    on the data)."""
    models: dict[str, nn.Module] = {}
    terms: dict[str, Any] = {}
    for name, make in losses.items():
        plain, retrofit = (m.to(device) for m in twins(arch, 0))
        models[name] = plain if make is None else retrofit
        terms[name] = None if make is None else make(retrofit)
    opts = {k: torch.optim.Adam(m.parameters(), lr=1e-3) for k, m in models.items()}
    x = torch.rand(batch, 1, 28, 28, device=device)

    def step(name: str) -> None:
        model = models[name]
        means = model.encoder(x)
        loss = (model.decoder(model.latent(means)) - x).square().sum((1, 2, 3)).mean()
        if terms[name] is not None:
            loss = loss + terms[name](means)
        opts[name].zero_grad()
        loss.backward()
        opts[name].step()

    return round_seconds(
        {k: functools.partial(step, k) for k in models}, steps, rounds, warmup=warmup, device=device
    )


def time_steps(
    arch: str, batch: int, steps: int, rounds: int, device: str = "cpu"
) -> dict[str, Any]:
    """Seconds of a plain and a retrofit training step (``InvarianceLoss(model)``) at
    ``batch`` on ``device``, alternating the two in rounds in one process."""
    from consistency import InvarianceLoss

    times = step_times(
        arch,
        batch,
        steps,
        rounds,
        {"plain": None, "retrofit": InvarianceLoss},
        warmup=3,
        device=device,
    )
    ratio = paired_ratio(times, "retrofit", "plain")
    return {
        "key": timing_key(arch, batch, device),
        "kind": "timing",
        "arch": arch,
        "batch": batch,
        "device": device,
        "threads": torch.get_num_threads(),
        "plain_ms": 1e3 * statistics.median(times["plain"]),
        "retrofit_ms": 1e3 * statistics.median(times["retrofit"]),
        "ratio": ratio["median"],
        "ratio_q1": ratio["q1"],
        "ratio_q3": ratio["q3"],
        "rounds": rounds,
    }


def key(job: dict[str, Any]) -> str:
    return f"run/{job['arch']}/{job['seed']}/{job['variant']}/{job['steps']}/{job['batch_size']}"


def table(rows: dict[str, dict[str, Any]], args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """The markdown table and its JSON summary: each seed's pair, its wins, the step cost."""
    head = [
        "# The defaults on a user's model: retrofit (XBlock + `InvarianceLoss(model)`) vs plain twin",
        "",
        f"`{' '.join(['python', 'benchmarks/defaults_retrofit.py', *sys.argv[1:]])}`",
        "",
    ]
    lines = [
        *head,
        f"Real MNIST, {args.steps} steps × batch {args.batch_size}, Adam {args.lr}; scores on "
        f"{args.eval_data} test images' means ({args.eval_samples} prior samples × 10 "
        "interventions per dimension, `spec` convention). The retrofit's loss is built from the "
        "model alone: `InvarianceLoss(model)`, every choice the library's default.",
        "",
        "| arch | seed | model | reconstruction | mean INV | SCN posterior | SCN hybrid | SCN uniform |",
        "|---|---|---|---|---|---|---|---|",
    ]
    summary: dict[str, Any] = {"runs": [], "timing": {}, "wins": {}}
    for arch in args.archs:
        wins = {"mean_invariance": 0, "hybrid": 0, "uniform": 0, "reconstruction_within_10pct": 0}
        seeds = 0
        for seed in args.seeds:
            pair = {}
            for variant in ("plain", "retrofit"):
                k = f"run/{arch}/{seed}/{variant}/{args.steps}/{args.batch_size}"
                if k in rows:
                    pair[variant] = rows[k]
            if len(pair) < 2:
                continue
            seeds += 1
            p, r = pair["plain"], pair["retrofit"]
            for variant, row in (("plain twin", p), ("retrofit", r)):
                s = row["self_consistency"]
                lines.append(
                    f"| {arch} | {seed} | {variant} | {row['reconstruction']:.2f} | "
                    f"{row['mean_invariance']:.4f} | {s['posterior']:.3f} | {s['hybrid']:.3f} | "
                    f"{s['uniform']:.3f} |"
                )
                summary["runs"].append({"arch": arch, "seed": seed, "model": variant, **{
                    k: row[k] for k in ("reconstruction", "mean_invariance", "self_consistency")
                }})  # fmt: skip
            wins["mean_invariance"] += r["mean_invariance"] > p["mean_invariance"]
            wins["hybrid"] += r["self_consistency"]["hybrid"] > p["self_consistency"]["hybrid"]
            wins["uniform"] += r["self_consistency"]["uniform"] > p["self_consistency"]["uniform"]
            wins["reconstruction_within_10pct"] += r["reconstruction"] <= 1.1 * p["reconstruction"]
        summary["wins"][arch] = {"seeds": seeds, **wins}
    if not summary["runs"]:  # a timing alone (--timing-only into a new file)
        lines = [*head, "No training runs in this file: the step times alone."]
    else:
        lines += [
            "",
            "Seeds on which the retrofit is above its twin (reconstruction: within 10 %):",
            "",
        ]
    for arch, w in summary["wins"].items():
        if not w["seeds"]:
            continue
        lines.append(
            f"- {arch}: mean INV {w['mean_invariance']}/{w['seeds']}, SCN hybrid "
            f"{w['hybrid']}/{w['seeds']}, SCN uniform {w['uniform']}/{w['seeds']}, reconstruction "
            f"within 10 % {w['reconstruction_within_10pct']}/{w['seeds']}"
        )
    lines += ["", f"Step time at batch {args.time_batch} on {args.device}: {args.rounds} rounds × "
              f"{args.time_steps} steps, the two alternating in one process; ms are medians over "
              "rounds, the ratio is the median over rounds of the retrofit's time over the twin's "
              "in the same round, with its quartiles:", "",
              "| arch | threads | plain ms | retrofit ms | ratio | quartiles |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for arch in args.archs:
        t = rows.get(timing_key(arch, args.time_batch, args.device))
        if t is not None:
            summary["timing"][arch] = {
                k: t.get(k)
                for k in ("threads", "plain_ms", "retrofit_ms", "ratio", "ratio_q1", "ratio_q3")
            }
            quartiles = f"{t['ratio_q1']:.2f}–{t['ratio_q3']:.2f}" if "ratio_q1" in t else "–"
            lines.append(
                f"| {arch} | {t['threads']} | {t['plain_ms']:.1f} | {t['retrofit_ms']:.1f} | "
                f"{t['ratio']:.2f} | {quartiles} |"
            )
    return "\n".join(lines) + "\n", summary


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a twin-versus-retrofit benchmark: models, seeds, training, scoring,
    timing, workers, data (this script's and ``ablate_step_cost.py``'s)."""
    parser.add_argument("--archs", nargs="+", default=list(ARCHS), choices=list(ARCHS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--eval-data", type=int, default=5000)
    parser.add_argument("--eval-samples", type=int, default=1000)
    parser.add_argument("--time-batch", type=int, default=128)
    parser.add_argument("--time-steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=30, help="alternating timing rounds")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data-root", default=None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    add_run_arguments(parser)
    parser.add_argument(
        "--timing-only", action="store_true", help="measure the step times (again), train nothing"
    )
    parser.add_argument(
        "--device", default="cpu", help="where the step times are measured (the runs: CPU)"
    )
    parser.add_argument("--out", default=str(RESULTS / "defaults_retrofit"))
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    jsonl = out.with_suffix(".jsonl")
    rows = read_rows(jsonl)
    jobs = [
        dict(arch=a, seed=s, variant=v, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
             eval_data=args.eval_data, eval_samples=args.eval_samples, data_root=args.data_root)
        for a in args.archs for s in args.seeds for v in ("plain", "retrofit")
    ]  # fmt: skip
    todo = [] if args.timing_only else [j for j in jobs if key(j) not in rows]
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None
    bar = tqdm(total=len(todo), desc="runs") if tqdm is not None and todo else None
    with cf.ProcessPoolExecutor(args.workers, mp_context=mp.get_context("spawn")) as pool:
        for row in pool.map(run, todo):
            rows[row["key"]] = row
            with jsonl.open("a") as f:
                f.write(json.dumps(row) + "\n")
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    for arch in args.archs:
        k = timing_key(arch, args.time_batch, args.device)
        if k not in rows or args.timing_only:
            row = time_steps(arch, args.time_batch, args.time_steps, args.rounds, args.device)
            rows[k] = row
            with jsonl.open("a") as f:
                f.write(json.dumps(row) + "\n")
    text, summary = table(rows, args)
    out.with_suffix(".md").write_text(text)
    out.with_suffix(".json").write_text(json.dumps(summary, indent=1))
    print(text)


if __name__ == "__main__":
    main()
