"""The offline data sets with known causes: Pendulum (CausalVAE's) and Shapes (dSprites-like),
and the API they share with CausalScene (StructuralData)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from consistency.data import (
    CausalScene,
    Pendulum,
    SceneDataset,
    Shapes,
    StructuralData,
    StructuralDataset,
)
from consistency.errors import InvalidValueError
from consistency.metrics import conditioned_response_matrix, data_invariance, match_latents


def small_shapes(seed: int = 0) -> Shapes:
    return Shapes(seed=seed, scales=2, rotations=3, positions=3)


@pytest.mark.parametrize(
    "make", [lambda s: Pendulum(seed=s), small_shapes, lambda s: CausalScene(seed=s)]
)
def test_same_seed_same_data_other_seed_other_data(make) -> None:  # type: ignore[no-untyped-def]
    a_img, a_f = make(3).sample(20)
    b_img, b_f = make(3).sample(20)
    _c_img, c_f = make(4).sample(20)
    assert torch.equal(a_img, b_img) and torch.equal(a_f, b_f)
    assert not torch.equal(a_f, c_f)
    assert a_img.dtype == torch.float32 and 0.0 <= float(a_img.min()) and float(a_img.max()) <= 1.0


def test_every_source_is_structural_data() -> None:
    for source in (Pendulum(), Shapes(), CausalScene()):
        assert isinstance(source, StructuralData)
        assert source.graph.shape == (len(source.names),) * 2
    assert isinstance(SceneDataset(8), StructuralDataset)


# ------------------------------------------------------------------------------------ pendulum
def test_pendulum_graph_is_causalvaes() -> None:
    p = Pendulum()
    assert p.names == ("pendulum_angle", "light_angle", "shadow_length", "shadow_position")
    assert p.graph.nonzero().tolist() == [[0, 2], [0, 3], [1, 2], [1, 3]]
    assert p.descendants("pendulum_angle") == {2, 3} and p.descendants(2) == set()


def test_pendulum_structural_equations_and_geometry() -> None:
    p = Pendulum(seed=0, shadow_noise=0.0)
    _, f = p.sample(200)
    f = f.double().numpy()
    length, centre = Pendulum.shadow(f[:, 0], f[:, 1])
    np.testing.assert_allclose(f[:, 2], length, atol=1e-6)
    np.testing.assert_allclose(f[:, 3], centre, atol=1e-6)
    # hand-computed: a vertical pendulum under an overhead light has a shadow of zero length
    # under the pivot; at 45° light a point at height h (above the ground) moves left by h
    assert Pendulum.shadow(np.array([0.0]), np.array([90.0]))[0][0] == pytest.approx(0.0, abs=1e-12)
    assert Pendulum.shadow(np.array([0.0]), np.array([90.0]))[1][0] == pytest.approx(0.5)
    length45, centre45 = Pendulum.shadow(np.array([0.0]), np.array([45.0]))
    assert length45[0] == pytest.approx(0.28)  # the rod's own length, laid flat
    assert centre45[0] == pytest.approx(0.5 - (0.6 + 0.32) / 2)
    assert (
        f[:, 0].min() >= -40
        and f[:, 0].max() <= 44
        and f[:, 1].min() >= 60
        and f[:, 1].max() <= 120
    )


def test_pendulum_do_recomputes_descendants_only() -> None:
    p = Pendulum(seed=1)
    noise = p.sample_noise(50)
    base = p.factors_from_noise(noise)
    moved = p.factors_from_noise(noise, do={"pendulum_angle": 30.0})
    assert (moved[:, 0] == 30.0).all()
    np.testing.assert_array_equal(moved[:, 1], base[:, 1])  # the other root is untouched
    assert not np.allclose(moved[:, 2:], base[:, 2:])  # its children move
    leaf = p.factors_from_noise(noise, do={"shadow_length": 0.1})
    np.testing.assert_array_equal(leaf[:, [0, 1, 3]], base[:, [0, 1, 3]])
    _imgs, f = p.intervene(5, "light_angle", np.linspace(60, 120, 5))
    assert f[:, 1].tolist() == pytest.approx(np.linspace(60, 120, 5).tolist())


def test_pendulum_images_follow_each_factor() -> None:
    p = Pendulum(seed=2, shadow_noise=0.0)
    noise = p.sample_noise(1)
    base = p.factors_from_noise(noise)
    img = p.render(base)
    for factor, value in ((0, 30.0), (1, 100.0), (2, 0.25), (3, 0.3)):
        f = base.copy()
        f[:, factor] = value
        assert (p.render(f) - img).abs().sum() > 1.0, p.names[factor]
    # the shadow factors draw only on the ground (the bottom rows)
    f = base.copy()
    f[:, 2] = 0.25
    changed = (p.render(f) - img).abs()[0, 0].sum(1).nonzero().flatten()
    assert int(changed.min()) >= int(0.85 * p.size)


def test_pendulum_grid_is_the_full_factorial_over_the_roots() -> None:
    imgs, f = Pendulum().grid(angles=4, lights=3)
    assert imgs.shape == (12, 1, 28, 28)
    roots = {(round(a, 4), round(b, 4)) for a, b in f[:, :2].tolist()}
    assert len(roots) == 12


# -------------------------------------------------------------------------------------- shapes
def test_shapes_grid_is_the_full_factorial() -> None:
    s = small_shapes()
    imgs, f = s.grid()
    assert len(s) == 3 * 2 * 3 * 3 * 3 == imgs.shape[0]
    assert len({tuple(r) for r in f.tolist()}) == len(s)  # every combination exactly once
    for i, levels in enumerate(s.levels):
        assert sorted(set(f[:, i].tolist())) == pytest.approx(levels.tolist())
    assert s.graph.sum() == 0 and s.descendants("x") == set()


def test_shapes_factors_show_in_the_image() -> None:
    s = Shapes(seed=0)
    base = np.array([[2.0, 0.75, 0.0, 0.5, 0.5]])  # a heart: no rotational symmetry
    img = s.render(base)
    mass = float(img.sum())
    assert 10 < mass < 28 * 28 / 4
    bigger = s.render(base * np.array([1, 4 / 3, 1, 1, 1]))
    assert float(bigger.sum()) == pytest.approx(mass * (4 / 3) ** 2, rel=0.1)  # area ∝ scale²
    for factor, value in ((0, 0.0), (2, np.pi / 2), (3, 0.3), (4, 0.7)):
        f = base.copy()
        f[0, factor] = value
        assert (s.render(f) - img).abs().sum() > 2.0, s.names[factor]
    # x moves the centre of mass right, y down
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    right = s.render(base + np.array([0, 0, 0, 0.2, 0]))[0, 0]
    assert float((right * xs).sum() / right.sum()) > float((img[0, 0] * xs).sum() / img.sum()) + 4
    down = s.render(base + np.array([0, 0, 0, 0, 0.2]))[0, 0]
    assert float((down * ys).sum() / down.sum()) > float((img[0, 0] * ys).sum() / img.sum()) + 4


def test_shapes_do_sets_only_its_factor() -> None:
    s = small_shapes(1)
    noise = s.sample_noise(40)
    base = s.factors_from_noise(noise)
    moved = s.factors_from_noise(noise, do={"rotation": 1.0})
    assert (moved[:, 2] == 1.0).all()
    np.testing.assert_array_equal(np.delete(moved, 2, 1), np.delete(base, 2, 1))


# ----------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: Pendulum(size=8), "size must be >= 16"),
        (lambda: Shapes(size=8), "size must be >= 16"),
        (lambda: Pendulum(shadow_noise=-1.0), "shadow_noise"),
        (lambda: Shapes(rotations=0), "rotations must be a positive int"),
        (lambda: Pendulum().sample(0), "k must be a positive int"),
        (lambda: Pendulum().intervene(3, "sun", 1.0), "unknown factor 'sun'"),
        (lambda: Pendulum().intervene(3, 7, 1.0), r"factor index must lie in \[0, 4\)"),
        (lambda: Pendulum().intervene(3, 0, np.ones(4)), r"scalar or \(3,\) values"),
        (lambda: Pendulum().intervene(3, 0, float("nan")), "non-finite"),
        (lambda: Pendulum().render(np.zeros((2, 3))), r"shape \(k, 4\)"),
        (lambda: Shapes().render(np.zeros((2, 4))), r"shape \(k, 5\)"),
        (lambda: Shapes().render(np.array([[5.0, 1, 0, 0.5, 0.5]])), "0, 1 or 2"),
    ],
)
def test_bad_input_is_named(call, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidValueError, match=match):
        call()


# ------------------------------------------------------------------ with the metrics that use do()
def test_data_invariance_and_conditioned_response_run_on_every_source() -> None:
    torch.manual_seed(0)
    for source in (Pendulum(seed=0), small_shapes(0)):
        images, factors = source.sample(64)
        f = len(source.names)
        proj = torch.randn(28 * 28, f)

        def encode(x: torch.Tensor, proj: torch.Tensor = proj) -> torch.Tensor:
            return x.flatten(1) @ proj

        def generate(z: torch.Tensor, proj: torch.Tensor = proj) -> torch.Tensor:
            return (z @ torch.linalg.pinv(proj)).reshape(-1, 1, 28, 28)

        matching = match_latents(encode(images), factors)
        inv = data_invariance(encode, source, matching, n_samples=32)
        assert inv.score.shape == (f, f)
        cond = conditioned_response_matrix(encode, generate, source, n_samples=16, steps=3)
        assert cond.matrix.shape == (f, f) and bool(torch.isfinite(cond.matrix).all())
