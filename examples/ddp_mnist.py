"""Train one of the paper's models on several processes (DistributedDataParallel), then evaluate.

    torchrun --nproc_per_node=2 examples/ddp_mnist.py                      # 2 CPU processes (gloo)
    torchrun --nproc_per_node=4 examples/ddp_mnist.py --device cuda        # 4 GPUs (nccl)
    torchrun --nproc_per_node=2 examples/ddp_mnist.py --dataset scene --steps 200

The options are those of ``examples/mnist_xcae.py``; ``--batch-size`` is per process (the global
batch is N times larger). ``consistency.train.train`` does the distributed part: each rank trains
on its own slice of every global batch under DDP, draws its own interventions (the RNG is
reseeded per step from the seed, the step and the rank), the aggregate posterior gathers every
rank's means, rank 0 alone writes the checkpoint, history and report (``--resume`` continues
from them on every rank), and every rank evaluates its share of the test set and gets the same,
synchronised scores. Only rank 0 prints.
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.distributed as dist
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
    add_arguments(parser, preset="S", steps=500, out="runs/ddp_mnist")
    parser.add_argument("--dataset", default="mnist", choices=["mnist", "scene"])
    args = parser.parse_args(argv)
    if "RANK" not in os.environ:
        parser.error("launch with torchrun, e.g. torchrun --nproc_per_node=2 examples/ddp_mnist.py")
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    cuda = args.device is not None and args.device.startswith("cuda")
    if cuda:
        torch.cuda.set_device(local_rank)
        args.device = f"cuda:{local_rank}"
    elif args.device is None:
        args.device = "cpu"  # DDP on CPU: one process per core is the user's choice, not ours
    dist.init_process_group("nccl" if cuda else "gloo")
    try:
        rank = dist.get_rank()
        if rank != 0:
            args.no_progress = True
        if args.dataset == "scene":
            train_set, test_set = (
                SceneDataset(60_000 if not args.train_size else args.train_size, seed=args.seed),
                SceneDataset(10_000, seed=args.seed + 1),
            )
        else:
            if rank == 0:  # one download, then everyone reads the files
                mnist(args.data_root, "train")
                mnist(args.data_root, "test")
            dist.barrier()
            train_set, test_set = mnist(args.data_root, "train"), mnist(args.data_root, "test")
        if args.train_size:
            train_set = train_set.subset(args.train_size)
        torch.manual_seed(args.seed)  # the same initial model on every rank (DDP checks it)
        model = model_from_args(args)
        result = train(
            model, train_set, config_from_args(args), test_set=test_set, resume=args.resume
        )
        if rank == 0:
            print(f"world size {dist.get_world_size()}")
            print(summary(result))
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    run_cli(main)
