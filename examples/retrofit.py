"""Retrofit your own autoencoder: an XBlock and the invariance loss in a plain training loop,
trained beside its plain twin (the same initial weights and batches), scores side by side.

    python examples/retrofit.py                  # real MNIST, 800 steps, about a minute on a CPU
    python examples/retrofit.py --steps 200 --data-root DIR

The whole change to a training loop is two lines: ``model.latent = XBlock(n)`` and
``loss = reconstruction + invariance(means)`` with ``invariance = InvarianceLoss(model)``; every
choice of the loss is the library's default (docs/method.md). The loss assumes the
reconstruction error summed over pixels (per image); with a per-pixel mean, lower its ``weight``.
"""

from __future__ import annotations

import argparse
import copy

import torch
from torch import nn

from consistency import AggregatePosterior, ConsistencyEvaluator, InvarianceLoss, XBlock
from consistency.data import mnist


class MyAutoencoder(nn.Module):  # a user's model: .encoder, .latent, .decoder
    def __init__(self, n: int = 10) -> None:
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.latent(self.encoder(x)))


class _Help(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The docstring as written, and every flag's default in --help."""


def scores(model: nn.Module, test: torch.Tensor, samples: int) -> dict[str, float]:
    """Reconstruction error and the consistency scores on test images."""
    model.eval()
    with torch.no_grad():
        means = model.encoder(test)
        rec = float((model(test) - test).square().sum((1, 2, 3)).mean())
    bank = AggregatePosterior(means.shape[1], capacity=len(means))
    bank.update(means)
    evaluator = ConsistencyEvaluator(
        model, bank, n_samples=samples, generator=torch.Generator().manual_seed(0), progress=False
    )
    out = {"reconstruction": rec, "mean INV": evaluator.evaluate().mean_invariance}
    out.update({f"SCN {m}": v for m, v in evaluator.self_consistency_table().means().items()})
    return out


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=_Help,
    )
    parser.add_argument("--steps", type=int, default=800, help="training steps")
    parser.add_argument("--batch-size", type=int, default=64, help="images per step")
    parser.add_argument("--seed", type=int, default=0, help="seeds everything")
    parser.add_argument("--eval-images", type=int, default=5000, help="test images evaluated")
    parser.add_argument(
        "--eval-samples", type=int, default=1000, help="prior samples of the evaluation"
    )
    parser.add_argument("--data-root", default=None, help="MNIST folder (default: the cache)")
    args = parser.parse_args(argv)
    train_x = mnist(args.data_root, "train").images
    test_x = mnist(args.data_root, "test").images[: args.eval_images]

    torch.manual_seed(args.seed)
    plain = MyAutoencoder()
    model = copy.deepcopy(plain)  # the twin: same initial weights
    model.latent = XBlock(10)  # <- the retrofit
    invariance = InvarianceLoss(model)  # <- the loss, from the model alone

    results = {}
    for name, net in (("plain twin", plain), ("retrofit", model)):
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        batches = torch.Generator().manual_seed(args.seed)
        net.train()
        for step in range(args.steps):
            x = train_x[torch.randint(len(train_x), (args.batch_size,), generator=batches)]
            means = net.encoder(x)
            loss = (net.decoder(net.latent(means)) - x).square().sum((1, 2, 3)).mean()
            if net is model:
                loss = loss + invariance(means)  # <- the one line in the loop
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % 200 == 0 or step == args.steps - 1:
                print(f"{name:10s} step {step:4d}  loss {float(loss.detach()):8.2f}")
        results[name] = scores(net, test_x, args.eval_samples)

    print(f"\n{'':16s}{'plain twin':>12s}{'retrofit':>12s}")
    for k in results["plain twin"]:
        print(f"{k:16s}{results['plain twin'][k]:12.3f}{results['retrofit'][k]:12.3f}")
    return results


if __name__ == "__main__":
    main()
