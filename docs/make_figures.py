"""Regenerate docs/figures/: one picture of each kind from a test-sized model (seconds on a CPU).

python docs/make_figures.py
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from consistency import (
    AggregatePosterior,
    ConsistencyEvaluator,
    InvarianceLoss,
    ResponseModel,
    XBlock,
    plots,
)

torch.manual_seed(0)
n, side = 4, 12
# data: blobs whose x/y position and size are 3 factors, the 4th latent is spare
factors = torch.rand(2048, 3)
yy, xx = torch.meshgrid(torch.linspace(0, 1, side), torch.linspace(0, 1, side), indexing="ij")
images = torch.exp(
    -(
        (xx - 0.2 - 0.6 * factors[:, 0, None, None]) ** 2
        + (yy - 0.2 - 0.6 * factors[:, 1, None, None]) ** 2
    )
    / (0.005 + 0.02 * factors[:, 2, None, None])
)[:, None]
encoder = nn.Sequential(nn.Flatten(), nn.Linear(side * side, 64), nn.Mish(), nn.Linear(64, n))
block = XBlock(n, 1)
cause_decoder = nn.Sequential(
    nn.Linear(n, 64),
    nn.Mish(),
    nn.Linear(64, side * side),
    nn.Sigmoid(),
    nn.Unflatten(1, (1, side, side)),
)


def decoder(z: torch.Tensor) -> torch.Tensor:
    return cause_decoder(block(z))


params = [*encoder.parameters(), *block.parameters(), *cause_decoder.parameters()]
opt = torch.optim.Adam(params, lr=3e-3)
inv = InvarianceLoss(ResponseModel(encoder, decoder), weight=1.0)
for _step in range(600):
    x = images[torch.randint(len(images), (128,))]
    z = encoder(x)
    x_hat = decoder(z)
    loss = (x_hat - x).square().sum((1, 2, 3)).mean() + inv(z, responses=encoder(x_hat))
    opt.zero_grad()
    loss.backward()
    opt.step()

q = AggregatePosterior(n)
with torch.no_grad():
    q.update(encoder(images))
ev = ConsistencyEvaluator(
    ResponseModel(encoder, decoder, xblock=block, modules=[cause_decoder]),
    q,
    n_samples=500,
    generator=torch.Generator().manual_seed(0),
    progress=False,
)
report = ev.evaluate()
print(report)
out = Path(__file__).parent / "figures"
plots.save_report_figures(report, out)
plots.save_figures(ev, out, images=images[:8], cause_decoder=cause_decoder)
print("wrote", sorted(p.name for p in out.glob("*.png")))
