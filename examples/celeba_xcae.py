"""Train one of the paper's models on CelebA (default: XCAE-I, preset v32, 128×128), then evaluate it.

    python examples/celeba_xcae.py --data-root /path/to/celeba-parent
    python examples/celeba_xcae.py --steps 200000 --anneal-tau --warmup-steps 10000   # the paper's settings

CelebA is read from the aligned-and-cropped layout: DATA_ROOT/img_align_celeba/*.jpg and
DATA_ROOT/list_eval_partition.txt (also under DATA_ROOT/celeba/). It is not downloaded.
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

from consistency.data import celeba
from consistency.train import train


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    add_arguments(parser, preset="v32", steps=200, out="runs/celeba_xcae")
    parser.add_argument("--size", type=int, default=128, help="image side (the presets expect 128)")
    args = parser.parse_args(argv)
    train_set = celeba(args.data_root, "train", size=args.size)
    test_set = celeba(args.data_root, "test", size=args.size)
    model = model_from_args(args)
    result = train(model, train_set, config_from_args(args), test_set=test_set, resume=args.resume)
    print(summary(result))


if __name__ == "__main__":
    run_cli(main)
