"""Train-and-evaluate runs shared by the reproduction and ablation benchmarks.

One run = one model, one seed, one budget: train with :func:`consistency.train.train`, then
measure test reconstruction and the consistency scores with :class:`~consistency.ConsistencyEvaluator`
in both conventions, on a bank of test-set means. Runs go to worker processes (one thread
each) and their rows are appended to a JSON-lines file as they finish, so an interrupted
benchmark resumes where it stopped.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import math
import multiprocessing as mp
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

LABELS: dict[tuple[str, str], str] = {
    ("AE", "plain"): "AE",
    ("AE", "X"): "XAE",
    ("AE", "XC-I"): "XCAE-I",
    ("AE", "XC-E"): "XCAE-E",
    ("AE", "C-I"): "CAE-I",
    ("AE", "C-E"): "CAE-E",
    ("VAE", "plain"): "VAE",
    ("VAE", "X"): "X-VAE",
    ("VAE", "XC-I"): "XC-I VAE",
    ("VAE", "XC-E"): "XC-E VAE",
    ("VAE", "C-I"): "C-I VAE",
    ("VAE", "C-E"): "C-E VAE",
    ("SAE", "plain"): "SAE",
    ("SAE", "X"): "XSAE",
    ("SAE", "XC-I"): "XCSAE-I",
    ("SAE", "XC-E"): "XCSAE-E",
    ("SAE", "C-I"): "CSAE-I",
    ("SAE", "C-E"): "CSAE-E",
    ("AVAE", "plain"): "AVAE",
    ("AVAE", "X"): "XAVAE",
    ("AVAE", "XC-I"): "XCAVAE-I",
    ("AVAE", "XC-E"): "XCAVAE-E",
    ("AVAE", "C-I"): "CAVAE-I",
    ("AVAE", "C-E"): "CAVAE-E",
}
MODES = ("posterior", "hybrid", "uniform")
AUTHORS_POOL = 128  # the authors' evaluation pool: one validation batch of 128 codes


@dataclass(frozen=True)
class RunSpec:
    """Everything that determines one run (its JSON form is the run's identity on resume;
    a row stores it under ``"run"``)."""

    family: str
    variant: str
    seed: int
    steps: int
    batch_size: int = 64
    lr: float = 1e-3
    dataset: str = "mnist"
    preset: str = "S"
    recipe: dict[str, Any] = field(default_factory=dict)  # Recipe fields; {"faithful": True}
    tau_schedule: str = "anneal"
    tau_start: float = 1.0
    tau_end: float = 0.2
    consistency_weight: float = 4.0
    eval_data: int = 10_000
    eval_samples: int = 1000
    eval_interventions: int = 10
    config: str = ""  # a name for the recipe / ablation row
    train_size: int | None = None
    conventions: tuple[str, ...] = ("spec", "authors")
    grad_clip: float | None = None

    @property
    def model(self) -> str:
        return LABELS.get((self.family, self.variant), f"{self.family}-{self.variant}")

    def key(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


_DATA: dict[tuple[str, int | None], tuple[torch.Tensor, torch.Tensor]] = {}


def load_data(dataset: str, train_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(train_images, test_images)`` of ``dataset`` (cached per process)."""
    key = (dataset, train_size)
    if key not in _DATA:
        if dataset == "mnist":
            from consistency.data import mnist

            train_x, test_x = mnist(None, "train").images, mnist(None, "test").images
        elif dataset == "scene":
            from consistency.data import SceneDataset

            train_x = SceneDataset(20_000, seed=0).images
            test_x = SceneDataset(2_000, seed=1).images
        elif dataset in GROUND_TRUTH:
            train_x, test_x = ground_truth_data(dataset)[1], ground_truth_data(dataset)[2]
        else:
            raise ValueError(f"unknown dataset {dataset!r}")
        if train_size:
            train_x = train_x[:train_size]
        _DATA[key] = (train_x, test_x)
    return _DATA[key]


GROUND_TRUTH = ("gt-scene", "pendulum", "shapes")
_GT: dict[str, tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor]] = {}


def ground_truth_data(dataset: str) -> tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(source, train_images, test_images, test_factors)`` of an offline data set with known
    causes: ``gt-scene`` (the causal scene; 20,000 train, 5,000 test), ``pendulum`` (CausalVAE's;
    the same sizes), ``shapes`` (dSprites-like; 20,000 draws from the factorial to train on, the
    full factorial of 6,144 images to test on). Train and test come from different seeds."""
    if dataset not in _GT:
        from consistency.data import CausalScene, Pendulum, Shapes, StructuralDataset

        if dataset == "gt-scene":
            train = StructuralDataset(CausalScene(seed=0), 20_000)
            source = CausalScene(seed=1)
            test_x, test_f = source.sample(5_000)
        elif dataset == "pendulum":
            train = StructuralDataset(Pendulum(seed=0), 20_000)
            source = Pendulum(seed=1)
            test_x, test_f = source.sample(5_000)
        elif dataset == "shapes":
            train = StructuralDataset(Shapes(seed=0), 20_000)
            source = Shapes(seed=1)
            test_x, test_f = source.grid()
        else:
            raise ValueError(f"unknown ground-truth dataset {dataset!r}; one of {GROUND_TRUTH}")
        _GT[dataset] = (source, train.images, test_x, test_f)
    return _GT[dataset]


def add_budget_arguments(
    parser: Any, *, steps: int, seeds: list[int], eval_data: int, eval_interventions: int
) -> None:
    """Training-budget and evaluation flags shared by the benchmarks."""
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seeds", type=int, nargs="+", default=seeds)
    parser.add_argument("--jobs", type=int, default=2, help="runs side by side (one thread each)")
    parser.add_argument("--eval-data", type=int, default=eval_data, help="test images")
    parser.add_argument("--eval-samples", type=int, default=1000 if eval_data > 5000 else 500)
    parser.add_argument("--eval-interventions", type=int, default=eval_interventions)
    parser.add_argument(
        "--grad-clip",
        type=float,
        default=None,
        help="cap on the global gradient norm (MNIST S, batch 64: median norm ~75, 150 = 2x)",
    )


def _finite(v: float | None) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def run(spec: RunSpec, out_root: str | None = None) -> dict[str, Any]:
    """Train and evaluate one :class:`RunSpec`; returns the row the benchmarks store."""
    return train_and_evaluate(spec, out_root)[1]


def train_and_evaluate(spec: RunSpec, out_root: str | None = None) -> tuple[Any, dict[str, Any]]:
    """Train and evaluate one :class:`RunSpec`: ``(model in train mode, row)``."""
    from consistency import AggregatePosterior
    from consistency.models import Recipe, build_model
    from consistency.train import TrainConfig, train

    train_x, test_x = load_data(spec.dataset, spec.train_size)
    torch.manual_seed(spec.seed)
    recipe_kw = dict(spec.recipe)
    faithful = bool(recipe_kw.pop("faithful", False))
    # a TrainConfig field and the latent width, carried in the recipe dict so the RunSpec keys
    # stay as they were
    warmup_steps = int(recipe_kw.pop("warmup_steps", 0))
    kl_warmup_steps = int(recipe_kw.pop("kl_warmup_steps", 0))
    gate_lr_scale = float(recipe_kw.pop("gate_lr_scale", 1.0))
    latent_n = recipe_kw.pop("latent_n", None)
    recipe = (Recipe.faithful() if faithful else Recipe()).replace(**recipe_kw)
    if latent_n is None:
        model = build_model(
            spec.family,
            spec.preset,
            spec.variant,
            recipe=recipe,
            consistency_weight=spec.consistency_weight,
        )
    else:  # the preset with another latent width (Table 1's n = 12 on the S skeleton)
        import dataclasses

        from consistency.models import PRESETS, PaperModel

        preset = dataclasses.replace(PRESETS[spec.preset], n=int(latent_n))
        model = PaperModel(
            spec.family,
            preset,
            spec.variant,  # type: ignore[arg-type]
            recipe=recipe,
            consistency_weight=spec.consistency_weight,
        )
    out = Path(out_root or "/tmp/consistency-bench") / f"{spec.config}-{spec.model}-{spec.seed}"
    config = TrainConfig(
        steps=spec.steps,
        batch_size=spec.batch_size,
        lr=spec.lr,
        seed=spec.seed,
        device="cpu",
        tau_schedule=spec.tau_schedule,  # type: ignore[arg-type]
        tau_start=spec.tau_start,
        tau_end=spec.tau_end,
        checkpoint_every=0,
        out=str(out),
        progress=False,
        figures=False,
        eval_data=0,  # evaluation below
        grad_clip=spec.grad_clip,
        warmup_steps=warmup_steps,
        kl_warmup_steps=kl_warmup_steps,
        gate_lr_scale=gate_lr_scale,
    )
    t0 = time.perf_counter()
    train(model, _Images(train_x), config, evaluate=False)
    train_seconds = time.perf_counter() - t0
    if out_root is not None:  # the trained weights, to rescore without retraining
        out.mkdir(parents=True, exist_ok=True)
        torch.save({"run": asdict(spec), "state_dict": model.state_dict()}, out / "model.pt")

    model.eval()
    test = test_x[: spec.eval_data]
    bank = AggregatePosterior(model.n, capacity=test.shape[0])
    errors = []
    with torch.no_grad():
        for chunk in test.split(500):
            means = model.means(chunk)
            bank.update(means)
            errors.append((model.generate(means) - chunk).square().flatten(1).sum(1))
    row: dict[str, Any] = {
        "model": spec.model,
        "config": spec.config,
        "seed": spec.seed,
        "steps": spec.steps,
        "batch_size": spec.batch_size,
        "lr": spec.lr,
        "test_reconstruction": float(torch.cat(errors).mean()),
        "train_seconds": train_seconds,
    }
    t1 = time.perf_counter()
    for convention in spec.conventions:
        # spec: the RunSpec's sizes on the whole bank; authors: their sample counts
        # (CONVENTION_DEFAULTS) on a pool of 128 codes, as their runs had
        authors = convention == "authors"
        ev = model.evaluator(
            bank,
            n_samples=None if authors else min(spec.eval_samples, len(bank)),
            n_interventions=None if authors else spec.eval_interventions,
            scn_samples=None if authors else min(spec.eval_samples, len(bank)),
            pool_size=AUTHORS_POOL if authors else None,
            convention=convention,
            generator=torch.Generator().manual_seed(spec.seed),
            progress=False,
        )
        report = ev.evaluate("posterior")
        scn = ev.self_consistency_table(MODES).means()
        row[convention] = {
            "mean_invariance": _finite(report.mean_invariance),
            "mean_equivariance": _finite(report.mean_equivariance),
            "self_consistency": {m: _finite(v) for m, v in scn.items()},
            "mmd_hybrid": _finite(report.mmd_hybrid),
            "mmd_hybrid_multiscale": _finite(report.mmd_hybrid_multiscale),
            "collapsed": report.collapsed,
        }
        if authors:
            row[convention]["self_consistency_levels"] = {
                str(k): _finite(v) for k, v in ev.self_consistency_levels("hybrid").items()
            }
    row["eval_seconds"] = time.perf_counter() - t1
    xb = model.xblock
    if xb is not None:
        moved = xb.gate_movement()
        row.update(
            edge_density=xb.edge_density(),
            adjacency_density=xb.adjacency_density(),
            gate_confidence=xb.gate_confidence(),
            logit_movement=moved.mean_shift,
            max_logit_movement=moved.max_shift,
            edges_flipped=moved.flipped,
            adjacency=xb.adjacency().tolist(),
        )
    else:
        row.update(edge_density=None, logit_movement=None)
    model.train()
    return model, row


class _Images(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """A tensor of images as a data set (``train`` uses ``.images`` directly)."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def _worker_init() -> None:
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"


def _run_keyed(
    spec: RunSpec, out_root: str | None, worker: Callable[[RunSpec, str | None], dict[str, Any]]
) -> tuple[str, dict[str, Any]]:
    row = worker(spec, out_root)
    row["run"] = asdict(spec)
    return spec.key(), row


def command_line(script: str, argv: Sequence[str] | None) -> str:
    """How the benchmark was called, for its table: ``python benchmarks/<script> <argv>``
    (``argv`` as ``main`` got it, or the process's own arguments when ``None``)."""
    args = list(argv) if argv is not None else sys.argv[1:]
    return " ".join(["python", f"benchmarks/{script}", *args])


def read_rows(
    path: Path, key: Callable[[dict[str, Any]], str] = lambda row: str(row["key"])
) -> dict[str, dict[str, Any]]:
    """The rows of a resumable JSON-lines file keyed by ``key(row)`` (``row["key"]`` by
    default; a later row replaces an earlier one of the same key); ``{}`` if there is no file."""
    rows: dict[str, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                rows[key(row)] = row
    return rows


def _done(results: Path) -> dict[str, dict[str, Any]]:
    """The rows already in ``results`` (JSON lines), keyed by their run's identity."""
    return read_rows(results, lambda row: json.dumps(row["run"], sort_keys=True))


def load_rows(results: Path, specs: Sequence[RunSpec]) -> list[dict[str, Any]]:
    """The rows of ``specs`` already in ``results`` (JSON lines), in the order given; missing
    runs are left out."""
    done = _done(results)
    return [done[s.key()] for s in specs if s.key() in done]


def run_all(
    specs: Sequence[RunSpec],
    results: Path,
    *,
    jobs: int = 2,
    out_root: str | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    worker: Callable[[RunSpec, str | None], dict[str, Any]] = run,
) -> list[dict[str, Any]]:
    """Run every spec not yet in ``results`` (JSON lines), ``jobs`` at a time; return all rows
    of ``specs`` (old and new) in the order given. ``worker`` (a module-level function, for
    pickling) makes a row from a spec; :func:`run` by default."""
    done = _done(results)
    todo = [s for s in specs if s.key() not in done]
    results.parent.mkdir(parents=True, exist_ok=True)
    if todo:
        print(
            f"{len(todo)} run(s) to do, {len(specs) - len(todo)} already in {results}", flush=True
        )
        ctx = mp.get_context("spawn")
        with cf.ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_worker_init) as pool:
            futures = [pool.submit(_run_keyed, s, out_root, worker) for s in todo]
            for fut in cf.as_completed(futures):
                key, row = fut.result()
                done[key] = row
                with results.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
                if on_row is not None:
                    on_row(row)
    return [done[s.key()] for s in specs]


def get(row: dict[str, Any], path: str) -> float | None:
    """``row["spec"]["self_consistency"]["hybrid"]`` as ``get(row, "spec.self_consistency.hybrid")``."""
    value: Any = row
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return None if value is None else float(value)


def mean_std(values: Iterable[float | None]) -> tuple[float, float, int]:
    """Mean, sample standard deviation (0 for one value) and count of the non-missing values."""
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return math.nan, math.nan, 0
    return (
        statistics.fmean(vals),
        statistics.stdev(vals) if len(vals) > 1 else 0.0,
        len(vals),
    )


def fmt_mean_std(values: Iterable[float | None], digits: int = 3) -> str:
    mean, std, count = mean_std(values)
    if count == 0:
        return "—"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def progress_line(row: dict[str, Any]) -> None:
    """One line per finished run, for the log."""

    def f(path: str) -> str:
        v = get(row, path)
        return "—" if v is None else f"{v:.3f}"

    scn = "/".join(f(f"spec.self_consistency.{m}") for m in MODES)
    print(
        f"[{time.strftime('%H:%M:%S')}] {row['config'] or '-'} {row['model']} seed {row['seed']}: "
        f"recon {row['test_reconstruction']:.2f}  INV {f('spec.mean_invariance')}  SCN {scn}  "
        f"({row['train_seconds']:.0f}+{row['eval_seconds']:.0f} s, {row['steps']} steps)",
        flush=True,
    )
