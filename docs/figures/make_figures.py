"""Make docs/figures/<folder>/: every figure kind of ``consistency.plots`` on a quickly trained
scene XCAE-I (300 steps on the CPU, about a minute). ``before/`` was made with the plots module
as it was before issue 21, ``after/`` with the current one.

    python docs/figures/make_figures.py docs/figures/after
"""

from __future__ import annotations

import sys
import tempfile

import torch

from consistency import AggregatePosterior, plots
from consistency.data import SceneDataset
from consistency.models import build_model
from consistency.train import TrainConfig, train


def main(out: str) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_model("AE", "scene", "XC-I")
    with tempfile.TemporaryDirectory() as run:
        cfg = TrainConfig(
            steps=300, batch_size=64, lr=1e-3, out=run, progress=False, figures=False, seed=1,
            checkpoint_seconds=None, checkpoint_every=0,
        )  # fmt: skip
        train(model, SceneDataset(4000, seed=0), cfg, evaluate=False)
    model.eval()
    test = SceneDataset(1000, seed=1).images
    with torch.no_grad():
        means = model.means(test)
    bank = AggregatePosterior(model.n, capacity=1000)
    bank.update(means)
    ev = model.evaluator(
        bank, n_samples=300, n_interventions=5, generator=torch.Generator().manual_seed(0),
        progress=False,
    )  # fmt: skip
    print(plots.save_report_figures(ev.evaluate("hybrid"), out))
    print(plots.save_figures(ev, out, images=test[:8], cause_decoder=model.decoder))


if __name__ == "__main__":
    main(sys.argv[1])
