"""Cost of an XBlock(32, 4) forward+backward against one training step of the paper's AE S.

Both are measured in the same run, interleaved, batch 128, on the current device (CPU here);
the number that matters is the ratio ``xblock / ae_step``.

    python benchmarks/bench_xblock.py [--batch 128] [--rounds 10]
"""

from __future__ import annotations

import argparse

import torch
from _common import interleaved_times, paper_ae
from torch.nn import functional as F

from consistency import XBlock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    device = torch.device(args.device)

    ae = paper_ae("S").to(device)
    opt = torch.optim.Adam(ae.parameters(), lr=1e-4)
    x = torch.rand(args.batch, 1, 28, 28, device=device)

    def ae_step() -> None:
        opt.zero_grad()
        F.mse_loss(ae(x), x, reduction="sum").div(x.shape[0]).backward()
        opt.step()

    block = XBlock(32, 4).to(device).train()
    noise = torch.randn(args.batch, 32, device=device)

    def xblock_step() -> None:
        block.zero_grad()
        block(noise).square().mean().backward()

    def sync(f):  # type: ignore[no-untyped-def]
        def g() -> None:
            f()
            if device.type == "cuda":
                torch.cuda.synchronize()

        return g

    t = interleaved_times(
        {"ae_step": sync(ae_step), "xblock": sync(xblock_step)}, rounds=args.rounds
    )
    print(f"device={device} batch={args.batch} threads={torch.get_num_threads()}")
    print("| step | median ms |")
    print("|---|---|")
    for k, v in t.items():
        print(f"| {k} | {v * 1e3:.2f} |")
    print(f"ratio xblock / ae_step = {t['xblock'] / t['ae_step']:.3f}")


if __name__ == "__main__":
    main()
