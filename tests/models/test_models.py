from __future__ import annotations

import itertools

import pytest
import torch

from consistency import EquivarianceLoss, InvarianceLoss, ResponseModel, ShapeError, XBlock
from consistency.models import (
    CONSISTENCY_TRAINED,
    FAMILIES,
    PAPER_PARAMETER_COUNTS,
    PRESETS,
    VARIANTS,
    WITH_XBLOCK,
    build_model,
    parameter_count,
)

# The paper's Table 4, reproduced to the parameter (docs/method.md, last section); CelebA X: fixed gates.
TABLE4 = {
    k: v for k, v in PAPER_PARAMETER_COUNTS.items() if not (k[1].startswith("v") and k[2] == "X")
}
MNIST = [p for p, v in PRESETS.items() if v.dataset == "mnist"]
CELEBA = [p for p, v in PRESETS.items() if v.dataset == "celeba"]


@pytest.mark.parametrize(
    ("key", "count"), TABLE4.items(), ids=lambda k: "-".join(k) if isinstance(k, tuple) else str(k)
)
def test_parameter_counts_match_table4(key: tuple[str, str, str], count: int) -> None:
    assert parameter_count(build_model(*key, faithful=True)) == count
    # the working default drops the output block's BatchNorm: 2 parameters per image channel
    channels = PRESETS[key[1]].channels
    assert parameter_count(build_model(*key)) == count - 2 * channels


@pytest.mark.parametrize(
    ("family", "preset", "variant"), list(itertools.product(FAMILIES, MNIST, VARIANTS))
)
def test_mnist_models_train_step(family: str, preset: str, variant: str) -> None:
    torch.manual_seed(0)
    model = build_model(family, preset, variant)
    x = torch.rand(2, 1, 28, 28)
    terms = model.loss(x)
    terms.total.backward()
    assert torch.isfinite(terms.total)
    assert model(x).shape == x.shape
    assert model.means(x).shape == (2, PRESETS[preset].n)
    assert all(p.grad is not None for p in model.encoder.parameters())
    assert (model.xblock is None) == (variant not in WITH_XBLOCK)
    assert isinstance(
        model.consistency,
        {
            "XC-I": InvarianceLoss,
            "XC-E": EquivarianceLoss,
            "C-I": InvarianceLoss,
            "C-E": EquivarianceLoss,
        }.get(variant, type(None)),
    )
    if variant in CONSISTENCY_TRAINED:
        assert float(terms.consistency) >= 0
    assert len(model.sampler) == 2


@pytest.mark.parametrize(
    ("family", "preset", "variant"), list(itertools.product(FAMILIES, CELEBA, VARIANTS))
)
def test_celeba_models_build(family: str, preset: str, variant: str) -> None:
    model = build_model(family, preset, variant)
    p = PRESETS[preset]
    width = p.n * (p.unit_size if variant in WITH_XBLOCK else 1)
    assert model.decoder.in_features == width
    assert parameter_count(model) > 2_800_000


# One forward/backward per CelebA family, covering both presets and every variant (each takes seconds).
@pytest.mark.parametrize(
    ("family", "preset", "variant"),
    [
        ("AE", "v32", "plain"),
        ("VAE", "v324", "X"),
        ("SAE", "v32", "XC-I"),
        ("AVAE", "v324", "XC-E"),
    ],
)
def test_celeba_models_train_step(family: str, preset: str, variant: str) -> None:
    torch.manual_seed(0)
    model = build_model(family, preset, variant)
    x = torch.rand(2, 3, 128, 128)  # batch 2: BatchNorm after the last pool sees a 1x1 map
    terms = model.loss(x)
    terms.total.backward()
    assert torch.isfinite(terms.total)
    model.eval()
    with torch.no_grad():
        assert model(x[:1]).shape == (1, 3, 128, 128)


@pytest.mark.parametrize("variant", ["C-I", "C-E"])
def test_consistency_without_the_xblock_is_the_plain_twin_plus_the_loss(variant: str) -> None:
    """C-I / C-E: the plain model's networks (same init after the same seed, no XBlock, the
    decoder takes the noise itself) with XC-I / XC-E's loss on them."""
    torch.manual_seed(3)
    plain = build_model("AE", "S", "plain")
    torch.manual_seed(3)
    model = build_model("AE", "S", variant)
    assert model.xblock is None and isinstance(model.latent, torch.nn.Identity)
    for a, b in zip(plain.state_dict().items(), model.state_dict().items()):
        assert a[0] == b[0] and torch.equal(a[1], b[1])
    expected = InvarianceLoss if variant == "C-I" else EquivarianceLoss
    assert isinstance(model.consistency, expected) and model.consistency.xblock is None
    x = torch.rand(8, 1, 28, 28)
    model.loss(x).total.backward()
    assert all(p.grad is not None for p in model.decoder.parameters())


def test_bad_names_and_decoder_width() -> None:
    with pytest.raises(ValueError, match="family must be one of"):
        build_model("GAN", "S")
    with pytest.raises(ValueError, match="preset must be one of"):
        build_model("AE", "XL")
    with pytest.raises(ValueError, match="variant must be one of"):
        build_model("AE", "S", "XC")
    model = build_model("AE", "S")
    model.latent = XBlock(6, 4)  # retrofit without widening the decoder
    with pytest.raises(
        ShapeError, match=r"decoder input must be \(B, 6\); got \(2, 24\).*n \* unit_size"
    ):
        model(torch.rand(2, 1, 28, 28))


def test_evaluator_on_model() -> None:
    model = build_model("AE", "S", "X")
    model.loss(torch.rand(8, 1, 28, 28))
    report = model.evaluator(n_samples=8, n_interventions=1, progress=False).evaluate()
    assert report.invariance.shape == (6, 6) and report.equivariance is not None
    assert model.training  # restored


@pytest.mark.parametrize("preset", ["v32", "v324"])
def test_celeba_x_counts_with_fixed_gates(preset: str) -> None:
    count = PAPER_PARAMETER_COUNTS[("AE", preset, "X")]
    model = build_model("AE", preset, "X", learn_gates=False, faithful=True)
    assert parameter_count(model) == count
    assert "latent.gate_logits" in model.state_dict()


def test_recipe_default_faithful_and_errors() -> None:
    from consistency.models import Recipe

    assert Recipe().output_block == "conv" and Recipe.faithful().output_block == "paper"
    assert Recipe.faithful().replace(gate_sparsity=0.1).gate_sparsity == 0.1
    with pytest.raises(TypeError):
        Recipe().replace(colour="red")
    with pytest.raises(ValueError, match="either recipe= or faithful=True"):
        build_model("AE", "S", recipe=Recipe(), faithful=True)
    with pytest.raises(TypeError, match="recipe must be a Recipe"):
        build_model("AE", "S", recipe={"output_block": "conv"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match='output_block must be "conv" or "paper"'):
        build_model("AE", "S", recipe=Recipe(output_block="bn"))  # type: ignore[arg-type]
    paper = build_model("AE", "S", "XC-I", faithful=True)
    assert isinstance(paper.encoder.head[-1], torch.nn.Mish)
    assert paper.xblock is not None and not paper.xblock.residual
    assert isinstance(paper.xblock.out_activation, torch.nn.Mish)
    assert paper.consistency is not None and paper.consistency.stop_reference
    assert paper.consistency.normalise is None
    assert paper.consistency.intervention_values == "sampler"
    assert paper.consistency.batchnorm == "update"
    default = build_model("AE", "S", "XC-I")
    assert isinstance(default.encoder.head[-1], torch.nn.Identity)
    assert default.xblock is not None and default.xblock.residual
    assert default.consistency is not None and default.consistency.normalise == "noise"
    assert default.consistency.n_samples == Recipe().consistency.n_samples == 16
    assert Recipe().replace(n_samples=8).consistency.n_samples == 8
    assert paper.consistency.n_samples is None  # the authors': the whole batch


def test_default_consistency_pass_takes_a_subset_of_the_batch() -> None:
    """XC-I training step at batch 128: the encoder sees the batch, then the 16 intervened
    prior samples of the consistency term (the recipe's n_samples), nothing else."""
    from consistency.models import Recipe

    torch.manual_seed(0)
    model = build_model("AE", "S", "XC-I").train()
    sizes: list[int] = []
    model.encoder.register_forward_hook(lambda _m, args, _out: sizes.append(args[0].shape[0]))
    model.loss(torch.rand(128, 1, 28, 28))
    assert sizes == [128, 16]
    every = build_model("AE", "S", "XC-I", recipe=Recipe().replace(n_samples=None)).train()
    sizes.clear()
    every.encoder.register_forward_hook(lambda _m, args, _out: sizes.append(args[0].shape[0]))
    every.loss(torch.rand(128, 1, 28, 28))
    assert sizes == [128, 128]


def test_consistency_passes_leave_batchnorm_statistics_to_real_data() -> None:
    import copy

    from consistency.models import Recipe

    x = torch.rand(8, 1, 28, 28)
    for statistics, untouched in (("batch", True), ("update", False)):
        torch.manual_seed(0)
        model = build_model("AE", "S", "XC-I", recipe=Recipe().replace(batchnorm=statistics))
        reference = copy.deepcopy(model)
        model.loss(x)  # reconstruction pass + consistency passes
        with torch.no_grad():  # the reconstruction pass alone
            reference.generate(reference.means(x))
        same = [
            torch.equal(a, b)
            for (name, a), b in zip(model.named_buffers(), reference.buffers())
            if "running" in name
        ]
        assert all(same) if untouched else not all(same), statistics


def test_gate_sparsity_enters_the_regulariser() -> None:
    from consistency.models import Recipe

    x = torch.rand(4, 1, 28, 28)
    torch.manual_seed(0)
    plain = build_model("AE", "S", "X").loss(x)
    torch.manual_seed(0)
    model = build_model("AE", "S", "X", recipe=Recipe(gate_sparsity=2.0))
    terms = model.loss(x)
    assert model.xblock is not None
    expected = 2.0 * float(model.xblock.gate_penalty().detach())
    assert float(terms.regulariser) == pytest.approx(float(plain.regulariser) + expected)
    terms.total.backward()
    assert model.xblock.gate_logits.grad is not None


def test_paper_model_generate_runs_the_xblock_and_decoder_alone_is_flagged() -> None:
    import warnings

    from consistency import ConsistencyEvaluator, XBlock

    model = build_model("AE", "scene", "X").eval()
    assert isinstance(model.latent, XBlock)
    noise = torch.randn(4, model.n)
    torch.testing.assert_close(model.generate(noise), model.decoder(model.latent(noise)))
    torch.testing.assert_close(model.generate(noise), model.generate(noise))
    model.sampler.update(torch.randn(32, model.n))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ConsistencyEvaluator(model, model.sampler, n_samples=8).evaluate()
    assert model.xblock is not None and model.xblock.unit_size == 1  # decoder accepts noise
    skipping = ConsistencyEvaluator(
        ResponseModel(model.means, model.decoder, xblock=model.xblock), model.sampler, n_samples=8
    )
    with pytest.warns(UserWarning, match="generate does not run the model's XBlock"):
        skipping.evaluate()
