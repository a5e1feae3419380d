"""Implementations no one here wrote, and the published formulas transcribed literally.

``disent_metrics()`` loads disent's own ``metrics/_mig.py``, ``_dci.py`` and ``utils.py`` (disent
0.8.0, installed with ``pip install --no-deps disent``). Importing ``disent`` the normal way pulls
in torchvision and lightning (its dataset and framework layers), and PyPI's torchvision does not
import beside the CPU torch build used here; the metric functions need neither. So the three files
are executed as they are, with the package's import-only plumbing (``DisentDataset`` for type hints,
``to_numpy``, ``wrapped_partial`` for its metric decorator) replaced by stand-ins. The numbers come
from disent's code: histogram discretisation, ``sklearn.metrics.mutual_info_score``,
``GradientBoostingClassifier``, ``scipy.stats.entropy``.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np


def disent_metrics() -> dict[str, Any] | None:
    """disent's metric modules ``{"utils", "_mig", "_dci"}``, or None if disent or sklearn is absent."""
    try:
        import scipy.stats  # noqa: F401
        import sklearn.metrics  # noqa: F401
    except ImportError:
        return None
    try:  # a machine where disent imports normally
        from disent.metrics import _dci, _mig, utils

        return {"utils": utils, "_mig": _mig, "_dci": _dci}
    except Exception:
        pass
    spec = importlib.util.find_spec("disent")
    if spec is None or spec.origin is None:
        return None
    root = Path(spec.origin).parent
    saved = {k: v for k, v in sys.modules.items() if k == "disent" or k.startswith("disent.")}
    pkg = types.ModuleType("disent")
    pkg.__path__ = [str(root)]
    metrics = types.ModuleType("disent.metrics")
    metrics.__path__ = [str(root / "metrics")]
    dataset = types.ModuleType("disent.dataset")
    dataset.DisentDataset = object  # type: ignore[attr-defined]
    util = types.ModuleType("disent.util")
    util.to_numpy = np.asarray  # type: ignore[attr-defined]
    function = types.ModuleType("disent.util.function")
    function.wrapped_partial = lambda f, *a, **k: functools.update_wrapper(  # type: ignore[attr-defined]
        functools.partial(f, *a, **k), f
    )
    stand_ins = {
        "disent": pkg,
        "disent.metrics": metrics,
        "disent.dataset": dataset,
        "disent.util": util,
        "disent.util.function": function,
    }
    out: dict[str, Any] = {}
    try:
        sys.modules.update(stand_ins)
        for name in ("utils", "_mig", "_dci"):
            s = importlib.util.spec_from_file_location(
                f"disent.metrics.{name}", root / "metrics" / f"{name}.py"
            )
            assert s is not None and s.loader is not None
            module = importlib.util.module_from_spec(s)
            sys.modules[s.name] = module
            s.loader.exec_module(module)
            setattr(metrics, name, module)
            out[name] = module
    finally:  # leave sys.modules as found
        for k in [k for k in sys.modules if k == "disent" or k.startswith("disent.")]:
            del sys.modules[k]
        sys.modules.update(saved)
    return out


def irs_published(factors: np.ndarray, codes: np.ndarray, diff_quantile: float = 0.99) -> dict:
    """IRS as disentanglement_lib's ``irs.py`` writes it (Suter et al. 2019), loops and numpy:
    factors discretised by 20-bin histograms, constant codes dropped, then
    ``scalable_disentanglement_score``. ``factors`` ``(F, N)``, ``codes`` ``(n, N)``."""
    discrete = np.zeros_like(factors, dtype=np.int64)
    for i in range(factors.shape[0]):
        discrete[i] = np.digitize(factors[i], np.histogram(factors[i], 20)[1][:-1])
    active = codes[codes.std(axis=1) > 0.0]
    if not active.any():
        return {"avg_score": 0.0}
    gen_factors, latents = discrete.T, active.T
    num_gen, num_lat = gen_factors.shape[1], latents.shape[1]
    max_deviations = np.max(np.abs(latents - latents.mean(axis=0)), axis=0)
    cum_deviations = np.zeros([num_lat, num_gen])
    for i in range(num_gen):
        unique_factors = np.unique(gen_factors[:, i], axis=0)
        for k in range(unique_factors.shape[0]):
            match = gen_factors[:, i] == unique_factors[k]
            e_loc = np.mean(latents[match, :], axis=0)
            diffs = np.abs(latents[match, :] - e_loc)
            cum_deviations[:, i] += np.percentile(diffs, q=diff_quantile * 100, axis=0)
        cum_deviations[:, i] /= unique_factors.shape[0]
    irs_matrix = 1.0 - cum_deviations / max_deviations[:, np.newaxis]
    scores = irs_matrix.max(axis=1)
    avg = (
        np.average(scores, weights=max_deviations)
        if np.sum(max_deviations) > 0.0
        else np.mean(scores)
    )
    return {"avg_score": avg, "IRS_matrix": irs_matrix, "parents": irs_matrix.argmax(axis=1)}
