"""The ``consistency`` command (optional layer: models, data, training, plots).

    consistency evaluate runs/mnist_xcae/checkpoint.pt --data mnist
    consistency evaluate --model mypackage.models:build --data scene --out runs/mine
    consistency evaluate --model mypackage.models:build --data my_images/ --channels 1
    consistency compare runs/a runs/b --json table.json
    consistency quickstart --steps 300

``evaluate`` scores a checkpoint written by :func:`consistency.train.train` (or a model returned
by ``--model package.module:factory``: an ``nn.Module`` with ``.encoder`` / ``.decoder`` or a
:class:`~consistency.ResponseModel`) on a built-in data set, an IDX file of images or a folder
of image files, and writes ``report.json`` /
``report.txt``, ``self_consistency.json``, the figures, and, where the data set knows its
causes, ``ground_truth.json`` (IRS, MIG, DCI). ``compare`` reads the ``report.json`` of several
run folders into one table (markdown on stdout, JSON with ``--json``). ``quickstart`` trains an
AE and an XCAE-I on the built-in causal scene and compares them. A user error prints one line
and exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .errors import ConsistencyError, InvalidValueError, MissingFileError

__all__ = ["main"]

DATASETS = ("mnist", "scene", "pendulum", "shapes")
MODES = ("posterior", "hybrid", "uniform")


class _Help(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The docstring as written, and every flag's default in ``--help``."""


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def _load_data(
    name: str,
    root: str | None,
    count: int,
    seed: int,
    *,
    channels: int | None = None,
    size: int | None = None,
) -> tuple[Any, Any]:
    """``(images (N, C, H, W) in [0, 1], factors (N, F) or None)``: a built-in data set's test
    split, an IDX file of images, or a folder of image files."""  # fmt: skip
    from . import data

    if name in DATASETS:
        if name == "mnist":
            return data.mnist(root, "test").images[:count], None
        source = {"scene": data.CausalScene, "pendulum": data.Pendulum, "shapes": data.Shapes}[name]
        return source(seed=seed + 1).sample(count)
    path = Path(name)
    if not path.exists():
        raise MissingFileError(
            f"--data must be one of {', '.join(DATASETS)}, an IDX file or an image folder; "
            f"{name!r} is none of them (no such file or folder)"
        )
    if path.is_dir():
        return _image_folder(path, count, channels, size), None
    array = torch.from_numpy(data.read_idx(path).copy())
    if array.ndim == 3:  # (N, H, W)
        array = array[:, None]
    elif array.ndim == 4 and array.shape[-1] in (1, 3, 4):  # (N, H, W, C)
        array = array.permute(0, 3, 1, 2)
    else:
        raise InvalidValueError(
            f"{path}: an IDX file of images has shape (N, H, W) or (N, H, W, C); got "
            f"{tuple(array.shape)}"
        )
    images = array[:count].float()
    return (images / 255.0 if array.dtype == torch.uint8 else images), None


def _image_folder(path: Path, count: int, channels: int | None, size: int | None) -> Any:
    """The first ``count`` image files of a folder (sorted by name) as ``(N, C, H, W)``."""
    try:
        import numpy as np
        from PIL import Image
    except ImportError as err:  # pragma: no cover - pillow missing
        raise InvalidValueError("an image folder needs pillow: pip install pillow") from err
    files = sorted(f for f in path.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)[:count]
    if not files:
        raise MissingFileError(f"{path} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    mode = {None: None, 1: "L", 3: "RGB"}.get(channels, "invalid")
    if mode == "invalid":
        raise InvalidValueError(f"--channels must be 1 or 3; got {channels}")
    arrays = []
    for f in files:
        with Image.open(f) as img:
            img = img.convert(mode or ("L" if img.mode in ("L", "1", "I", "I;16") else "RGB"))
            if size is not None:
                img = img.resize((size, size))
            arrays.append(np.asarray(img, dtype=np.float32) / 255.0)
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise InvalidValueError(
            f"the images in {path} have different sizes {sorted(shapes)[:3]}; pass --image-size "
            "to resize them all"
        )
    stacked = torch.from_numpy(np.stack(arrays))
    return stacked[:, None] if stacked.ndim == 3 else stacked.permute(0, 3, 1, 2)


def _model_from_checkpoint(path: Path) -> Any:
    from .models import build_model
    from .train import load_checkpoint, load_model_state

    ckpt = load_checkpoint(path, map_location="cpu")
    spec = ckpt.get("model_spec")
    if not isinstance(spec, dict):
        raise InvalidValueError(
            f"{path} has no model_spec (family, preset, variant): it was not written by "
            "consistency.train.train; pass --model package.module:factory instead"
        )
    model = build_model(spec["family"], spec["preset"], spec["variant"])
    load_model_state(model, ckpt["model"], source=f"checkpoint {path}")
    return model


def _model_from_factory(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise InvalidValueError(f"--model must be package.module:factory; got {target!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise InvalidValueError(f"--model: cannot import {module_name!r} ({err})") from err
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise InvalidValueError(f"--model: {module_name} has no callable {attr!r}")
    return factory()


def _finite(v: float | None) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _evaluate(args: argparse.Namespace) -> int:
    from . import ConsistencyMetric

    if (args.checkpoint is None) == (args.model is None):
        raise InvalidValueError("evaluate needs a CHECKPOINT or --model package.module:factory")
    path: Path | None = None
    if args.checkpoint is not None:
        path = Path(args.checkpoint)
        if path.is_dir():
            path = path / "checkpoint.pt"
        if not path.exists():
            raise MissingFileError(f"no checkpoint at {path}")
    if path is not None:
        model = _model_from_checkpoint(path)
        out = Path(args.out) if args.out else path.parent / "evaluation"
    else:
        model = _model_from_factory(args.model)
        out = Path(args.out) if args.out else Path("runs") / "evaluation"
    images, factors = _load_data(
        args.data, args.data_root, args.eval_data, args.seed, channels=args.channels,
        size=args.image_size,
    )  # fmt: skip
    torch.manual_seed(args.seed)
    metric = ConsistencyMetric(
        model,
        capacity=max(2, images.shape[0]),
        n_samples=args.samples,
        n_interventions=args.interventions,
        convention=args.convention,
        seed=args.seed,
    )
    for chunk in images.split(256):
        metric.update(chunk)
    result = metric.compute()
    out.mkdir(parents=True, exist_ok=True)
    result.report.save(out)
    summary: dict[str, Any] = {
        "reconstruction": result.reconstruction,
        "images": result.images,
        "mean_invariance": _finite(result.report.mean_invariance),
        "mean_equivariance": _finite(result.report.mean_equivariance),
        "self_consistency": {m: _finite(v) for m, v in result.self_consistency.means().items()},
        "convention": args.convention,
        "data": args.data,
    }
    (out / "self_consistency.json").write_text(json.dumps(summary, indent=2))
    lines = [str(result.report), "self-consistency by mode:", str(result.self_consistency)]
    lines.append(f"reconstruction (sum of squares per image): {result.reconstruction:.3f}")
    if factors is not None:
        from .metrics import ground_truth_scores

        with metric.model.evaluation():
            gt = ground_truth_scores(metric.model.means, factors, images=images, factor_bins=20)
        scores = {k: _finite(v) for k, v in gt.summary().items()}
        (out / "ground_truth.json").write_text(json.dumps(scores, indent=2))
        lines.append(
            "ground truth: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items() if v is not None)
        )
    if not args.no_figures:
        try:
            from . import plots
        except ImportError:
            lines.append("(no figures: matplotlib is not installed)")
        else:
            evaluator = metric.evaluator()
            plots.save_report_figures(result.report, out)
            plots.save_figures(evaluator, out, images=images[:8])
    lines.append(f"written to {out}")
    print("\n".join(lines))
    return 0


def _compare(args: argparse.Namespace) -> int:
    rows = []
    for run in args.runs:
        folder = Path(run)
        report_path = folder / "report.json"
        if not report_path.exists():
            evaluation = folder / "evaluation" / "report.json"
            report_path = evaluation if evaluation.exists() else report_path
        if not report_path.exists():
            raise MissingFileError(
                f"{folder} has no report.json (train with evaluation, or run "
                f"`consistency evaluate {folder}` first)"
            )
        report = json.loads(report_path.read_text())
        extra_path = report_path.parent / "self_consistency.json"
        extra = json.loads(extra_path.read_text()) if extra_path.exists() else {}
        rows.append(
            {
                "run": str(folder),
                "mode": report.get("mode"),
                "convention": report.get("convention"),
                "mean_invariance": report.get("mean_invariance"),
                "mean_equivariance": report.get("mean_equivariance"),
                "mean_self_consistency": report.get("mean_self_consistency"),
                "mmd_hybrid": report.get("mmd_hybrid"),
                "edge_density": report.get("edge_density"),
                "gate_confidence": report.get("gate_confidence"),
                "reconstruction": extra.get("reconstruction"),
                **{f"scn_{m}": (extra.get("self_consistency") or {}).get(m) for m in MODES},
            }
        )
    columns = [k for k in rows[0] if k != "run"]

    def cell(v: Any) -> str:
        return "—" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))

    lines = [
        "| run | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 1) + "|",
        *("| " + " | ".join([r["run"], *(cell(r[c]) for c in columns)]) + " |" for r in rows),
    ]
    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


def _quickstart(args: argparse.Namespace) -> int:
    from .data import SceneDataset
    from .models import build_model
    from .train import TrainConfig, train

    out = Path(args.out)
    runs = []
    for family, variant, name in (("AE", "plain", "AE"), ("AE", "XC-I", "XCAE-I")):
        torch.manual_seed(args.seed)
        model = build_model(family, "scene", variant)
        config = TrainConfig(
            steps=args.steps, batch_size=64, lr=1e-3, seed=args.seed, out=str(out / name),
            eval_data=1000, eval_samples=300, eval_interventions=5, progress=not args.no_progress,
            figures=not args.no_figures,
        )  # fmt: skip
        result = train(
            model,
            SceneDataset(10_000, seed=args.seed),
            config,
            test_set=SceneDataset(1000, seed=args.seed + 1),
        )
        summary = {
            "reconstruction": result.test_reconstruction,
            "self_consistency": (
                result.self_consistency.means() if result.self_consistency is not None else {}
            ),
        }
        (out / name / "self_consistency.json").write_text(json.dumps(summary, indent=2))
        runs.append(str(out / name))
    return _compare(argparse.Namespace(runs=runs, json=str(out / "compare.json")))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="consistency", description=__doc__, formatter_class=_Help)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ev = sub.add_parser(
        "evaluate",
        help="score a trained model on a built-in data set, an IDX file or an image folder",
        description="Score a checkpoint of consistency.train (or --model package.module:factory) "
        "on a built-in data set, an IDX file of images or a folder of image files; writes the report, the self-consistency table, figures and, "
        "where the data knows its causes, the ground-truth scores.",
        formatter_class=_Help,
    )
    ev.add_argument("checkpoint", nargs="?", default=None, help="checkpoint.pt or its run folder")
    ev.add_argument("--model", default=None, help="package.module:factory returning the model")
    ev.add_argument(
        "--data",
        default="mnist",
        help=f"test data: {', '.join(DATASETS)}, an IDX file of images, or a folder of image "
        "files (PNG, JPEG, ...; sorted by name)",
    )
    ev.add_argument(
        "--channels",
        type=int,
        default=None,
        choices=(1, 3),
        help="image folder: read as grey (1) or RGB (3) (default: as the files are)",
    )
    ev.add_argument(
        "--image-size", type=int, default=None, help="image folder: resize to SIZE x SIZE"
    )
    ev.add_argument("--data-root", default=None, help="folder with the MNIST files")
    ev.add_argument("--eval-data", type=int, default=2000, help="test images")
    ev.add_argument(
        "--samples", type=int, default=None, help="prior samples (None: the convention's)"
    )
    ev.add_argument("--interventions", type=int, default=None, help="interventions per dimension")
    ev.add_argument("--convention", default="spec", choices=("spec", "authors"), help="score forms")
    ev.add_argument("--seed", type=int, default=0, help="seeds the scores' random draws")
    ev.add_argument("--out", default=None, help="output folder (default: RUN/evaluation)")
    ev.add_argument("--no-figures", action="store_true", help="no figures")
    ev.set_defaults(run=_evaluate)
    cmp = sub.add_parser(
        "compare",
        help="one table of several runs",
        description="One table of several run folders' report.json (markdown on stdout).",
        formatter_class=_Help,
    )
    cmp.add_argument("runs", nargs="+", help="run folders")
    cmp.add_argument("--json", default=None, help="also write the table as JSON here")
    cmp.set_defaults(run=_compare)
    qs = sub.add_parser(
        "quickstart",
        help="AE vs XCAE-I on the built-in causal scene",
        description="Train an AE and an XCAE-I on the built-in causal scene and compare them.",
        formatter_class=_Help,
    )
    qs.add_argument("--steps", type=int, default=300, help="training steps per model")
    qs.add_argument("--seed", type=int, default=0, help="seeds everything")
    qs.add_argument("--out", default="runs/quickstart", help="output folder")
    qs.add_argument("--no-progress", action="store_true", help="no progress bar")
    qs.add_argument("--no-figures", action="store_true", help="no figures")
    qs.set_defaults(run=_quickstart)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``consistency`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (ConsistencyError, FileNotFoundError, NotADirectoryError, PermissionError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
