"""The recipe is written once: the classes' defaults, the paper models' Recipe and the faithful
switch all read consistency.recipe."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import torch
from torch import nn

from consistency import FAITHFUL, RECIPE, EquivarianceLoss, InvarianceLoss, ResponseModel, XBlock
from consistency.models import Recipe, build_model


def _model() -> ResponseModel:
    return ResponseModel(nn.Linear(4, 3), nn.Linear(3, 4))


@pytest.mark.parametrize("cls", [InvarianceLoss, EquivarianceLoss])
def test_loss_defaults_are_the_recipe_and_faithful_is_the_paper(cls: type) -> None:
    invariance = cls is InvarianceLoss
    default, paper = cls(_model()), cls.faithful(_model())
    for recipe, loss in ((RECIPE, default), (FAITHFUL, paper)):
        for name, value in recipe.loss_kwargs(invariance=invariance).items():
            assert getattr(loss, name) == value, (name, recipe)
    # the signature shows the values (no sentinel): what a user reads is what runs
    params = inspect.signature(cls.__init__).parameters
    for name, value in RECIPE.loss_kwargs(invariance=invariance).items():
        assert params[name].default == value, name
    assert cls.faithful(_model(), weight=1.0, sampling="hybrid").sampling == "hybrid"


def test_xblock_defaults_are_the_recipe_and_faithful_is_the_paper() -> None:
    torch.manual_seed(0)
    block = XBlock(4)
    assert block.residual is RECIPE.xblock_residual is True
    assert block.out_activation is None
    assert torch.equal(block.initial_gate_logits, torch.full((6,), RECIPE.gate_init_mean))
    paper = XBlock.faithful(4, 2)
    assert paper.residual is False and isinstance(paper.out_activation, nn.Mish)
    assert float(paper.initial_gate_logits.std()) > 0.1  # N(0, 1) logits
    assert XBlock.faithful(4, residual=True).residual is True  # any argument overrides
    with pytest.raises(ValueError, match="out_activation must be"):
        XBlock(3, out_activation="relu")  # type: ignore[arg-type]


def test_the_paper_models_read_the_same_recipe() -> None:
    assert Recipe().consistency is RECIPE and Recipe.faithful().consistency is FAITHFUL
    model = build_model("AE", "scene", "XC-I")
    assert model.consistency is not None and model.xblock is not None
    for name, value in RECIPE.loss_kwargs().items():
        assert getattr(model.consistency, name) == value, name
    assert model.xblock.residual is RECIPE.xblock_residual
    changed = Recipe().replace(n_samples=8, output_block="paper")
    assert changed.consistency.n_samples == 8 and changed.output_block == "paper"
    assert changed.to_dict()["n_samples"] == 8
    assert set(changed.to_dict()) >= {f.name for f in dataclasses.fields(RECIPE)}
    with pytest.raises(TypeError):
        Recipe().replace(colour="red")
