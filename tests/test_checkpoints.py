"""Checkpoints load safely: ``torch.load(weights_only=True)`` reads every one the library writes,
and a tampered checkpoint is a clear error naming the key, not a crash deep in torch."""

from __future__ import annotations

import pytest
import torch

from consistency.data import SceneDataset
from consistency.errors import DataFileError, MissingFileError
from consistency.models import build_model
from consistency.train import TrainConfig, load_checkpoint, load_model_state, train


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    model = build_model("VAE", "scene", "XC-I")  # every RNG in use: numpy, python, torch
    cfg = TrainConfig(steps=2, batch_size=8, out=str(out), progress=False, figures=False)
    train(model, SceneDataset(32), cfg, evaluate=False)
    return out / "checkpoint.pt"


def test_every_checkpoint_loads_with_weights_only(checkpoint) -> None:  # type: ignore[no-untyped-def]
    ckpt = torch.load(checkpoint, weights_only=True)
    assert ckpt["step"] == 2 and ckpt["model_spec"]["variant"] == "XC-I"
    assert isinstance(ckpt["rng"]["numpy"]["keys"], torch.Tensor)
    assert load_checkpoint(checkpoint)["step"] == 2


def test_resume_restores_every_generator(checkpoint, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import random

    import numpy as np

    from consistency.train import _rng_state, _set_rng_state

    random.random(), np.random.rand(), torch.rand(1)
    saved = _rng_state()
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    _set_rng_state(torch.load(checkpoint, weights_only=True)["rng"])  # someone else's state
    torch.save(saved, tmp_path / "rng.pt")
    _set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected


def test_missing_and_tampered_checkpoints_name_the_problem(checkpoint, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(MissingFileError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "nothing.pt")
    ckpt = torch.load(checkpoint, weights_only=True)
    del ckpt["optimizer"]
    torch.save(ckpt, tmp_path / "no_opt.pt")
    with pytest.raises(DataFileError, match=r"lacks the key\(s\) \['optimizer'\]"):
        load_checkpoint(tmp_path / "no_opt.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DataFileError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(DataFileError, match="holds a list"):
        load_checkpoint(tmp_path / "list.pt")

    class Evil:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (print, ("code ran",))

    torch.save({"x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(DataFileError, match="weights_only"):
        load_checkpoint(tmp_path / "evil.pt")


def test_model_state_of_another_model_names_keys_and_shapes(checkpoint) -> None:  # type: ignore[no-untyped-def]
    state = torch.load(checkpoint, weights_only=True)["model"]
    model = build_model("VAE", "scene", "XC-I")
    load_model_state(model, state)  # the right model loads
    key = next(k for k, v in state.items() if v.ndim == 2)
    wrong = dict(state)
    wrong[key] = torch.zeros(3, 3)
    with pytest.raises(DataFileError, match=rf"shape mismatch {key}: checkpoint \(3, 3\), model"):
        load_model_state(model, wrong)
    missing = {k: v for k, v in state.items() if k != key}
    with pytest.raises(DataFileError, match=rf"missing key\(s\) \['{key}'\]"):
        load_model_state(model, missing)
    with pytest.raises(DataFileError, match=r"unexpected key\(s\) \['extra.weight'\]"):
        load_model_state(model, {**state, "extra.weight": torch.zeros(1)})
    with pytest.raises(
        DataFileError,
        match=r"shape mismatch encoder\.head\.\d+\.weight: checkpoint \(10, 128\), model \(5, 128\)",
    ):
        load_model_state(build_model("AE", "scene", "XC-I"), state)  # a VAE's (mean, logvar) head
