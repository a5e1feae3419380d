"""Sample quality: Fréchet distance of reconstructions, hybrid samples and traversals vs data."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..errors import InvalidValueError
from ..evaluator import ConsistencyEvaluator, evaluation_mode
from ..functional import frechet_distance
from ..intervention import intervene

__all__ = ["SampleQuality", "frechet_distance", "sample_quality"]


@dataclass
class SampleQuality:
    """Fréchet distances against data features, computed with a *given* feature network.

    Not comparable to Inception FIDs unless the feature network is Inception: label results with
    the network used (e.g. "FD-LeNet").
    """

    reconstructions: float
    hybrid_samples: float
    traversals: float
    feature_network: str


def _features(net: nn.Module, x: Tensor, batch: int) -> Tensor:
    return torch.cat([net(c).flatten(1) for c in x.split(batch)]).double()


def sample_quality(
    evaluator: ConsistencyEvaluator,
    images: Tensor,
    feature_net: nn.Module,
    *,
    max_batch: int = 256,
) -> SampleQuality:
    """Fréchet distance of reconstructions, hybrid prior samples and random single-dim traversals
    against ``images`` ``(B, C, H, W)``, in the feature space of ``feature_net`` (eval mode,
    restored afterwards)."""
    b = images.shape[0]
    if b < 2:
        raise InvalidValueError(f"sample_quality needs at least 2 images; got {b}")
    g = evaluator.generator
    with evaluation_mode(feature_net), evaluator.evaluation_mode():
        real = _features(feature_net, images, max_batch)
        recon = torch.cat(
            [evaluator.model.generate(evaluator.model.means(c)) for c in images.split(max_batch)]
        )
        hybrid = torch.cat(
            [
                evaluator.model.generate(c)
                for c in evaluator.sampler.sample(b, "hybrid", generator=g).split(max_batch)
            ]
        )
        base = evaluator.sampler.sample(b, "posterior", generator=g)
        dims = torch.randint(
            evaluator.n, (b,), generator=g, device=g.device if g is not None else None
        ).to(base.device)
        values = evaluator.sampler.intervention_values(dims, generator=g)
        trav = torch.cat(
            [evaluator.model.generate(c) for c in intervene(base, dims, values).split(max_batch)]
        )
        return SampleQuality(
            reconstructions=float(frechet_distance(real, _features(feature_net, recon, max_batch))),
            hybrid_samples=float(frechet_distance(real, _features(feature_net, hybrid, max_batch))),
            traversals=float(frechet_distance(real, _features(feature_net, trav, max_batch))),
            feature_network=type(feature_net).__name__,
        )
