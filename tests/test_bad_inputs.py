"""Bad input gets a clear error: one table through every public constructor and function.

Each case asserts the error's type (a :class:`ConsistencyError` that is also the built-in a
user would catch), that the message names the argument and the value that came, and that the
failed call changed nothing: the sampler's bank, the modules' train/eval modes, the parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import nn

import consistency.functional as F
from consistency import (
    AggregatePosterior,
    ConsistencyError,
    ConsistencyEvaluator,
    EquivarianceLoss,
    InvarianceLoss,
    ResponseModel,
    XBlock,
    draw_interventions,
    frozen_batchnorm,
    intervene,
    posterior_mean,
    response,
)
from consistency.metrics import random_dag_shd
from tests.harness import ALGORITHM_1, ALGORITHM_2

N = 3


@dataclass
class World:
    """Objects a case may use; rebuilt for every case."""

    sampler: AggregatePosterior
    encoder: nn.Module
    decoder: nn.Module
    xblock: XBlock
    latents: torch.Tensor

    @classmethod
    def make(cls) -> World:
        torch.manual_seed(0)
        sampler = AggregatePosterior(N, capacity=16)
        sampler.update(torch.randn(8, N))
        encoder = nn.Sequential(nn.Linear(5, N), nn.BatchNorm1d(N)).train()
        decoder = nn.Linear(N, 5).eval()
        return cls(sampler, encoder, decoder, XBlock(N).train(), torch.randn(4, N))

    def state(self) -> tuple[Any, ...]:
        modules = (self.encoder, self.decoder, self.xblock)
        return (
            len(self.sampler),
            self.sampler.bank.clone(),
            tuple(m.training for root in modules for m in root.modules()),
            tuple(p.detach().clone() for root in modules for p in root.parameters()),
            tuple(b.detach().clone() for root in modules for b in root.buffers()),
        )


def _nan(w: World) -> torch.Tensor:
    x = w.latents.clone()
    x[1, 2] = float("nan")
    return x


def _inf(w: World) -> torch.Tensor:
    x = w.latents.clone()
    x[0, 0] = float("inf")
    return x


def _with_frozen(w: World) -> None:
    with frozen_batchnorm(w.encoder, statistics="eval"):  # type: ignore[arg-type]
        pass


def _loss_call(w: World, latents: torch.Tensor) -> None:
    InvarianceLoss(
        ResponseModel(w.encoder, w.decoder),
        w.sampler,
        **ALGORITHM_1,
    )(latents)


# (case id, call, exception type, substrings the message must contain)
CASES: list[tuple[str, Callable[[World], object], type[Exception], tuple[str, ...]]] = [
    # the sampler
    ("sampler dim 0", lambda w: AggregatePosterior(0), ValueError, ("dim", "0")),
    ("sampler dim float", lambda w: AggregatePosterior(2.5), TypeError, ("dim", "float")),  # type: ignore[arg-type]
    (
        "sampler capacity -1",
        lambda w: AggregatePosterior(2, capacity=-1),
        ValueError,
        ("capacity", "-1"),
    ),
    (
        "sampler update wrong width",
        lambda w: w.sampler.update(torch.randn(4, N + 2)),
        ValueError,
        ("latents", "5", "3"),
    ),
    (
        "sampler update rank 3",
        lambda w: w.sampler.update(torch.randn(2, 2, N)),
        ValueError,
        ("latents", "rank 3"),
    ),
    ("sampler update NaN", lambda w: w.sampler.update(_nan(w)), ValueError, ("latents", "NaN")),
    ("sampler update inf", lambda w: w.sampler.update(_inf(w)), ValueError, ("latents", "inf")),
    (
        "sampler update list",
        lambda w: w.sampler.update([[0.0] * N]),
        TypeError,
        ("latents", "list"),
    ),  # type: ignore[arg-type]
    (
        "sampler update int dtype",
        lambda w: w.sampler.update(torch.ones(2, N, dtype=torch.long)),
        TypeError,
        ("latents", "int64"),
    ),
    (
        "sample from empty",
        lambda w: AggregatePosterior(N).sample(4),
        ValueError,
        ("empty", "sample"),
    ),
    ("sample k 0", lambda w: w.sampler.sample(0), ValueError, ("k", "0")),
    (
        "sample unknown mode",
        lambda w: w.sampler.sample(4, "gaussian"),
        ValueError,
        ("mode", "gaussian"),
    ),
    # intervention and response
    (
        "intervene dim out of range",
        lambda w: intervene(w.latents, 7, 0.0),
        ValueError,
        ("dims", "7"),
    ),
    (
        "intervene values of the wrong length",
        lambda w: intervene(w.latents, 0, torch.zeros(7)),
        ValueError,
        ("values", "7"),
    ),
    (
        "draw_interventions from an empty bank",
        lambda w: draw_interventions(w.latents, torch.zeros(0, N)),
        ValueError,
        ("empty",),
    ),
    (
        "draw_interventions n_interventions 0",
        lambda w: draw_interventions(w.latents, w.sampler, n_interventions=0),
        ValueError,
        ("n_interventions", "0"),
    ),
    (
        "draw_interventions width mismatch",
        lambda w: draw_interventions(torch.randn(4, N + 1), w.sampler),
        ValueError,
        ("4", "3"),
    ),
    (
        "response max_batch 0",
        lambda w: response(w.encoder, w.decoder, w.latents, max_batch=0),
        ValueError,
        ("max_batch", "0"),
    ),
    ("posterior_mean of a string", lambda w: posterior_mean("latents"), TypeError, ("str",)),
    # the XBlock
    ("XBlock n 1", lambda w: XBlock(1, tau=0.0), ValueError, ("tau", "0")),
    ("XBlock n 0", lambda w: XBlock(0), ValueError, ("n", "0")),
    ("XBlock unit_size 0", lambda w: XBlock(3, unit_size=0), ValueError, ("unit_size", "0")),
    ("XBlock unknown init", lambda w: XBlock(3, init="he"), ValueError, ("init", "he")),  # type: ignore[arg-type]
    ("XBlock wrong width", lambda w: w.xblock(torch.randn(4, N + 1)), ValueError, ("4", "3")),
    # the losses
    (
        "loss unknown dims",
        lambda w: InvarianceLoss(
            ResponseModel(w.encoder, w.decoder),
            w.sampler,
            dims="some",
            **ALGORITHM_1,
        ),
        ValueError,
        ("dims", "some"),
    ),  # type: ignore[arg-type]
    (
        "loss unknown sampling",
        lambda w: InvarianceLoss(
            ResponseModel(w.encoder, w.decoder),
            w.sampler,
            sampling="normal",
            n_samples=None,
            weight=1.0,
            reference="response",
        ),
        ValueError,
        ("sampling", "normal"),
    ),
    (
        "loss unknown normalise",
        lambda w: InvarianceLoss(
            ResponseModel(w.encoder, w.decoder),
            w.sampler,
            normalise="std",
            **ALGORITHM_1,
        ),
        ValueError,
        ("normalise", "std"),
    ),  # type: ignore[arg-type]
    (
        "loss unknown intervention_values",
        lambda w: EquivarianceLoss(
            ResponseModel(w.encoder, w.decoder),
            w.sampler,
            intervention_values="bank",
            **ALGORITHM_2,
        ),
        ValueError,
        ("intervention_values", "bank"),
    ),  # type: ignore[arg-type]
    (
        "loss sampler of wrong type",
        lambda w: InvarianceLoss(
            ResponseModel(w.encoder, w.decoder),
            torch.zeros(3),
            **ALGORITHM_1,
        ),
        TypeError,
        ("sampler", "Tensor"),
    ),  # type: ignore[arg-type]
    (
        "loss n_interventions 0",
        lambda w: InvarianceLoss(
            ResponseModel(w.encoder, w.decoder),
            w.sampler,
            n_interventions=0,
            **ALGORITHM_1,
        ),
        ValueError,
        ("n_interventions", "0"),
    ),
    ("loss on NaN latents", lambda w: _loss_call(w, _nan(w)), ValueError, ("latents", "NaN")),
    (
        "loss on wrong width",
        lambda w: _loss_call(w, torch.randn(4, N + 2)),
        ValueError,
        ("latents", "5", "3"),
    ),
    (
        "loss with n < 2",
        lambda w: InvarianceLoss(
            ResponseModel(nn.Linear(5, 1), nn.Linear(1, 5)),
            **ALGORITHM_1,
        )(torch.randn(4, 1)),
        ValueError,
        ("n", "1"),
    ),
    (
        "loss without latents or sampler",
        lambda w: InvarianceLoss(
            ResponseModel(w.encoder, w.decoder),
            **ALGORITHM_1,
        )(),
        ValueError,
        ("latents", "sampler"),
    ),
    # the evaluator
    (
        "evaluator unknown convention",
        lambda w: ConsistencyEvaluator(
            ResponseModel(w.encoder, w.decoder), w.sampler, convention="paper"
        ),
        ValueError,
        ("convention", "paper"),
    ),  # type: ignore[arg-type]
    (
        "evaluator n_samples 0",
        lambda w: ConsistencyEvaluator(ResponseModel(w.encoder, w.decoder), w.sampler, n_samples=0),
        ValueError,
        ("n_samples", "0"),
    ),
    (
        "evaluator max_batch float",
        lambda w: ConsistencyEvaluator(
            ResponseModel(w.encoder, w.decoder), w.sampler, max_batch=1.5
        ),
        TypeError,
        ("max_batch", "float"),
    ),  # type: ignore[arg-type]
    (
        "evaluator empty sampler",
        lambda w: ConsistencyEvaluator(
            ResponseModel(w.encoder, w.decoder), AggregatePosterior(N), progress=False
        ).evaluate(),
        ValueError,
        ("empty",),
    ),
    (
        "evaluator unknown mode",
        lambda w: ConsistencyEvaluator(
            ResponseModel(w.encoder, w.decoder), w.sampler, progress=False
        ).evaluate("grid"),
        ValueError,
        ("mode", "grid"),
    ),
    (
        "evaluator sampler of wrong type",
        lambda w: ConsistencyEvaluator(ResponseModel(w.encoder, w.decoder), [1, 2]),
        TypeError,
        ("sampler", "list"),
    ),  # type: ignore[arg-type]
    # modes and functional helpers
    ("frozen_batchnorm unknown statistics", _with_frozen, ValueError, ("statistics", "eval")),
    (
        "invariance_penalty shape mismatch",
        lambda w: F.invariance_penalty(
            torch.zeros(4, N), torch.zeros(5, N), torch.zeros(4, dtype=torch.long)
        ),
        ValueError,
        ("4", "5"),
    ),
    (
        "random_dag_shd samples 0",
        lambda w: random_dag_shd(torch.zeros(3, 3), 1, samples=0),
        ValueError,
        ("samples", "0"),
    ),
]


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 25


@pytest.mark.parametrize(
    ("call", "kind", "needles"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_raises_a_clear_error_and_changes_nothing(
    call: Callable[[World], object], kind: type[Exception], needles: tuple[str, ...]
) -> None:
    world = World.make()
    before = world.state()
    with pytest.raises(kind) as info:
        call(world)
    err = info.value
    assert isinstance(err, ConsistencyError), (
        f"{type(err).__name__} does not derive from ConsistencyError"
    )
    message = str(err)
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    after = world.state()
    assert before[0] == after[0]
    assert torch.equal(before[1], after[1]), "the sampler's bank changed"
    assert before[2] == after[2], "a module's train/eval mode changed"
    for x, y in zip(before[3] + before[4], after[3] + after[4]):
        assert torch.equal(x, y), "a parameter or buffer changed"
