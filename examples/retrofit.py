"""Retrofit your own autoencoder: add an XBlock and the invariance loss to a plain training loop.

python examples/retrofit.py [--steps 300] [--data-root DIR]
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from consistency import AggregatePosterior, ConsistencyEvaluator, InvarianceLoss, XBlock
from consistency.data import mnist


class MyAutoencoder(nn.Module):  # a user's model, unchanged but for the one line marked below
    def __init__(self, n: int = 6) -> None:
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

    def decode(self, noise: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.latent(noise))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    data = mnist(args.data_root, "train").images
    model = MyAutoencoder()
    model.latent = XBlock(6, unit_size=1)  # <- the retrofit
    sampler = AggregatePosterior(6)
    invariance = InvarianceLoss(model.encoder, model.decode, sampler, weight=4.0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for step in range(args.steps):
        x = data[torch.randint(len(data), (128,))]
        noise = model.encoder(x)
        sampler.update(noise)
        x_hat = model.decode(noise)
        reconstruction = (x_hat - x).square().sum((1, 2, 3)).mean()
        consistency = invariance(noise, responses=model.encoder(x_hat))  # reuses the reconstruction
        loss = reconstruction + consistency
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == args.steps - 1:
            print(
                f"step {step:4d}  reconstruction {reconstruction.item():8.2f}  consistency {consistency.item():.4f}"
            )
    report = ConsistencyEvaluator(
        model.encoder,
        model.decode,
        sampler,
        xblock=model.latent,
        model=model,
        n_samples=500,
        progress=False,
    ).evaluate("hybrid")
    print(report)


if __name__ == "__main__":
    main()
