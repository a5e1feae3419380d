from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bash_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    blocks = _bash_blocks((ROOT / "README.md").read_text())
    assert len(blocks) >= 2, "README must show the main-job and the test command"
    test_command = blocks[1]
    assert "pytest" in test_command
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci


def test_readme_retrofit_snippet_runs_on_a_small_model() -> None:
    """The README's retrofit example runs as written on a small BatchNorm autoencoder, and the
    consistency passes leave the BatchNorm running statistics to the real data."""
    import torch
    from torch import nn

    snippet = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)[0]

    class MyAutoencoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = nn.Sequential(
                nn.Flatten(), nn.Linear(16, 8), nn.BatchNorm1d(8), nn.Linear(8, 6)
            )
            self.latent: nn.Module = nn.Identity()
            self.decoder = nn.Sequential(nn.Linear(6, 16), nn.Unflatten(1, (1, 4, 4)))

    torch.manual_seed(0)
    loader = [torch.rand(16, 1, 4, 4) for _ in range(3)]
    namespace: dict[str, object] = {"MyAutoencoder": MyAutoencoder, "loader": loader}
    exec(compile(snippet, "README.md", "exec"), namespace)
    model = namespace["model"]
    assert isinstance(model, MyAutoencoder)
    bn = model.encoder[2]
    assert isinstance(bn, nn.BatchNorm1d)
    assert int(bn.num_batches_tracked) == len(loader)  # only the three real batches counted
    assert len(namespace["metric"].sampler) == 16 * len(loader)  # type: ignore[attr-defined]
    added = [line for line in snippet.splitlines() if re.search(r"# \(\d\)", line)]
    assert len(added) == 6, added  # the retrofit adds six lines to a user's loop


def test_readme_ground_truth_snippet_runs() -> None:
    """The README's ground-truth snippet runs as written on one of the library's models."""
    import torch

    from consistency import AggregatePosterior
    from consistency.models import build_model

    snippets = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    (snippet,) = [s for s in snippets if "ground_truth_scores" in s]
    torch.manual_seed(0)
    model = build_model("AE", "pendulum", "X").eval()
    sampler = AggregatePosterior(model.n)
    sampler.update(torch.randn(100, model.n))
    namespace: dict[str, object] = {"model": model, "sampler": sampler}
    exec(compile(snippet, "README.md", "exec"), namespace)
    assert set(namespace["scores"].summary()) >= {"irs", "mig"}  # type: ignore[attr-defined]
    assert namespace["lrm"].matrix.shape == (model.n, model.n)  # type: ignore[attr-defined]


def test_results_page_is_generated_from_the_committed_json() -> None:
    """docs/results.md is exactly what docs/make_results.py writes from benchmarks/results/, and
    the README carries no result table of its own."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "make_results.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    readme = (ROOT / "README.md").read_text()
    assert "| model |" not in readme and "± " not in readme
