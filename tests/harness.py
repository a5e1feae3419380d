"""The shared test harness: brute-force loop oracles every vectorised component is checked against.

Each oracle is the literal reading of docs/method.md, one sample and one intervention at a time.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

Fn = Callable[[Tensor], Tensor]

# the losses as Algorithm 1 / 2 write them (posterior prior samples, every row, weight 1, the
# response as reference / gradient through both sides), for tests of their mechanics
ALGORITHM_1 = dict(sampling="posterior", n_samples=None, weight=1.0, reference="response")
ALGORITHM_2 = dict(sampling="posterior", n_samples=None, weight=1.0, stop_reference=False)


def respond_one(encoder: Fn, decoder: Fn, noise: Tensor) -> Tensor:
    """R(N) of a single noise vector ``(n,)``."""
    return encoder(decoder(noise[None]))[0]


def oracle_invariance_loss(
    encoder: Fn,
    decoder: Fn,
    prior: Tensor,
    source: Tensor,
    dims: Tensor,
    values: Tensor,
    normalise: str | None = None,
    reference: str = "response",
) -> Tensor:
    """Algorithm 1 row by row: mean_k 1/n sum_{i != m_k} (R(Ñ^k)_i - c^k_i)^2 / s_i, with
    c = R(N) (``reference="response"``) or c = N (``"noise"``), and
    s_i the (biased) variance over the prior rows of N_i (``normalise="noise"``) or of R(N)_i
    (``"response"``), else 1."""
    n = prior.shape[1]
    refs = [
        respond_one(encoder, decoder, prior[t]) if reference == "response" else prior[t]
        for t in range(prior.shape[0])
    ]
    scale = [1.0] * n
    if normalise is not None:
        rows = [prior[t] for t in range(prior.shape[0])] if normalise == "noise" else refs
        for i in range(n):
            col = [float(r[i].detach()) for r in rows]
            mu = sum(col) / len(col)
            scale[i] = sum((c - mu) ** 2 for c in col) / len(col)
    total = prior.new_zeros(())
    for k in range(dims.shape[0]):
        base = prior[int(source[k])]
        moved = base.clone()
        moved[int(dims[k])] = values[k]
        diff = respond_one(encoder, decoder, moved) - refs[int(source[k])]
        for i in range(n):
            if i != int(dims[k]):
                total = total + diff[i] ** 2 / scale[i] / n
    return total / dims.shape[0]


def oracle_equivariance_loss(
    encoder: Fn,
    decoder: Fn,
    causes: Fn,
    prior: Tensor,
    source: Tensor,
    dims: Tensor,
    values: Tensor,
    n_units: int,
    normalise: str | None = None,
) -> Tensor:
    """Algorithm 2 row by row: mean_k 1/n sum_i ||S(Ñ^k)_i - S(Ň'^k)_i||^2 / s_i with
    Ň' = I(R(Ñ)); s_i the summed per-dim (biased) variance of unit i of S(N) over the prior rows
    (``normalise="noise"``) or of S(Ñ) over the intervened rows (``"response"``), else 1."""
    pairs = []
    for k in range(dims.shape[0]):
        moved = prior[int(source[k])].clone()
        moved[int(dims[k])] = values[k]
        back = respond_one(encoder, decoder, moved).clone()
        back[int(dims[k])] = values[k]
        pairs.append(
            (causes(moved[None])[0].view(n_units, -1), causes(back[None])[0].view(n_units, -1))
        )
    scale = [1.0] * n_units
    if normalise is not None:
        if normalise == "noise":
            units = [causes(prior[t][None])[0].view(n_units, -1) for t in range(prior.shape[0])]
        else:
            units = [a for a, _ in pairs]
        for i in range(n_units):
            width = units[0].shape[1]
            scale[i] = 0.0
            for d in range(width):
                col = [float(a[i, d].detach()) for a in units]
                mu = sum(col) / len(col)
                scale[i] += sum((c - mu) ** 2 for c in col) / len(col)
    total = prior.new_zeros(())
    for a, b in pairs:
        for i in range(n_units):
            total = total + ((a[i] - b[i]) ** 2).sum() / scale[i] / n_units
    return total / dims.shape[0]


def oracle_scores(
    encoder: Fn,
    decoder: Fn,
    prior: Tensor,
    values: Tensor,
    causes: Fn | None = None,
) -> tuple[Tensor, Tensor | None, Tensor]:
    """INV, EQV and SCN of docs/method.md (the ``spec`` convention) by explicit loops over m,
    the K values of ``values`` (n, K), and samples: squared changes over variances,
    SCN = 1 - E(R(N) - N)^2 / var."""
    p = lambda x: x**2  # noqa: E731
    t, n = prior.shape
    k_count = values.shape[1]
    ref = torch.stack([respond_one(encoder, decoder, prior[j]) for j in range(t)])
    var = lambda x: ((x - x.mean(0)) ** 2).mean(0)  # noqa: E731
    s_n, s_r = var(prior), var(ref)
    cz = (
        None
        if causes is None
        else torch.stack([causes(prior[j : j + 1])[0].view(n, -1) for j in range(t)])
    )
    s_z = None if cz is None else var(cz).sum(-1)
    inv = torch.zeros(n, n, dtype=prior.dtype)
    eqv = torch.zeros(n, n, dtype=prior.dtype)
    for m in range(n):
        for kk in range(k_count):
            v = values[m, kk]
            size = sum(p(prior[j, m] - v) for j in range(t)) / t / s_n[m]
            for i in range(n):
                change = 0.0
                eq = 0.0
                for j in range(t):
                    moved = prior[j].clone()
                    moved[m] = v
                    r = respond_one(encoder, decoder, moved)
                    change = change + p(r[i] - ref[j, i])
                    if causes is not None:
                        back = r.clone()
                        back[m] = v
                        diff = (
                            causes(moved[None])[0].view(n, -1)[i]
                            - causes(back[None])[0].view(n, -1)[i]
                        )
                        eq = eq + (diff**2).sum()
                inv[m, i] += (change / t / s_r[i]) / size / k_count
                if s_z is not None:
                    eqv[m, i] += (eq / t / s_z[i]) / size / k_count
    scn = 1 - ((ref - prior) ** 2).mean(0) / s_n
    return 1 - inv, (1 - eqv) if causes is not None else None, scn


def _unbiased_std(column: list[float]) -> float:
    mean = sum(column) / len(column)
    return (sum((c - mean) ** 2 for c in column) / (len(column) - 1)) ** 0.5


@torch.no_grad()
def oracle_scores_authors(
    encoder: Fn,
    decoder: Fn,
    prior: Tensor,
    values: Tensor,
    scn_prior: Tensor,
    causes: Fn | None = None,
    eps: float = 1e-4,
) -> tuple[Tensor, Tensor | None, Tensor]:
    """INV, EQV and SCN as the authors' code computed them (issue 20 / ../shared/SPEC.md), by
    explicit loops in Python floats, written from the formulas and nothing of the library:

    * ``e[m, i] = mean_k( mean_t |R(Ñ)_i - R(N)_i| / (mean_t |Ñ_m - N_m| + eps) ) / std R(N)_i``
      (unbiased std), ``INV = 1 - e``;
    * ``EQV[m, i] = 1 - mean_k( mean_t ||S(I(R(N)))_i - S(R(Ñ))_i|| / (mean_t |Ñ_m - N_m| + eps) )``;
    * ``SCN_i = clamp(1 - mean_t |N_i - R(N)_i| / std R(N)_i, 0, 1)`` on ``scn_prior``.
    """
    t, n = prior.shape
    k_count = values.shape[1]
    rows = [prior[j] for j in range(t)]
    ref = [respond_one(encoder, decoder, row) for row in rows]
    std_r = [_unbiased_std([float(ref[j][i]) for j in range(t)]) for i in range(n)]

    def unit(c: Tensor, i: int) -> Tensor:
        return c.view(n, -1)[i]

    inv = [[0.0] * n for _ in range(n)]
    eqv = [[0.0] * n for _ in range(n)]
    for m in range(n):
        for kk in range(k_count):
            v = float(values[m, kk])
            size = sum(abs(float(rows[j][m]) - v) for j in range(t)) / t
            moved_rows = []
            for j in range(t):
                moved = rows[j].clone()
                moved[m] = v
                moved_rows.append(moved)
            responses = [respond_one(encoder, decoder, row) for row in moved_rows]
            for i in range(n):
                change = sum(abs(float(responses[j][i]) - float(ref[j][i])) for j in range(t)) / t
                inv[m][i] += change / (size + eps) / k_count
                if causes is not None:
                    eq = 0.0
                    for j in range(t):
                        back = ref[j].clone()
                        back[m] = v
                        a = unit(causes(back[None])[0], i)
                        b = unit(causes(responses[j][None])[0], i)
                        eq += float(((a - b) ** 2).sum()) ** 0.5
                    eqv[m][i] += eq / t / (size + eps) / k_count
    inv_t = torch.tensor(
        [[1.0 - inv[m][i] / std_r[i] for i in range(n)] for m in range(n)], dtype=torch.float64
    )
    eqv_t = (
        None
        if causes is None
        else torch.tensor(
            [[1.0 - eqv[m][i] for i in range(n)] for m in range(n)], dtype=torch.float64
        )
    )
    return inv_t, eqv_t, oracle_self_consistency_authors(encoder, decoder, scn_prior)


@torch.no_grad()
def oracle_self_consistency_authors(encoder: Fn, decoder: Fn, prior: Tensor) -> Tensor:
    """The authors' Table 2 self-consistency by loops in Python floats:
    ``SCN_i = clamp(1 - mean_t |N_i - R(N)_i| / std_t R(N)_i, 0, 1)`` (unbiased std)."""
    t, n = prior.shape
    rows = [prior[j] for j in range(t)]
    ref = [respond_one(encoder, decoder, row) for row in rows]
    scn = []
    for i in range(n):
        err = sum(abs(float(rows[j][i]) - float(ref[j][i])) for j in range(t)) / t
        std = _unbiased_std([float(ref[j][i]) for j in range(t)])
        scn.append(min(1.0, max(0.0, 1.0 - err / std)))
    return torch.tensor(scn, dtype=torch.float64)
