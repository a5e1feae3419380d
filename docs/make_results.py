"""Write docs/results.md from the committed result files in benchmarks/results/.

    python docs/make_results.py           # rewrites docs/results.md
    python docs/make_results.py --check   # exits 1 when docs/results.md is not what it would write

Every number on the page is read from a JSON file here; nothing is typed by hand, so a number
cannot drift from its file. Each section names the file and the command that made it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _runs import fmt_mean_std, get  # noqa: E402  (the benchmarks' own readers of their rows)

RESULTS = ROOT / "benchmarks" / "results"
OUT = ROOT / "docs" / "results.md"
MODES = ("posterior", "hybrid", "uniform")


def _mean_std(values: Iterable[float | None], digits: int = 3) -> str:
    return fmt_mean_std(values, digits)


def _load(name: str) -> Any:
    return json.loads((RESULTS / name).read_text())


def retrofit_section() -> list[str]:
    path = RESULTS / "defaults_retrofit.json"
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    lines = [
        "## The defaults on a user's model (retrofit vs plain twin)",
        "",
        "File: `benchmarks/results/defaults_retrofit.json` "
        "(`python benchmarks/defaults_retrofit.py`; the full table with the command: "
        "`benchmarks/results/defaults_retrofit.md`). Real MNIST, two autoencoders that are not "
        "the library's, each trained beside its plain twin (same init, same batches); the "
        "retrofit is `model.latent = XBlock(n)` and `loss = rec + InvarianceLoss(model)(means)`.",
        "",
        "| arch | model | reconstruction | mean INV | SCN posterior | SCN hybrid | SCN uniform |",
        "|---|---|---|---|---|---|---|",
    ]
    archs = sorted({r["arch"] for r in data["runs"]})
    for arch in archs:
        for model in ("plain twin", "retrofit"):
            rows = [r for r in data["runs"] if r["arch"] == arch and r["model"] == model]
            lines.append(
                f"| {arch} | {model} ({len(rows)} seeds) | "
                + " | ".join(
                    [
                        _mean_std((r["reconstruction"] for r in rows), 2),
                        _mean_std((r["mean_invariance"] for r in rows), 4),
                        *(_mean_std(r["self_consistency"][m] for r in rows) for m in MODES),
                    ]
                )
                + " |"
            )
    lines.append("")
    for arch, w in data["wins"].items():
        t = data["timing"].get(arch)
        cost = (
            f"; a training step costs {t['ratio']:.2f}× the plain step"
            + (
                f" (quartiles over rounds {t['ratio_q1']:.2f}–{t['ratio_q3']:.2f})"
                if t.get("ratio_q1") is not None
                else ""
            )
            + f", {t['retrofit_ms']:.1f} vs {t['plain_ms']:.1f} ms at batch 128, "
            f"{t['threads']} threads"
            if t
            else ""
        )
        lines.append(
            f"- {arch}: the retrofit is above its twin on mean INV in {w['mean_invariance']} of "
            f"{w['seeds']} seeds, SCN hybrid {w['hybrid']}/{w['seeds']}, SCN uniform "
            f"{w['uniform']}/{w['seeds']}; reconstruction within 10 % in "
            f"{w['reconstruction_within_10pct']}/{w['seeds']}{cost}."
        )
    return [*lines, ""]


def paper_section() -> list[str]:
    """The paper's MNIST tables for every family (``benchmarks/reproduce_mnist.py``), rendered by
    the benchmark's own table functions from the committed rows."""
    path = RESULTS / "mnist_paper.json"
    if not path.exists():
        return []
    from reproduce_mnist import claims, full_tables, label

    data = json.loads(path.read_text())
    rows = data["runs"]
    models = list(dict.fromkeys(label(r) for r in rows))
    seeds = sorted({r["seed"] for r in rows})
    body = [*full_tables(rows, models), *claims(rows)[0]]
    body = [("#" + line) if line.startswith("## ") else line for line in body]
    return [
        "## The paper's MNIST tables, every family",
        "",
        f"File: `benchmarks/results/mnist_paper.json` (`{data['command']}`; set-up in "
        f"`benchmarks/results/mnist_paper.md`). {len(rows)} runs, seeds "
        f"{', '.join(map(str, seeds))}. `authors` is the paper's computation (docs/method.md, "
        "\"The authors' convention\"), `spec` this library's scores.",
        "",
        *body,
        "",
    ]


def runs_table(name: str, title: str, blurb: str) -> list[str]:
    data = _load(name)
    runs = data["runs"]

    def label(r: dict[str, Any]) -> str:
        config = r.get("config", "default")
        return (
            r["model"]
            if config in ("default", r["model"]) or config in r["model"]
            else f"{r['model']}: {config}"
        )

    models: list[str] = []
    for r in runs:
        if label(r) not in models:
            models.append(label(r))
    lines = [
        f"## {title}",
        "",
        f"File: `benchmarks/results/{name}` (`{data['command']}`). {blurb}",
        "",
        "| model | seeds | reconstruction | mean INV | SCN posterior | SCN hybrid | SCN uniform |",
        "|---|---|---|---|---|---|---|",
    ]
    for model in models:
        rows = [r for r in runs if label(r) == model]
        cells = [
            _mean_std((r.get("test_reconstruction") for r in rows), 2),
            _mean_std(get(r, "spec.mean_invariance") for r in rows),
            *(_mean_std(get(r, f"spec.self_consistency.{m}") for r in rows) for m in MODES),
        ]
        lines.append(f"| {model} | {len(rows)} | " + " | ".join(cells) + " |")
    return [*lines, ""]


GT_COLUMNS = (
    ("recon", "test_reconstruction", 2),
    ("INV", "spec.mean_invariance", 3),
    ("SCN post.", "spec.self_consistency.posterior", 3),
    ("SCN hybrid", "spec.self_consistency.hybrid", 3),
    ("SCN unif.", "spec.self_consistency.uniform", 3),
    ("IRS", "gt.irs", 3),
    ("MIG", "gt.mig", 3),
    ("DCI D", "gt.dci_disentanglement", 3),
    ("DCI I", "gt.dci_informativeness", 3),
    ("data inv.", "gt.data_invariance", 3),
    ("SAP", "gt.sap", 3),
    ("Mod.", "gt.modularity", 3),
    ("Expl.", "gt.explicitness", 3),
    ("MCC", "gt.mcc", 3),
    ("FactorVAE", "gt.factor_vae", 3),
    ("BetaVAE", "gt.beta_vae", 3),
)


def ground_truth_section(name: str, title: str) -> list[str]:
    note = ""
    if not (RESULTS / name).exists():  # being re-measured: the earlier file, said so
        name = name.replace(".json", "_before_metric_set.json")
        note = (
            " The re-measurement with the full metric set (`python benchmarks/ground_truth.py`) "
            "has not finished: these are the earlier runs, made with 32 prior samples per step "
            "(the default is now 16, docs/method.md item 12), without the newer metrics (–)."
        )
    runs = _load(name)
    lines = [
        f"## {title}",
        "",
        f"File: `benchmarks/results/{name}` (the command and the definitions: "
        f"`benchmarks/results/{Path(name).with_suffix('.md').name}`).{note}",
        "",
        "| data | model | seeds | " + " | ".join(c[0] for c in GT_COLUMNS) + " |",
        "|---|---|---|" + "---|" * len(GT_COLUMNS),
    ]
    datasets: list[str] = []
    for r in runs:
        d = r["run"]["dataset"]
        if d not in datasets:
            datasets.append(d)
    for d in datasets:
        models: list[str] = []
        for r in runs:
            if r["run"]["dataset"] == d and r["model"] not in models:
                models.append(r["model"])
        for model in models:
            rows = [r for r in runs if r["run"]["dataset"] == d and r["model"] == model]
            cells = [
                _mean_std((get(r, path) for r in rows), digits) for _, path, digits in GT_COLUMNS
            ]
            lines.append(
                f"| {d.removeprefix('gt-')} | {model} | {len(rows)} | " + " | ".join(cells) + " |"
            )
    return [*lines, ""]


def step_cost_section() -> list[str]:
    path = RESULTS / "step_cost_ablation.json"
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    lines = [
        "## What a cheaper consistency step costs in effect",
        "",
        "File: `benchmarks/results/step_cost_ablation.json` (`python "
        "benchmarks/ablate_step_cost.py`; per-seed rows and the command in the `.md` beside it). "
        "The retrofit of the section above with one change to the loss at a time; differences "
        "are retrofit − plain twin on the same seed, means over the seeds (per-seed values in "
        "the `.md`).",
        "",
        "| arch | variant | seeds | Δ mean INV | Δ SCN hybrid | Δ SCN uniform | recon / twin | seeds above twin (INV, hybrid, uniform, recon ≤ 1.1) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, v in data["variants"].items():
        arch, variant = key.split("/", 1)
        d, w, k = v["delta"], v["wins"], v["seeds"]
        lines.append(
            f"| {arch} | {variant} | {k} | {d['inv']:+.4f} | {d['hybrid']:+.3f} | "
            f"{d['uniform']:+.3f} | "
            f"{v['reconstruction_ratio']:.3f} | {w['inv']}/{k}, {w['hybrid']}/{k}, "
            f"{w['uniform']}/{k}, {w['recon_within_10pct']}/{k} |"
        )
    timing = data.get("timing", {})
    if timing:
        lines += [
            "",
            "Step time at batch 128 (the median over alternating rounds of the ratio to the "
            "plain twin's step in the same round, with its quartiles; measured in one run):",
            "",
        ]
        for arch, t in timing.items():
            quart = t.get("ratio_quartiles", {})
            cells = ", ".join(
                f"{k} {t['ratio'][k]:.2f}×"
                + (f" ({quart[k][0]:.2f}–{quart[k][1]:.2f})" if k in quart else "")
                for k in t["ratio"]
                if k != "plain"
            )
            lines.append(
                f"- {arch} ({t['threads']} threads, twin {t['ms']['plain']:.1f} ms): {cells}"
            )
    return [*lines, ""]


def _jsonl(name: str) -> list[dict[str, Any]]:
    path = RESULTS / name
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


VAE_VARIANTS = (
    "VAE",
    "X-VAE",
    "XC-I VAE",
    "VAE, KL warm-up",
    "X-VAE, KL warm-up",
    "XC-I VAE, KL warm-up",
)


def vae_collapse_section() -> list[str]:
    rows = [r for r in _jsonl("vae_collapse.jsonl") if r.get("steps") == 600]
    if not rows:
        return []
    lines = [
        "## The β-VAE's collapsed latents, and the KL warm-up",
        "",
        "File: `benchmarks/results/vae_collapse.jsonl` (`python benchmarks/ablate_vae_collapse.py`; "
        "the table per seed in `vae_collapse.md`). β-VAE, preset S, real MNIST, 600 steps × 64; "
        "a latent is collapsed when its KL on 2,000 test images is below 0.1 nats. SCN is the "
        "`spec` hybrid self-consistency, over every dimension and over the active ones (a "
        "collapsed dimension scores about −1: the response ignores it). The warm-up ramps the KL "
        "weight from 0 over the first 300 steps (`TrainConfig.kl_warmup_steps`). SCN columns "
        "are over the seeds that were scored (the first rows of the file predate the score).",
        "",
        "| variant | seeds with a collapsed latent | SCN hybrid | SCN hybrid, active dims | reconstruction | scored seeds |",
        "|---|---|---|---|---|---|",
    ]
    for v in VAE_VARIANTS:
        mine = [r for r in rows if r["variant"] == v]
        if not mine:
            continue
        scored = [r for r in mine if r.get("scn_hybrid") is not None]
        collapsed = sum(bool(r["collapsed"]) for r in mine)
        lines.append(
            f"| {v} | {collapsed}/{len(mine)} | "
            f"{_mean_std(r['scn_hybrid'] for r in scored)} | "
            f"{_mean_std(r['scn_hybrid_live'] for r in scored)} | "
            f"{_mean_std((r['reconstruction'] for r in mine), 2)} | "
            f"{', '.join(str(r['seed']) for r in scored) or '–'} |"
        )
    lines.append("")
    for suffix, label in (("", "without a warm-up"), (", KL warm-up", "with the KL warm-up")):
        by_seed = {
            v: {r["seed"]: r["scn_hybrid"] for r in rows if r["variant"] == v + suffix
                and r.get("scn_hybrid") is not None}
            for v in ("VAE", "X-VAE", "XC-I VAE")
        }  # fmt: skip
        for model in ("X-VAE", "XC-I VAE"):
            seeds = sorted(set(by_seed[model]) & set(by_seed["VAE"]))
            if seeds:
                wins = sum(by_seed[model][k] > by_seed["VAE"][k] for k in seeds)
                lines.append(
                    f"- {label}: {model} above the plain VAE on {wins}/{len(seeds)} seeds "
                    "(SCN hybrid, all dimensions)"
                )
    return [*lines, ""]


XBLOCK_MODELS = ("AE", "XAE", "CAE-I", "XCAE-I", "CAE-E", "XCAE-E")
XBLOCK_COLUMNS = (
    ("recon", "test_reconstruction", 2),
    ("INV", "spec.mean_invariance", 3),
    ("SCN post.", "spec.self_consistency.posterior", 3),
    ("SCN hybrid", "spec.self_consistency.hybrid", 3),
    ("SCN unif.", "spec.self_consistency.uniform", 3),
    ("train s", "train_seconds", 0),
)


def _xblock_rows() -> dict[str, list[dict[str, Any]]]:
    """Rows per data set (MNIST and the built-in ones) of the six AE-family variants."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name in ("mnist_paper.json", "ground_truth.json"):
        path = RESULTS / name
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        runs = data["runs"] if isinstance(data, dict) else data
        for r in runs:
            if r["model"] not in XBLOCK_MODELS or r.get("config") not in ("default", "gt"):
                continue
            dataset = r["run"].get("dataset", "mnist")
            out.setdefault(dataset.removeprefix("gt-"), []).append(r)
    return out


def xblock_section() -> list[str]:
    by_data = _xblock_rows()
    if not any(r["model"].startswith("CAE") for rows in by_data.values() for r in rows):
        return []
    lines = [
        "## What the XBlock buys",
        "",
        "Files: `benchmarks/results/mnist_paper.json` (`python benchmarks/reproduce_mnist.py "
        "--c-variants`: real MNIST, preset S, 1000 steps × 64, seeds 11, 13, 17) and "
        "`benchmarks/results/ground_truth.json` (`python benchmarks/ground_truth.py --models AE "
        "XAE XCAE-I XCAE-E CAE-I`: 900 steps × 128, seeds 0–2). The same AE, the same budget and "
        "recipe: plain, with the XBlock (X), with the invariance loss (C-I) and with both "
        "(XC-I, XC-E). Without an XBlock the equivariance loss is the invariance loss term by "
        "term (docs/method.md), so CAE-I is also XCAE-E's twin without the block. Training "
        "time is wall clock on the 2-core machine with another run beside it, and the CAE-I "
        "rows were trained in a later session than the rest, under another load: read the "
        "time ratios as rough (`benchmarks/bench_speed.py` times steps in one run).",
        "",
        "| data | model | seeds | " + " | ".join(c[0] for c in XBLOCK_COLUMNS) + " |",
        "|---|---|---|" + "---|" * len(XBLOCK_COLUMNS),
    ]
    sentences = []
    gains: dict[str, tuple[float, float, float]] = {}  # data set: (dINV, dSCN hybrid, time)
    plain_gain: dict[str, float] = {}  # data set: XAE - AE on SCN hybrid
    for dataset, rows in by_data.items():
        means: dict[str, dict[str, float]] = {}
        for model in XBLOCK_MODELS:
            mine = [r for r in rows if r["model"] == model]
            if not mine:
                continue
            cells = [_mean_std((get(r, p) for r in mine), d) for _, p, d in XBLOCK_COLUMNS]
            lines.append(f"| {dataset} | {model} | {len(mine)} | " + " | ".join(cells) + " |")
            means[model] = {
                label: (statistics.median(vals) if label == "train s" else statistics.fmean(vals))
                for label, path, _ in XBLOCK_COLUMNS
                if (vals := [v for v in (get(r, path) for r in mine) if v is not None])
            }
        for loss in ("I", "E"):
            x, c = means.get(f"XCAE-{loss}"), means.get(f"CAE-{loss}", means.get("CAE-I"))
            if x is None or c is None:
                continue
            if loss == "I":
                gains[dataset] = (
                    x["INV"] - c["INV"],
                    x["SCN hybrid"] - c["SCN hybrid"],
                    x["train s"] / c["train s"],
                )
            sentences.append(
                f"{dataset}, {loss}: XCAE-{loss} − CAE-I INV {x['INV'] - c['INV']:+.3f}, SCN "
                f"hybrid {x['SCN hybrid'] - c['SCN hybrid']:+.3f}, uniform "
                f"{x['SCN unif.'] - c['SCN unif.']:+.3f}, reconstruction "
                f"{x['recon'] / c['recon']:.2f}×, median training time {x['train s'] / c['train s']:.2f}×"
            )
        if "XAE" in means and "AE" in means:
            x, a = means["XAE"], means["AE"]
            plain_gain[dataset] = x["SCN hybrid"] - a["SCN hybrid"]
            sentences.append(
                f"{dataset}, no loss: XAE − AE INV {x['INV'] - a['INV']:+.3f}, SCN hybrid "
                f"{x['SCN hybrid'] - a['SCN hybrid']:+.3f}, reconstruction "
                f"{x['recon'] / a['recon']:.2f}×"
            )
    if gains:
        best = max(gains, key=lambda d: gains[d][1])
        worst = min(gains, key=lambda d: gains[d][1])
        lines += [
            "",
            f"**In one line:** with the invariance loss, adding the XBlock changes the hybrid "
            f"self-consistency by {gains[worst][1]:+.3f} ({worst}) to {gains[best][1]:+.3f} "
            f"({best}) and the mean INV by {min(g[0] for g in gains.values()):+.3f} to "
            f"{max(g[0] for g in gains.values()):+.3f} across the {len(gains)} data sets, for "
            f"{min(g[2] for g in gains.values()):.2f}–{max(g[2] for g in gains.values()):.2f}× the "
            "training time; without the loss (XAE against AE) the hybrid self-consistency moves "
            f"by at most {max((abs(v) for v in plain_gain.values()), default=0.0):.3f}. What the "
            "gates learn: the two sections below.",
        ]
    lines += [
        "",
        "What the XBlock adds, with the loss and without it (differences of the means over "
        "seeds; a positive INV / SCN difference is the XBlock's gain; reconstruction and time "
        "as ratios, time of the medians): " + "; ".join(sentences) + ".",
        "",
    ]
    return lines


def included(name: str, title: str, blurb: str) -> list[str]:
    """A benchmark's own Markdown table (written by its script from its JSON lines), under a
    section of this page; its first heading is replaced by ``title``."""
    path = RESULTS / name
    if not path.exists():
        return []
    body = path.read_text().splitlines()
    if body and body[0].startswith("# "):
        body = body[1:]
    return [f"## {title}", "", f"File: `benchmarks/results/{name}`. {blurb}", *body, ""]


def render() -> str:
    lines = [
        "# Results",
        "",
        "Generated by `python docs/make_results.py` from the JSON files in "
        "`benchmarks/results/`; do not edit by hand. Mean ± standard deviation over seeds; "
        "consistency scores in the `spec` convention (docs/method.md), reconstruction as the "
        "squared error summed over pixels per image. Each section names its file and command; "
        "the Markdown file beside each JSON file has the per-seed rows and the set-up.",
        "",
    ]
    lines += retrofit_section()
    lines += paper_section()
    lines += runs_table(
        "mnist_reduced.json",
        "The paper's MNIST models (reduced budget, earlier)",
        "Preset S, 1500 steps, `Recipe()` as it was when the file was made: 32 prior samples "
        "per step (now 16) and X models whose decoder init differed from their plain twin's "
        '(docs/method.md, "Deviations"); superseded by the section above.',
    )
    lines += step_cost_section()
    lines += included(
        "step_cost_floor.md",
        "Where a retrofit's step spends its time",
        "Written by `benchmarks/step_cost_floor.py` from `step_cost_floor.jsonl`: the default "
        "consistency term written out in plain torch beside the library's, and what each part "
        "of it costs.",
    )
    lines += vae_collapse_section()
    for family, blurb in (
        ("VAE", "The β-VAE family: the KL warm-up alone, and the loss ramped with it."),
        ("AVAE", "The AVAE family: which warm-up keeps XCAVAE-I above the plain AVAE."),
    ):
        lines += included(
            f"kl_warmup_{family}.md",
            f"The {family} family and the KL warm-up",
            f"Written by `benchmarks/ablate_kl_warmup.py --family {family}` from "
            f"`mnist_paper.jsonl`. {blurb}",
        )
    lines += xblock_section()
    lines += included(
        "gate_sparsity.md",
        "Gates on independent factors (the shapes)",
        "Written by `benchmarks/ablate_gate_sparsity.py` from `results/gate_sparsity/*.jsonl`.",
    )
    lines += included(
        "paired_graphs.md",
        "Graphs from paired interventions",
        "Written by `benchmarks/paired_graphs.py` from `paired_graphs.jsonl`.",
    )
    lines += included(
        "paired_graphs_independence.md",
        "Graphs from paired interventions, with the independence term",
        "Written by `benchmarks/paired_graphs.py --independence 1 --gate-sparsity 0 --name "
        "paired_graphs_independence` from `paired_graphs_independence.jsonl`: the term that "
        'identifies the graph in principle (docs/method.md, "Paired interventions").',
    )
    lines += ground_truth_section("ground_truth.json", "Data with known causes")
    lines += runs_table(
        "ablation.json",
        "The recipe ablation (300 steps)",
        "Each row drops one choice of the working recipe (or is the recipe as it first landed).",
    )
    lines += runs_table(
        "rows_curve.json",
        "Prior samples per step: cost against effect",
        "XCAE-I with 32 and 16 of the batch's 64 rows as prior samples of the consistency term.",
    )
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail when docs/results.md is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUT.read_text() if OUT.exists() else ""
        if current != text:
            print("docs/results.md is stale: run python docs/make_results.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
