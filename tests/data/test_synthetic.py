from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from consistency.data import CausalScene, SceneDataset


def test_determinism() -> None:
    a_img, a_f = CausalScene(seed=3).sample(16)
    b_img, b_f = CausalScene(seed=3).sample(16)
    c_img, c_f = CausalScene(seed=4).sample(16)
    assert torch.equal(a_img, b_img) and torch.equal(a_f, b_f)
    assert not torch.equal(a_f, c_f) and not torch.equal(a_img, c_img)
    assert torch.equal(SceneDataset(32, seed=1).images, SceneDataset(32, seed=1).images)


@given(st.sampled_from(range(5)), st.floats(-1.0, 1.0), st.integers(0, 99))
def test_do_follows_the_equations(factor: int, u: float, seed: int) -> None:
    scene = CausalScene(seed=seed)
    lo, hi = {0: (-40, 40), 1: (0.2, 0.8)}.get(factor, (0.0, 0.8))
    value = lo + (u + 1) / 2 * (hi - lo)
    noise = scene.sample_noise(64)
    before = scene.factors_from_noise(noise)
    after = scene.factors_from_noise(noise, do={factor: value})
    assert np.all(after[:, factor] == value)
    desc = scene.descendants(factor)
    for g in range(5):
        if g != factor and g not in desc:  # non-descendants: same noise, same values
            assert np.array_equal(after[:, g], before[:, g]), g
    # descendants recomputed by the structural equations (written out here, not via the renderer)
    centre, width = CausalScene.shadow(after[:, 0], after[:, 1])
    if 2 in desc:
        assert np.allclose(after[:, 2], centre + noise[:, 2])
    if 3 in desc:
        assert np.allclose(after[:, 3], np.maximum(width + noise[:, 3], 0))
    if 4 in desc:
        assert np.allclose(after[:, 4], 0.9 - 1.2 * after[:, 3] + noise[:, 4])


def test_intervene_keeps_non_descendants_in_distribution() -> None:
    _, obs = CausalScene(seed=5).sample(200)
    _, done = CausalScene(seed=5).intervene(
        200, "shadow_length", 0.3
    )  # same generator state: same noise
    assert (
        torch.equal(done[:, 0], obs[:, 0])
        and torch.equal(done[:, 1], obs[:, 1])
        and torch.equal(done[:, 2], obs[:, 2])
    )
    assert torch.all(done[:, 3] == 0.3)
    assert torch.allclose(done[:, 4] - obs[:, 4], -1.2 * (0.3 - obs[:, 3]), atol=1e-5)


def test_graph_and_names() -> None:
    scene = CausalScene()
    g = scene.graph
    assert g.shape == (5, 5) and torch.equal(g, g.triu(1)) and int(g.sum()) == 5
    assert scene.descendants("angle") == {2, 3, 4} and scene.descendants("shadow_position") == set()
    assert scene.index("light") == 1
    with pytest.raises(ValueError, match="unknown factor"):
        scene.index("colour")


@pytest.mark.parametrize("size", [28, 64])
def test_rendering(size: int) -> None:
    scene = CausalScene(size=size, seed=0)
    images, factors = scene.sample(8)
    assert images.shape == (8, 1, size, size) and images.dtype == torch.float32
    assert float(images.min()) >= 0 and float(images.max()) <= 1
    # distinct factor values give distinct images, along every factor
    base = factors[:1].numpy().repeat(2, 0)
    for f, delta in enumerate((15.0, 0.2, 0.15, 0.1, -0.3)):
        moved = base.copy()
        moved[1, f] += delta
        pair = scene.render(moved)
        assert not torch.allclose(pair[0], pair[1]), f


def test_generation_speed() -> None:
    t0 = time.perf_counter()
    data = SceneDataset(6000, seed=0)
    elapsed = time.perf_counter() - t0
    assert len(data) == 6000
    assert elapsed < 10, f"6,000 images took {elapsed:.1f}s (60,000 must take well under a minute)"
