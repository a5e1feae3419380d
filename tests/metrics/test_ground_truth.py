from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from consistency.data import CausalScene
from consistency.metrics import compare_graphs, data_invariance, match_latents


@given(
    st.permutations(range(5)),
    st.lists(st.floats(0.1, 10.0), min_size=5, max_size=5),
    st.integers(0, 99),
)
def test_permuted_rescaled_copy_is_matched_exactly(
    perm: list[int], scale: list[float], seed: int
) -> None:
    _, factors = CausalScene(seed=seed).sample(300)
    signs = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0])
    latents = factors[:, perm] * torch.tensor(scale) * signs + 3.0
    m = match_latents(latents, factors)
    assert m.mean_correlation == pytest.approx(1.0, abs=1e-5)
    for latent, factor in enumerate(perm):
        assert int(m.latent_of_factor[factor]) == latent
    # its own graph, mapped through the matching, has SHD 0
    true = CausalScene().graph
    learned = torch.zeros(5, 5)
    for a in range(5):
        for b in range(5):
            learned[int(m.latent_of_factor[a]), int(m.latent_of_factor[b])] = true[a, b]
    cmp = compare_graphs(learned, true, m)
    assert cmp.shd == 0 and cmp.precision == 1.0 and cmp.recall == 1.0


def test_random_latents_correlate_weakly() -> None:
    _, factors = CausalScene(seed=0).sample(2000)
    m = match_latents(torch.randn(2000, 5), factors)
    assert m.mean_correlation < 0.1


def test_shd_counts_missing_extra_reversed() -> None:
    true = torch.zeros(3, 3)
    true[0, 1] = true[1, 2] = 1
    learned = torch.zeros(3, 3)
    learned[1, 0] = 1  # reversed 0->1: 1
    learned[0, 2] = 1  # extra 0->2: 1; missing 1->2: 1
    cmp = compare_graphs(learned, true)
    assert cmp.shd == 3 and cmp.precision == 0.0 and cmp.recall == 0.0
    assert math.isnan(compare_graphs(torch.zeros(3, 3), true).precision)


def test_more_factors_than_latents() -> None:
    _, factors = CausalScene(seed=0).sample(200)
    m = match_latents(factors[:, [2, 0]], factors)
    assert sorted(m.latent_of_factor.tolist()) == [-1, -1, -1, 0, 1]
    assert int(m.latent_of_factor[2]) == 0 and int(m.latent_of_factor[0]) == 1


def test_data_invariance_of_an_ideal_and_a_mixing_encoder() -> None:
    scene = CausalScene(seed=0)

    class FactorEncoder:  # reads the true factors back from the scene (an ideal encoder)
        def __init__(self, mix: torch.Tensor) -> None:
            self.mix = mix
            self.lookup: dict[bytes, torch.Tensor] = {}

        def __call__(self, images: torch.Tensor) -> torch.Tensor:
            return torch.stack([self.lookup[img.numpy().tobytes()] for img in images]) @ self.mix

    original_render = scene.render

    def recording_render(factors, chunk: int = 4096):  # type: ignore[no-untyped-def]
        images = original_render(factors, chunk)
        for img, f in zip(images, torch.as_tensor(factors, dtype=torch.float32)):
            for enc in encoders:
                enc.lookup[img.numpy().tobytes()] = f
        return images

    encoders = [FactorEncoder(torch.eye(5)), FactorEncoder(torch.eye(5) + 0.5)]
    scene.render = recording_render  # type: ignore[method-assign]
    _, factors = scene.sample(500)
    ideal = data_invariance(encoders[0], scene, match_latents(factors, factors), n_samples=200)
    assert ideal.mean_non_descendant == pytest.approx(1.0, abs=1e-6)
    assert bool(ideal.non_descendant[3, 0]) and not bool(ideal.non_descendant[3, 4])
    mixed = data_invariance(
        encoders[1], scene, match_latents(factors @ encoders[1].mix, factors), n_samples=200
    )
    assert mixed.mean_non_descendant < 0.9


def test_shd_counts_missing_extra_and_reversed_once() -> None:
    from consistency.metrics import structural_hamming_distance

    true = CausalScene().graph
    assert int(structural_hamming_distance(true, true)) == 0
    assert int(structural_hamming_distance(true.T, true)) == 5  # every edge reversed
    assert int(structural_hamming_distance(torch.zeros(5, 5), true)) == 5
    extra = true.clone()
    extra[0, 1] = 1.0
    both = torch.stack([extra, true.T, torch.zeros(5, 5)])
    assert structural_hamming_distance(both, true).tolist() == [1, 5, 5]


def test_random_dag_baseline_is_acyclic_sized_and_exact_for_tiny_graphs() -> None:
    from consistency.metrics import random_dag_shd

    true = torch.tensor([[0.0, 1.0], [0.0, 0.0]])
    base = random_dag_shd(true, 1, samples=4000, generator=torch.Generator().manual_seed(0))
    # one edge between two nodes: right direction (SHD 0) or reversed (SHD 1), each half the time
    assert set(base.shd.tolist()) == {0, 1}
    # binomial, 4000 draws: s.e. sqrt(0.25 / 4000) = 0.0079, so 0.05 is 6.3 s.e. (false alarm < 1e-9)
    assert base.mean == pytest.approx(0.5, abs=0.05)
    assert base.share_at_most(0) == pytest.approx(0.5, abs=0.05)
    empty = random_dag_shd(CausalScene().graph, 0, samples=10)
    assert set(empty.shd.tolist()) == {5}
    scene = random_dag_shd(CausalScene().graph, 5, samples=2000)
    lo, mid, hi = scene.quantiles()
    assert 0 < lo <= mid <= hi <= 10
    with pytest.raises(ValueError, match=r"n_edges must lie in \[0, 10\]"):
        random_dag_shd(CausalScene().graph, 11)


def test_random_dags_have_the_asked_edges_and_no_cycles() -> None:
    from consistency.metrics import ground_truth

    captured = {}
    original = ground_truth.structural_hamming_distance

    def spy(graphs: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
        captured["graphs"] = graphs
        return original(graphs, true)

    ground_truth.structural_hamming_distance = spy  # type: ignore[assignment]
    try:
        ground_truth.random_dag_shd(torch.zeros(5, 5), 4, samples=200)
    finally:
        ground_truth.structural_hamming_distance = original  # type: ignore[assignment]
    graphs = captured["graphs"]
    assert torch.equal(graphs.sum(dim=(1, 2)), torch.full((200,), 4.0))
    # acyclic: the 5th power of the adjacency of a DAG on 5 nodes is zero
    power = torch.linalg.matrix_power(graphs, 5)
    assert float(power.abs().max()) == 0.0
    assert float((graphs * graphs.transpose(1, 2)).max()) == 0.0
