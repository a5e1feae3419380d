"""Scene ablation: hybrid vs posterior prior samples in XCAE-I's consistency term (one change).

Why it exists: with the library's recipe the quickstart's XCAE-I scores *below* its AE twin on
posterior self-consistency for some seeds. This trains, per seed, the AE, XCAE-I with the
default recipe and XCAE-I with ``Recipe().replace(sampling="posterior")`` at the quickstart's settings (900
steps, batch 128, lr 1e-3, τ annealed, 20,000 / 2,000 scene images), one thread, and prints one
JSON line per run.

    for s in 0 1 2; do for vr in "plain working" "XC-I working" "XC-I posterior"; do
      python benchmarks/ablate_scene_prior.py $s $vr; done; done
"""

from __future__ import annotations

import json
import sys

import torch

from consistency.data import SceneDataset
from consistency.models import Recipe, build_model
from consistency.train import TrainConfig, train

RECIPES = {
    "working": Recipe(),
    "posterior": Recipe().replace(sampling="posterior"),
    "allrows": Recipe().replace(n_samples=None),
}


def main(seed: int, variant: str, name: str) -> None:
    torch.set_num_threads(1)
    train_set, test_set = SceneDataset(20_000, seed=seed), SceneDataset(2_000, seed=seed + 1)
    torch.manual_seed(seed)
    model = build_model("AE", "scene", variant, recipe=RECIPES[name])
    cfg = TrainConfig(
        steps=900,
        batch_size=128,
        lr=1e-3,
        seed=seed,
        tau_schedule="anneal",
        checkpoint_every=0,
        out=f"/tmp/scene-prior-ablation/{name}-{variant}-{seed}",
        eval_samples=500,
        eval_interventions=10,
        eval_data=2_000,
        progress=False,
        figures=False,
    )
    r = train(model, train_set, cfg, test_set=test_set)
    assert r.report is not None and r.self_consistency is not None
    row = {
        "seed": seed,
        "variant": variant,
        "recipe": name,
        "recon": r.test_reconstruction,
        "inv": r.report.mean_invariance,
        "scn": r.self_consistency.means(),
    }
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3])
