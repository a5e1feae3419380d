"""Every benchmark script imports: a refactor of the shared helpers that breaks one of them
fails here, not the next time someone runs it for hours."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(p for p in BENCHMARKS.glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_benchmark_script_imports(script: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    name = f"_benchmark_{script.stem}"
    spec = importlib.util.spec_from_file_location(name, script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)  # module level only: main() runs under __main__
    assert module.__doc__, f"{script.name} has no docstring saying what it measures"


def _load(stem: str, monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(f"_benchmark_{stem}", BENCHMARKS / f"{stem}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("arch", ["convbn", "mlp"])
def test_step_cost_floor_writes_the_librarys_estimator(
    arch: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The floor's hand-written term is InvarianceLoss(model)'s value on the same draw (the
    claim its table makes), and a hand-altered term is caught."""
    floor = _load("step_cost_floor", monkeypatch)
    floor.check_same_estimator(arch)  # type: ignore[attr-defined]
    honest = floor.penalty  # type: ignore[attr-defined]
    monkeypatch.setattr(floor, "penalty", lambda *a: 1.001 * honest(*a))
    with pytest.raises(RuntimeError, match="!= InvarianceLoss"):
        floor.check_same_estimator(arch)  # type: ignore[attr-defined]
    monkeypatch.setattr(floor, "penalty", honest)
    monkeypatch.setattr(floor, "WEIGHT", 3.0)
    with pytest.raises(RuntimeError, match="defaults moved"):
        floor.check_same_estimator(arch)  # type: ignore[attr-defined]


def test_step_cost_floor_runs_and_writes_its_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    floor = _load("step_cost_floor", monkeypatch)
    out = tmp_path / "floor.jsonl"
    floor.main(["--archs", "mlp", "--rounds", "2", "--steps", "1", "--out", str(out)])  # type: ignore[attr-defined]
    text = out.with_suffix(".md").read_text()
    for entry in ("plain twin", "xblock", "hand_written", "library", "library_every2"):
        assert f"| {entry} |" in text
    assert "hand_written_constant_statistics" not in text  # no BatchNorm in the MLP
