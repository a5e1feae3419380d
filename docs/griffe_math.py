"""A griffe extension for the API reference, so that the docstrings keep the torchmetrics form
and the site still reads well:

* a reST ``.. math::`` line becomes a display formula (``$$ ... $$``) and ``:math:`x``` an inline
  one (``$x$``), which ``pymdownx.arithmatex`` renders;
* an ``Example:`` section is read as griffe's ``Examples:`` (doctest blocks as code);
* a grouped entry of an ``Args:`` / ``Attributes:`` section (``n_samples, n_interventions: as
  ...``) becomes one entry per name with the same description, as Google style wants.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_MATH = re.compile(r"^(?P<indent>[ \t]*)\.\. math::[ \t]*(?P<body>.*)$", re.MULTILINE)
_ROLE = re.compile(r":math:`([^`]+)`")
_EXAMPLE = re.compile(r"^(?P<indent>[ \t]*)Example:[ \t]*$", re.MULTILINE)
_SECTION = re.compile(r"^(?P<indent>[ \t]*)(Args|Arguments|Parameters|Attributes):[ \t]*$")
_GROUPED = re.compile(
    r"^(?P<indent>[ \t]+)(?P<names>[A-Za-z_]\w*(?:,[ \t]*[A-Za-z_]\w*)+):(?P<rest>.*)$"
)


def _split_grouped(text: str) -> str:
    lines = text.split("\n")
    out: list[str] = []
    section_indent: int | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        head = _SECTION.match(line)
        if head:
            section_indent = len(head["indent"])
            out.append(line)
            i += 1
            continue
        if (
            section_indent is not None
            and line.strip()
            and len(line) - len(line.lstrip()) <= section_indent
        ):
            section_indent = None  # the section ended
        entry = _GROUPED.match(line) if section_indent is not None else None
        if entry is None:
            out.append(line)
            i += 1
            continue
        indent = len(entry["indent"])
        body = [entry["rest"]]
        i += 1
        while i < len(lines) and (
            not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent
        ):
            if not lines[i].strip() and (
                i + 1 >= len(lines) or len(lines[i + 1]) - len(lines[i + 1].lstrip()) <= indent
            ):
                break
            body.append(lines[i])
            i += 1
        for name in (n.strip() for n in entry["names"].split(",")):
            out.append(f"{entry['indent']}{name}:{body[0]}")
            out.extend(body[1:])
    return "\n".join(out)


def to_markdown(text: str) -> str:
    """The docstring with its math as Markdown math and its grouped entries split."""
    text = _MATH.sub(lambda m: f"{m['indent']}$$\n{m['indent']}{m['body']}\n{m['indent']}$$", text)
    text = _ROLE.sub(lambda m: f"${m[1]}$", text)
    text = _EXAMPLE.sub(lambda m: f"{m['indent']}Examples:", text)  # griffe's doctest section
    return _split_grouped(text)


class MathDocstrings(griffe.Extension):
    """Rewrite every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value)
