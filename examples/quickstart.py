"""Quickstart, no download needed: AE vs XCAE-I on an embedded causal scene with known ground truth.

Trains a plain autoencoder and one with an XBlock and invariance training (XCAE-I) on the
pendulum-light-shadow scene of ``consistency.data.synthetic`` (5 factors, a known DAG with
chains and colliders), each for a couple of minutes on a CPU, then prints side by side:
reconstruction error, mean off-diagonal invariance, self-consistency under the three sampling
modes, noise-independence MMD, latent-factor correlation, the data-side invariance, and the
learned graph beside the true one with its structural Hamming distance. Pictures go to
``--out`` (default ``runs/quickstart``).

    python examples/quickstart.py [--steps 900] [--seed 0] [--device cuda]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

from consistency.data import SceneDataset
from consistency.metrics import compare_graphs, data_invariance, match_latents, random_dag_shd
from consistency.models import build_model
from consistency.train import TrainConfig, resolve_device, train

MODELS = (("AE", "plain"), ("XCAE-I", "XC-I"))


class _Help(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The docstring as written, and every flag's default in --help."""


def fmt(v: float | None, digits: int = 3) -> str:
    return "—" if v is None or v != v else f"{v:.{digits}f}"


def graph_str(adj: torch.Tensor, names: tuple[str, ...]) -> list[str]:
    edges = [
        f"{names[j]}→{names[i]}"
        for j in range(adj.shape[0])
        for i in range(adj.shape[1])
        if adj[j, i] > 0.5
    ]
    return edges or ["(no edges)"]


def main(argv: list[str] | None = None) -> dict[str, dict[str, float | None]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=_Help)
    parser.add_argument("--steps", type=int, default=900, help="training steps per model")
    parser.add_argument("--train-size", type=int, default=20_000, help="training images")
    parser.add_argument("--test-size", type=int, default=2_000, help="test images")
    parser.add_argument("--batch-size", type=int, default=128, help="images per step")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seeds the model's initial weights, the data order and the interventions",
    )
    parser.add_argument(
        "--eval-samples", type=int, default=500, help="prior samples T of the evaluation"
    )
    parser.add_argument(
        "--eval-interventions", type=int, default=10, help="interventions K per dimension"
    )
    parser.add_argument("--device", default=None, help="cuda / cpu (default: cuda when available)")
    parser.add_argument("--out", default="runs/quickstart", help="output folder")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--no-figures", action="store_true", help="no figures")
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    train_set = SceneDataset(args.train_size, seed=args.seed)
    test_set = SceneDataset(args.test_size, seed=args.seed + 1)
    scene = test_set.scene
    names = scene.names
    rows: dict[str, dict[str, float | None]] = {}
    graphs: dict[str, list[str]] = {}
    timings: dict[str, float] = {}
    eval_share: dict[str, float] = {}
    for label, variant in MODELS:
        torch.manual_seed(args.seed)
        model = build_model("AE", "scene", variant)
        config = TrainConfig(
            steps=args.steps,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
            device=str(device),
            tau_schedule="anneal",
            checkpoint_every=0,
            out=str(Path(args.out) / label),
            eval_samples=args.eval_samples,
            eval_interventions=args.eval_interventions,
            eval_data=args.test_size,
            progress=not args.no_progress,
            figures=not args.no_figures,
        )
        t0 = time.perf_counter()
        result = train(model, train_set, config, test_set=test_set)
        timings[label] = time.perf_counter() - t0
        if result.eval_seconds is not None:
            eval_share[label] = result.eval_seconds / timings[label]
        model.eval()
        with torch.no_grad():
            means = torch.cat([model.means(x.to(device)).cpu() for x in test_set.images.split(512)])
        matching = match_latents(means, test_set.factors)
        data_inv = data_invariance(model.means, scene, matching, device=device)
        report, scn = result.report, result.self_consistency
        if report is None or scn is None:  # interrupted with Ctrl-C: the checkpoint is saved
            return rows
        row: dict[str, float | None] = {
            "reconstruction error": result.test_reconstruction,
            "mean off-diag invariance": report.mean_invariance,
            **{f"self-consistency ({m})": v for m, v in scn.means().items()},
            "noise MMD² (hybrid)": report.mmd_hybrid,
            "matched |corr| latent-factor": matching.mean_correlation,
            "data-side invariance": data_inv.mean_non_descendant,
            "edge density": report.edge_density,
            "gate confidence": report.gate_confidence,
            "gate logit movement": None,
            "SHD vs true graph": None,
            "random DAGs' SHD (median)": None,
            "P(random SHD <= learned)": None,
            "edge precision": None,
            "edge recall": None,
        }
        if model.xblock is not None:
            comparison = compare_graphs(
                model.xblock.adjacency(),
                scene.graph,
                matching,
                confidence=model.xblock.gate_confidence(),
            )
            chance = random_dag_shd(
                scene.graph,
                int(comparison.mapped.sum()),
                generator=torch.Generator().manual_seed(args.seed),
            )
            row.update(
                {
                    "gate logit movement": model.xblock.gate_movement().mean_shift,
                    "SHD vs true graph": float(comparison.shd),
                    "random DAGs' SHD (median)": chance.quantiles((0.5,))[0],
                    "P(random SHD <= learned)": chance.share_at_most(comparison.shd),
                    "edge precision": comparison.precision,
                    "edge recall": comparison.recall,
                }
            )
            graphs[label] = graph_str(comparison.mapped, names)
            if not args.no_figures:
                fig = _graph_figure(comparison.mapped, scene.graph, names)
                fig.savefig(Path(args.out) / label / "graph_learned_vs_true.png", dpi=110)
        rows[label] = row

    labels = [label for label, _ in MODELS]
    width = max(len(k) for k in next(iter(rows.values())))
    print()
    print(f"{'':{width}}  " + "  ".join(f"{lab:>9s}" for lab in labels))
    for key in rows[labels[0]]:
        print(f"{key:{width}}  " + "  ".join(f"{fmt(rows[lab][key]):>9s}" for lab in labels))
    print(f"{'wall time (s)':{width}}  " + "  ".join(f"{timings[lab]:9.1f}" for lab in labels))
    if eval_share:
        print(
            f"{'of which evaluation':{width}}  "
            + "  ".join(f"{100 * eval_share.get(lab, math.nan):8.0f}%" for lab in labels)
        )
    print()
    print("true graph:    " + ", ".join(graph_str(scene.graph, names)))
    for label, edges in graphs.items():
        conf = rows[label]["gate confidence"]
        note = "  (gates undecided: read with care)" if conf is not None and conf < 0.5 else ""
        print(f"{label} learned: " + ", ".join(edges) + note)
    print(f"\nreports and pictures: {args.out}/<model>/")
    return rows


def _graph_figure(learned: torch.Tensor, true: torch.Tensor, names: tuple[str, ...]):  # type: ignore[no-untyped-def]
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.6))
    short = [n.replace("shadow_", "sh.") for n in names]
    for ax, mat, title in (
        (axes[0], learned, "learned (mapped to factors)"),
        (axes[1], true, "true"),
    ):
        ax.imshow(mat.numpy(), vmin=0, vmax=1, cmap="Greys")
        ax.set(
            title=title,
            xticks=range(len(names)),
            yticks=range(len(names)),
            xlabel="child",
            ylabel="parent",
        )
        ax.set_xticklabels(short, rotation=45, fontsize=7)
        ax.set_yticklabels(short, fontsize=7)
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    main()
