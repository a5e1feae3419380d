"""The package's layout: no import cycles, and the core never imports the optional layers."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "consistency"
OPTIONAL = (
    "consistency.models",
    "consistency.data",
    "consistency.train",
    "consistency.plots",
    "consistency.metrics",
    "consistency.cli",
    "consistency.integrations",
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Modules of the package that ``path`` imports anywhere (module level, functions,
    ``TYPE_CHECKING`` blocks)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("consistency"):
                submodules = {f"{target}.{alias.name}" for alias in node.names}
                submodules = {m for m in submodules if _exists(m)}
                # "from . import plots" imports the module plots (the package is already loaded)
                found |= submodules if len(submodules) == len(node.names) else {target}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("consistency")}
    found.discard(name)
    return found


def _exists(module: str) -> bool:
    path = PACKAGE.parent / Path(*module.split("."))
    return path.with_suffix(".py").exists() or path.is_dir()


GRAPH = {_module_name(p): _imports(p) for p in PACKAGE.rglob("*.py")}


def test_no_module_imports_a_module_that_imports_it_back() -> None:
    def reach(start: str) -> set[str]:
        seen: set[str] = set()
        stack = [start]
        while stack:
            for nxt in GRAPH.get(stack.pop(), set()):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return seen

    # a package's __init__ re-exports its children, which is not a cycle of the code
    cycles = sorted(
        (a, b)
        for a, deps in GRAPH.items()
        for b in deps
        if b in GRAPH
        and a in reach(b)
        and not (a.startswith(b + ".") or b.startswith(a + "."))
        and a != "consistency"
        and b != "consistency"
    )
    assert not cycles, cycles


def test_core_never_imports_the_optional_layers() -> None:
    core = [m for m in GRAPH if not m.startswith(OPTIONAL) and m != "consistency"]
    offenders = {m: sorted(d for d in GRAPH[m] if d.startswith(OPTIONAL)) for m in core}
    assert not {m: d for m, d in offenders.items() if d}, offenders


def test_each_module_imports_alone() -> None:
    """Each module imports in an interpreter where no other module of the package was loaded
    first (one subprocess; the package's modules are dropped from ``sys.modules`` in between)."""
    code = (
        "import importlib, sys\n"
        f"for name in {sorted(GRAPH)!r}:\n"
        "    for loaded in [m for m in sys.modules if m.split('.')[0] == 'consistency']:\n"
        "        del sys.modules[loaded]\n"
        "    importlib.import_module(name)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PACKAGE.parent)
