"""Train one of the paper's models on MNIST (default: XCAE-I, preset S), then evaluate it.

    python examples/mnist_xcae.py                       # minutes on a laptop CPU
    python examples/mnist_xcae.py --steps 100000 --anneal-tau --warmup-steps 10000   # the paper's settings
    python examples/mnist_xcae.py --family VAE --variant XC-E --preset S4 --data-root /path/to/data
    python examples/mnist_xcae.py --dataset scene     # the embedded causal scene instead: no download

MNIST is read from DATA_ROOT/MNIST/raw/ (or DATA_ROOT itself) as the four IDX files, raw or .gz;
missing files are downloaded when possible. The run folder gets checkpoint.pt, report.json,
report.txt and the figures; Ctrl-C saves a checkpoint and --resume continues from it.
"""

from __future__ import annotations

import argparse

from _cli import (
    HelpFormatter,
    add_arguments,
    config_from_args,
    model_from_args,
    run_cli,
    summary,
)

from consistency.data import SceneDataset, mnist
from consistency.train import train


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    add_arguments(parser, preset="S", steps=500, out="runs/mnist_xcae")
    parser.add_argument(
        "--dataset",
        default="mnist",
        choices=["mnist", "scene"],
        help="training data: MNIST, or the embedded causal scene (no download)",
    )
    args = parser.parse_args(argv)
    if args.dataset == "scene":
        train_set, test_set = (
            SceneDataset(60_000, seed=args.seed),
            SceneDataset(10_000, seed=args.seed + 1),
        )
    else:
        train_set, test_set = mnist(args.data_root, "train"), mnist(args.data_root, "test")
    if args.train_size:
        train_set = train_set.subset(args.train_size)
    model = model_from_args(args)
    result = train(model, train_set, config_from_args(args), test_set=test_set, resume=args.resume)
    print(summary(result))


if __name__ == "__main__":
    run_cli(main)
