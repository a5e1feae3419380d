"""Command-line flags shared by the example scripts (application code, not the library).

``add_arguments`` adds the flags, ``config_from_args`` / ``model_from_args`` turn them into a
:class:`~consistency.train.TrainConfig` and a paper model, ``summary`` prints what a person reads
at the end of a run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from consistency.errors import ConsistencyError
from consistency.models import PRESETS, PaperModel, build_model
from consistency.train import TAU_SCHEDULES, TrainConfig, TrainResult, set_seed

__all__ = [
    "FULL_EVAL_FROM_STEPS",
    "QUICK_EVAL",
    "HelpFormatter",
    "add_arguments",
    "config_from_args",
    "eval_is_quick",
    "model_from_args",
    "run_cli",
    "summary",
]

QUICK_EVAL = (200, 3, 1000)  # --quick-eval: prior samples T, interventions K, test images
FULL_EVAL_FROM_STEPS = 2000  # runs this long get the library's full evaluation by default


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The script's docstring as written, and every flag's default in ``--help``."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if (
            action.option_strings
            and action.default is not argparse.SUPPRESS
            and action.nargs != 0  # flags (store_true / store_const) have no value to show
            and "%(default)" not in text
        ):
            text += " (default: %(default)s)"
        return text


def run_cli(main: Callable[[], object]) -> None:
    """Run an example's ``main``: a user error (a :class:`~consistency.ConsistencyError`, e.g. a
    missing data file or an unwritable ``--out``) is printed as one line and exits with status
    2, not as a traceback."""
    try:
        main()
    except ConsistencyError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def add_arguments(parser: Any, *, preset: str, steps: int, out: str) -> None:
    """The command-line flags the example scripts share (defaults finish in minutes on a CPU;
    ``--steps 100000`` and ``--anneal-tau --warmup-steps 10000`` give the paper's settings)."""
    parser.add_argument(
        "--family", default="AE", choices=["AE", "VAE", "SAE", "AVAE"], help="model family"
    )
    parser.add_argument(
        "--preset", default=preset, choices=list(PRESETS), help="architecture (docs/method.md)"
    )
    parser.add_argument(
        "--variant",
        default="XC-I",
        choices=["plain", "X", "XC-I", "XC-E", "C-I", "C-E"],
        help="plain, with an XBlock (X), consistency-trained (XC-I / XC-E), or consistency-"
        "trained without the XBlock (C-I / C-E)",
    )
    parser.add_argument("--steps", type=int, default=steps, help="training steps")
    parser.add_argument("--batch-size", type=int, default=128, help="images per step")
    parser.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate")
    parser.add_argument("--beta", type=float, default=1.0, help="β of VAE / AVAE")
    parser.add_argument(
        "--lambda", dest="consistency_weight", type=float, default=4.0, help="consistency weight λ"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=11,
        help="seeds everything: the model's initial weights, the data order, interventions",
    )
    parser.add_argument(
        "--data-root",
        default=None,
        help="folder with the data files (default $CONSISTENCY_DATA_DIR or ~/.cache/consistency/data)",
    )
    parser.add_argument(
        "--train-size", type=int, default=None, help="use only the first N training images"
    )
    parser.add_argument("--device", default=None, help="cuda / cpu (default: cuda when available)")
    parser.add_argument("--out", default=out, help="run folder (checkpoints, report, figures)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast")
    parser.add_argument("--compile", action="store_true", help="torch.compile encoder and decoder")
    parser.add_argument(
        "--tau-schedule",
        default="anneal",
        choices=TAU_SCHEDULES,
        help="XBlock gate temperature: geometric from --tau-start to --tau-end over the run "
        "(anneal), the authors' exp(-0.01 step) floored at 0.01, or constant",
    )
    parser.add_argument("--tau-start", type=float, default=1.0, help="τ at the first step")
    parser.add_argument("--tau-end", type=float, default=0.2, help="τ at the last step")
    parser.add_argument(
        "--anneal-tau",
        action="store_const",
        const="authors",
        dest="tau_schedule",
        help="same as --tau-schedule authors",
    )
    parser.add_argument(
        "--warmup-steps",
        type=int,
        default=TrainConfig.warmup_steps,
        help="linear λ warm-up (default: the KL warm-up's length for the β-VAE, none "
        "otherwise; the authors: 10000)",
    )
    parser.add_argument(
        "--kl-warmup-steps",
        type=int,
        default=TrainConfig.kl_warmup_steps,
        help="β-VAE: the KL weight ramps from 0 over this many steps (the paper: 0)",
    )
    parser.add_argument(
        "--gate-lr-scale",
        type=float,
        default=TrainConfig.gate_lr_scale,
        help="learning-rate multiplier of the XBlock's gate logits",
    )
    parser.add_argument(
        "--checkpoint-every", type=int, default=1000, help="checkpoint every N steps (0: off)"
    )
    parser.add_argument(
        "--checkpoint-seconds",
        type=float,
        default=120.0,
        help="also checkpoint when this many seconds passed since the last one (0: off)",
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        default=None,
        help="stop training after this many seconds (checkpoint saved; --resume continues)",
    )
    parser.add_argument(
        "--eval-samples", type=int, default=None, help="prior samples T of the evaluation"
    )
    parser.add_argument("--eval-data", type=int, default=None, help="test images evaluated")
    parser.add_argument(
        "--eval-interventions", type=int, default=None, help="interventions K per dimension"
    )
    parser.add_argument(
        "--eval",
        choices=["auto", "quick", "full"],
        default="auto",
        help=f"end-of-run evaluation budget: quick (T, K, test images = {QUICK_EVAL}), full "
        f"(the library's: 1000, 10, 10000), or auto: quick below {FULL_EVAL_FROM_STEPS} "
        "training steps, full from there (explicit --eval-* flags win)",
    )
    parser.add_argument(
        "--quick-eval",
        action="store_const",
        const="quick",
        dest="eval",
        help="same as --eval quick",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--no-figures", action="store_true", help="no figures in --out")


def _pick(given: int | None, quick: bool, index: int, default: int) -> int:
    if given is not None:
        return given
    return QUICK_EVAL[index] if quick else default


def eval_is_quick(args: Any) -> bool:
    """Whether the flags of :func:`add_arguments` ask for the quick evaluation budget."""
    return args.eval == "quick" or (args.eval == "auto" and args.steps < FULL_EVAL_FROM_STEPS)


def config_from_args(args: Any) -> TrainConfig:
    """A :class:`TrainConfig` from the flags of :func:`add_arguments` (an explicit ``--eval-*``
    flag wins over ``--quick-eval``, which wins over the library's defaults)."""
    full = TrainConfig()
    quick = eval_is_quick(args)
    return TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        device=args.device,
        amp=args.amp,
        compile=args.compile,
        tau_schedule=args.tau_schedule,
        tau_start=args.tau_start,
        tau_end=args.tau_end,
        warmup_steps=args.warmup_steps,
        kl_warmup_steps=args.kl_warmup_steps,
        gate_lr_scale=args.gate_lr_scale,
        checkpoint_every=args.checkpoint_every,
        checkpoint_seconds=args.checkpoint_seconds,
        time_limit=args.time_limit,
        out=args.out,
        eval_samples=_pick(args.eval_samples, quick, 0, full.eval_samples),
        eval_interventions=_pick(args.eval_interventions, quick, 1, full.eval_interventions),
        eval_data=_pick(args.eval_data, quick, 2, full.eval_data),
        progress=not args.no_progress,
        figures=not args.no_figures,
    )


def model_from_args(args: Any) -> PaperModel:
    """The model the flags of :func:`add_arguments` describe, its initial weights seeded with
    ``--seed`` (the same command builds the same model)."""
    set_seed(args.seed)
    return build_model(
        args.family,
        args.preset,
        args.variant,
        beta=args.beta,
        consistency_weight=args.consistency_weight,
    )


def summary(result: TrainResult) -> str:
    """A few lines a person reads at the end of a run."""
    lines = [f"steps: {result.steps}   output: {result.out}"]
    if result.seconds is not None and result.eval_seconds is not None:
        total = result.seconds + result.eval_seconds
        lines.append(
            f"wall time: training {result.seconds:.1f} s, evaluation {result.eval_seconds:.1f} s "
            f"({100 * result.eval_seconds / total:.0f} % of {total:.1f} s)"
        )
    if result.test_reconstruction is not None:
        lines.append(
            f"test reconstruction error (sum of squares per image): {result.test_reconstruction:.3f}"
        )
    if result.self_consistency is not None:
        lines.append("self-consistency by sampling mode:\n" + str(result.self_consistency))
    if result.report is not None:
        lines.append(str(result.report))
    return "\n".join(lines)
