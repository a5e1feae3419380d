from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from consistency import ShapeError, XBlock
from consistency.testing import assert_xblock_causal_order


@given(st.integers(1, 5), st.integers(1, 3), st.integers(1, 4), st.booleans(), st.integers(0, 999))
def test_children_never_depend_on_later_units(
    n: int, u: int, batch: int, train: bool, seed: int
) -> None:
    torch.manual_seed(seed)
    block = XBlock(n, u, logit_init_std=1.0).train(train)
    assert_xblock_causal_order(block, torch.randn(batch, n, dtype=torch.float64), seed=seed)


@given(st.integers(2, 5), st.integers(1, 3), st.integers(0, 999))
def test_closed_gates_leave_only_own_noise(n: int, u: int, seed: int) -> None:
    torch.manual_seed(seed)
    block = XBlock(n, u, hard=True).eval()
    with torch.no_grad():
        block.gate_logits.fill_(-5.0)  # every gate closed
    noise = torch.randn(3, n, dtype=torch.float64)
    block = block.double()
    jac = torch.autograd.functional.jacobian(lambda x: block.causes(x), noise)  # (B,n,u,B,n)
    for i in range(n):
        for j in range(n):
            if i != j:
                assert float(jac[:, i, :, :, j].abs().max()) == 0.0
    assert float(jac[0, n - 1, :, 0, n - 1].abs().max()) > 0


@given(st.integers(2, 5), st.integers(1, 3), st.integers(0, 999))
def test_do_on_cause_cuts_parents(n: int, u: int, seed: int) -> None:
    torch.manual_seed(seed)
    block = XBlock(n, u, logit_init_std=1.0, residual=False).eval().double()
    with torch.no_grad():
        block.gate_logits.fill_(3.0)  # all edges open so every unit has parents
    m = int(torch.randint(1, n, ()).item())
    value = torch.randn(u, dtype=torch.float64)
    noise = torch.randn(4, n, dtype=torch.float64)
    plain = block.causes(noise)
    done = block.causes(noise, intervene={m: value})
    assert torch.equal(done[:, m], value.expand(4, u))
    assert torch.equal(done[:, :m], plain[:, :m])
    # changing any earlier noise no longer changes unit m
    noise2 = noise.clone()
    noise2[:, :m] += 1.0
    assert torch.equal(block.causes(noise2, intervene={m: value})[:, m], done[:, m])
    # but it does change unit m without the intervention
    assert not torch.allclose(block.causes(noise2)[:, m], plain[:, m])
    # descendants are recomputed from the new value
    if m < n - 1:
        assert not torch.allclose(done[:, m + 1 :], plain[:, m + 1 :])
    per_row = torch.randn(4, u, dtype=torch.float64)
    assert torch.equal(block.causes(noise, intervene={m: per_row})[:, m], per_row)


def test_parameter_counts_match_paper_table4() -> None:
    def count(b: nn.Module) -> int:
        return sum(p.numel() for p in b.parameters())

    assert count(XBlock(6, 1)) == 1011  # XAE S - AE S
    assert count(XBlock(12, 1)) == 2418  # XAE Standard - AE Standard
    assert count(XBlock(6, 4)) == 1659  # S4 block (decoder input grows separately)


def test_adjacency_density_confidence() -> None:
    block = XBlock(4, logit_init_mean=0.0)
    adj = block.adjacency()
    assert adj.shape == (4, 4)
    assert torch.equal(adj.tril(), torch.zeros(4, 4))
    assert torch.allclose(adj.triu(1), torch.full((4, 4), 0.5).triu(1))
    assert block.gate_confidence() == 0.0
    closed = XBlock(4, logit_init_mean=-3.0)  # every edge starts closed, sigmoid(-3 / tau)
    expected = torch.sigmoid(torch.tensor(-3.0 / closed.tau))
    assert torch.allclose(closed.adjacency().triu(1), torch.full((4, 4), float(expected)).triu(1))
    assert closed.edge_density() == 0.0
    with torch.no_grad():
        block.gate_logits.copy_(torch.tensor([10.0, -10, 10, -10, 10, -10]))
    assert block.edge_density() == pytest.approx(0.5)
    assert block.gate_confidence() == pytest.approx(1.0, abs=1e-6)
    block.hard = True
    assert set(block.adjacency().unique().tolist()) == {0.0, 1.0}
    assert XBlock(1).edge_density() == 0.0


def test_gates_train_vs_eval() -> None:
    block = XBlock(3, logit_init_std=1.0, residual=False)
    noise = torch.randn(5, 3)
    block.eval()
    assert torch.equal(block(noise), block(noise))  # deterministic at eval
    block.train()
    assert not torch.equal(block(noise), block(noise))  # Gumbel noise in training
    block.hard = True
    out = block(noise)
    out.sum().backward()
    assert block.gate_logits.grad is not None  # straight-through reaches the logits


def test_retrofit_keeps_shapes_and_checks_decoder() -> None:
    class AE(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enc = nn.Linear(8, 3)
            self.latent: nn.Module = nn.Identity()
            self.dec = nn.Linear(3, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.dec(self.latent(self.enc(x)))

    model = AE()
    x = torch.randn(2, 8)
    before = model(x).shape
    model.latent = XBlock(3, 1)
    assert model(x).shape == before
    model.latent.check_decoder(model.dec)
    wide = XBlock(3, 4)
    with pytest.raises(ShapeError, match=r"n \* unit_size = 3 \* 4 = 12.*must take 12 inputs"):
        wide.check_decoder(model.dec)


def test_errors() -> None:
    block = XBlock(3, 2)
    with pytest.raises(ShapeError, match=r"axis 1 .* must be 3; got 4"):
        block(torch.randn(2, 4))
    with pytest.raises(ShapeError, match=r"intervene\[1\] must have shape \(unit_size,\) = \(2,\)"):
        block(torch.randn(2, 3), intervene={1: torch.zeros(3)})
    with pytest.raises(ShapeError, match="unit indices in"):
        block(torch.randn(2, 3), intervene={5: torch.zeros(2)})
    with pytest.raises(ValueError, match="tau must be > 0"):
        XBlock(3, tau=0.0)
    with pytest.raises(ValueError, match="n must be >= 1"):
        XBlock(0)


def test_out_activation_and_dtypes() -> None:
    block = XBlock(3, 2, out_activation=nn.Mish)
    assert isinstance(block.out_activation, nn.Mish)
    noise = torch.randn(4, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = block(noise)
    assert out.shape == (4, 6) and torch.isfinite(out.float()).all()
    assert block.double()(noise.double()).dtype == torch.float64


def test_compile_matches_eager() -> None:
    block = XBlock(4, 2, logit_init_std=1.0).eval()
    noise = torch.randn(8, 4)
    compiled = torch.compile(block, fullgraph=True, backend="eager")
    assert torch.allclose(compiled(noise), block(noise))


def test_xavier_init_is_glorot_and_larger_than_pytorch_default() -> None:
    torch.manual_seed(0)
    block = XBlock(5, 2, residual=False)
    for unit in block.units:
        for layer in unit:
            if isinstance(layer, nn.Linear):
                fan_out, fan_in = layer.weight.shape
                bound = (6.0 / (fan_in + fan_out)) ** 0.5
                largest = float(layer.weight.detach().abs().max())
                assert 0.5 * bound < largest <= bound
                assert torch.equal(layer.bias, torch.zeros_like(layer.bias))

    def cause_to_noise_std(init: str) -> float:
        ratios = []
        for seed in range(10):
            torch.manual_seed(seed)
            b = XBlock(6, init=init, residual=False).eval()  # type: ignore[arg-type]
            noise = torch.randn(1000, 6)
            with torch.no_grad():
                ratios.append(b(noise).std(0) / noise.std(0))
        return float(torch.cat(ratios).median())

    assert cause_to_noise_std("xavier") > 3 * cause_to_noise_std("pytorch")
    with pytest.raises(ValueError, match='init must be "xavier" or "pytorch"'):
        XBlock(3, init="orthogonal")  # type: ignore[arg-type]


def test_gate_movement_counts_shift_and_flips() -> None:
    block = XBlock(4, logit_init_mean=0.0)  # every gate undecided, decision "no edge"
    assert block.gate_movement() == (0.0, 0.0, 0, 6)
    with torch.no_grad():
        block.gate_logits.copy_(torch.tensor([1.0, -0.5, 0.0, 2.0, 0.0, -1.0]))
    moved = block.gate_movement()
    assert moved.mean_shift == pytest.approx(4.5 / 6)
    assert moved.max_shift == pytest.approx(2.0)
    assert moved.flipped == 2  # the two logits that became positive now read as edges
    torch.manual_seed(3)
    random_start = XBlock(4, logit_init_mean=0.0, logit_init_std=1.0)
    start = random_start.initial_gate_logits.clone()
    with torch.no_grad():
        random_start.gate_logits.neg_()  # every decision reversed
    moved = random_start.gate_movement()
    assert moved.flipped == 6
    assert moved.mean_shift == pytest.approx(float((2 * start).abs().mean()), rel=1e-6)
    assert XBlock(1).gate_movement() == (0.0, 0.0, 0, 0)


def test_initial_logits_survive_state_dict_and_old_checkpoints_say_unknown() -> None:
    torch.manual_seed(0)
    block = XBlock(3, logit_init_std=1.0)
    with torch.no_grad():
        block.gate_logits.add_(0.25)
    clone = XBlock(3)
    clone.load_state_dict(block.state_dict())
    assert clone.gate_movement().mean_shift == pytest.approx(0.25, rel=1e-5)
    old = {k: v for k, v in block.state_dict().items() if k != "initial_gate_logits"}
    legacy = XBlock(3)
    legacy.load_state_dict(old)
    moved = legacy.gate_movement()
    assert moved.flipped == -1 and moved.mean_shift != moved.mean_shift  # NaN: unknown


def test_gate_penalty_is_mean_open_probability_and_differentiable() -> None:
    block = XBlock(3)
    with torch.no_grad():
        block.gate_logits.copy_(torch.tensor([0.0, 2.0, -2.0]))
    penalty = block.gate_penalty()
    expected = torch.sigmoid(torch.tensor([0.0, 2.0, -2.0])).mean()
    assert torch.allclose(penalty, expected)
    penalty.backward()
    assert block.gate_logits.grad is not None and bool((block.gate_logits.grad > 0).all())
    assert float(XBlock(1).gate_penalty().detach()) == 0.0


@given(st.integers(1, 5), st.integers(1, 3), st.integers(0, 999))
def test_residual_block_starts_as_identity_and_keeps_causal_order(
    n: int, u: int, seed: int
) -> None:
    torch.manual_seed(seed)
    block = XBlock(n, u, residual=True).double()
    noise = torch.randn(4, n, dtype=torch.float64)
    # Z_i = N_i (broadcast over the unit's u dims) before any training, in both modes
    expected = noise.repeat_interleave(u, dim=1)
    assert torch.equal(block.eval()(noise), expected)
    assert torch.equal(block.train()(noise), expected)
    with torch.no_grad():  # once f_i is non-zero, the block is N_i + f_i(gated parents, N_i)
        for unit in block.units:
            unit[-1].weight.normal_()
    assert_xblock_causal_order(block, noise, seed=seed)
    causes = block.eval().causes(noise)
    f0 = block.units[0](noise[:, :1])
    assert torch.allclose(causes[:, 0], noise[:, :1] + f0)
    assert sum(p.numel() for p in block.parameters()) == sum(
        p.numel() for p in XBlock(n, u).parameters()
    )


def test_scalar_and_vector_interventions_take_the_block_dtype_and_fill_the_unit() -> None:
    """do(Z_m := v) with a Python float, a (u,) vector or a (B, u) tensor: the unit's output is
    exactly v in the block's dtype, broadcast over the batch and the unit's u coordinates."""
    block = XBlock(3, 2).double().eval()
    noise = torch.randn(4, 3, dtype=torch.float64)
    for value, expected in [
        (0.1, torch.full((4, 2), 0.1, dtype=torch.float64)),
        (torch.tensor([0.5, -1.0]), torch.tensor([[0.5, -1.0]] * 4, dtype=torch.float64)),
        (torch.arange(8.0).view(4, 2), torch.arange(8.0, dtype=torch.float64).view(4, 2)),
    ]:
        causes = block(noise, intervene={1: value})
        assert causes.dtype == torch.float64
        assert torch.equal(causes[:, 2:4], expected)  # 0.1 as a float64, not a rounded float32


def test_check_decoder_probes_with_a_batch_of_two_in_the_block_dtype() -> None:
    """A decoder with training-mode BatchNorm needs two rows; a float64 one needs float64 input."""
    block = XBlock(3, 2).double()
    decoder = nn.Sequential(nn.Linear(6, 4), nn.BatchNorm1d(4)).double().train()
    block.check_decoder(decoder)  # a batch of 1 or a float32 probe raises here
    seen: list[tuple[tuple[int, ...], torch.dtype]] = []
    block.check_decoder(lambda z: seen.append((tuple(z.shape), z.dtype)))
    assert seen == [((2, 6), torch.float64)]


def test_gate_confidence_formula_and_the_single_unit_case() -> None:
    """|2 sigma(alpha) - 1| averaged over the n(n-1)/2 possible edges; one unit has no edge to
    be unsure about: confidence 1."""
    assert XBlock(1).gate_confidence() == 1.0
    block = XBlock(2, logit_init_std=0.0)
    with torch.no_grad():
        block.gate_logits.fill_(1.5)
    expected = abs(2 * torch.sigmoid(torch.tensor(1.5 / block.tau)).item() - 1)
    assert block.gate_confidence() == pytest.approx(expected, rel=1e-6)
    assert 0 < expected < 1


def test_causes_uses_the_given_gates() -> None:
    torch.manual_seed(0)
    block = XBlock(3, 2, logit_init_std=1.0, residual=False).train()
    noise = torch.randn(5, 3)
    closed = torch.zeros(1, 3, 3)
    opened = torch.ones(1, 3, 3)
    for gates in (closed, opened):
        expected = block(noise, gates=gates).view(5, 3, 2)
        assert torch.equal(block.causes(noise, gates=gates), expected)
    assert not torch.equal(block.causes(noise, gates=closed), block.causes(noise, gates=opened))


def test_forward_bounds_messages_and_no_data_dependent_checks() -> None:
    """Unit keys 0 .. n-1 are accepted, n is not; a wrong gate shape names both shapes; the
    forward pass checks shapes only (no data-dependent branch, so torch.compile can trace it):
    non-finite noise passes through."""
    block = XBlock(3, 1).eval()
    noise = torch.randn(2, 3)
    first, last = block(noise, intervene={0: 0.5}), block(noise, intervene={2: 0.5})
    assert torch.equal(first[:, 0], torch.full((2,), 0.5)) and torch.equal(
        last[:, 2], torch.full((2,), 0.5)
    )
    with pytest.raises(ShapeError, match=r"unit indices in \[0, 3\); got 3"):
        block(noise, intervene={3: 0.5})
    with pytest.raises(
        ShapeError,
        match=r"^gates must have shape \(B, n, n\) = \(2, 3, 3\) or \(1, n, n\); got \(2, 3, 2\)$",
    ):
        block(noise, gates=torch.zeros(2, 3, 2))
    with pytest.raises(ValueError, match=r"^unit_size must be >= 1; got 0$"):
        XBlock(3, 0)
    bad = noise.clone()
    bad[0, 0] = float("nan")
    assert bool(block(bad)[0].isnan().any()) and bool(torch.isfinite(block(bad)[1]).all())


def test_state_dict_keys_fixed_gates_and_edge_index() -> None:
    """Learned gates are a parameter, fixed ones (learn_gates=False) a buffer; both are saved.
    The edge index is derived from n and not saved (old checkpoints load)."""
    learned, fixed = XBlock(3), XBlock(3, learn_gates=False)
    assert "gate_logits" in dict(learned.named_parameters())
    assert "gate_logits" not in dict(fixed.named_parameters())
    assert "gate_logits" in dict(fixed.named_buffers()) and "gate_logits" in fixed.state_dict()
    assert "edge_index" not in learned.state_dict() and "edge_index" in dict(
        learned.named_buffers()
    )


def test_noise_width_error_names_the_argument() -> None:
    with pytest.raises(ShapeError, match=r"^noise: axis 1 \(latent width n\) must be 3; got 4"):
        XBlock(3)(torch.randn(2, 4))


@given(st.integers(1, 5), st.integers(1, 3), st.booleans(), st.booleans(), st.integers(0, 999))
def test_forward_is_the_structural_equations_row_by_row(
    n: int, u: int, residual: bool, mish: bool, seed: int
) -> None:
    """The vectorised forward against the docstring's equations written out for one row at a
    time: Z_i = f_i(concat(M_0i Z_0, ..., M_(i-1)i Z_(i-1), N_i)) (+ N_i when residual), with the
    given per-row gates, and an intervened unit replaced by its value (float64)."""
    torch.manual_seed(seed)
    block = XBlock(
        n, u, logit_init_std=1.0, residual=residual, out_activation="mish" if mish else None
    ).double()
    with torch.no_grad():
        for unit in block.units:
            unit[-1].weight.normal_()  # a residual block starts at the identity: move it
    batch = 3
    noise = torch.randn(batch, n, dtype=torch.float64)
    gates = torch.rand(batch, n, n, dtype=torch.float64).triu(1)
    m = int(torch.randint(n, ()))
    value = torch.randn(u, dtype=torch.float64)
    out = block.causes(noise, gates=gates, intervene={m: value})
    for b in range(batch):
        z: list[torch.Tensor] = []
        for i in range(n):
            if i == m:
                z.append(value)
                continue
            parts = [gates[b, j, i] * z[j] for j in range(i)] + [noise[b, i : i + 1]]
            zi = block.units[i](torch.cat(parts)[None])[0]
            if residual:
                zi = zi + noise[b, i]
            if mish:
                zi = torch.nn.functional.mish(zi)
            z.append(zi)
        torch.testing.assert_close(out[b], torch.stack(z))
