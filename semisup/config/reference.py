"""The recipe key reference, read from the schema: one source for the docs site and the terminal.

Every key of every section is described by its field in
:mod:`semisup.config.schema`: its type annotation, its default and the range
and ``doc`` that :func:`~semisup.config.schema.spec` attaches. The docs site
renders :func:`reference_markdown` at build time (``docs/hooks.py``) and
``semisup recipe keys`` prints the same rows, so the two cannot drift apart
from the schema. :func:`undocumented_keys` is what the tests hold at zero.

Examples:
    >>> rows = key_rows("loss")
    >>> [(r.key, r.default) for r in rows][:2]
    [('loss.gamma_neg', '4.0'), ('loss.gamma_pos', '1.0')]
    >>> key_rows("model")[0].default
    '"resnet50"'
"""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path
from typing import Any, NamedTuple

from semisup.config import schema
from semisup.config.load import range_text

TABLE_SECTIONS = ("tasks", "pretext", "consistency")
"""Sections written as arrays of tables (``[[tasks]]``): a recipe holds any number of them."""

OPTIONAL_SECTIONS = ("ema", "pretrain", "synthetic_moves")
"""Sections that are off unless the recipe has them."""


class KeyRow(NamedTuple):
    """One recipe key, as the reference shows it."""

    key: str
    type: str
    default: str
    range: str
    doc: str


def sections() -> list[str]:
    """The recipe's sections, in the order of :class:`~semisup.config.schema.Recipe`."""
    return [f.name for f in dataclasses.fields(schema.Recipe)]


def section_header(section: str) -> str:
    """How ``section`` is written in TOML: ``[data]``, ``[[tasks]]``."""
    return f"[[{section}]]" if section in TABLE_SECTIONS else f"[{section}]"


def section_class(section: str) -> type:
    """The schema dataclass of ``section``.

    Raises:
        KeyError: ``section`` is not a section of a recipe.
    """
    hints = typing.get_type_hints(schema.Recipe)
    if section not in hints:
        raise KeyError(section)
    hint = hints[section]
    for candidate in (hint, *typing.get_args(hint)):  # tuple[X, ...] and X | None hold the class inside
        if dataclasses.is_dataclass(candidate):
            return candidate
        for inner in typing.get_args(candidate):
            if dataclasses.is_dataclass(inner):
                return inner
    raise KeyError(section)  # pragma: no cover - every Recipe field is a section dataclass


def key_rows(section: str) -> list[KeyRow]:
    """Every key of ``section`` with its type, default, range and description.

    Raises:
        KeyError: ``section`` is not a section of a recipe.
    """
    cls = section_class(section)
    rows = []
    for f in dataclasses.fields(cls):
        if f.name == "options" and section in ("pretext", "consistency"):
            continue  # the task's or method's own keys, listed with each plug-in
        meta = f.metadata
        rows.append(KeyRow(f"{section}.{f.name}", type_name(f.type), default_text(f), range_text(meta),
                           meta.get("doc", "")))
    return rows


def undocumented_keys() -> list[str]:
    """Keys whose schema field has no ``doc``: the reference would leave them unexplained."""
    return [row.key for section in sections() for row in key_rows(section) if not row.doc.strip()]


def type_name(annotation: Any) -> str:
    """A field's annotation as a reader wants it: ``"a" | "b"`` for literals, no ``typing`` noise.

    >>> type_name('Literal["auto", "fp32"]')
    '"auto" | "fp32"'
    >>> type_name("tuple[int, ...]")
    'list of int'
    """
    text = annotation if isinstance(annotation, str) else str(annotation)
    text = text.replace("typing.", "").replace("pathlib.", "").replace("'", '"')
    text = re.sub(r"Literal\[(.*?)\]", lambda m: " | ".join(p.strip() for p in m.group(1).split(",")), text)
    text = re.sub(r"tuple\[(\w+), \.\.\.\]", r"list of \1", text)
    text = text.replace("dict[str, str]", "table of strings").replace("Path", "path").replace("Any", "table")
    return text


def default_text(f: dataclasses.Field) -> str:
    """A field's default in TOML notation; "required" when it has none."""
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "required"
    return toml_value(value)


def toml_value(value: Any) -> str:
    """``value`` written as in a recipe.

    >>> toml_value(True), toml_value(("Static",)), toml_value({}), toml_value(None)
    ('true', '["Static"]', '{}', '(none)')
    """
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, Path)):
        return f'"{value}"'
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    return repr(value)


def reference_markdown() -> str:
    """The recipe key reference as a Markdown page: a table per section."""
    lines = ["# Recipe keys", "",
             "Every key a recipe may set, read from the schema (`semisup/config/schema.py`) when this site is "
             "built; `semisup recipe keys [SECTION]` prints the same in a terminal. Any key can also be set on "
             "the command line: `--set section.key=value` (TOML values: `--set 'tasks.0.labels=[\"A\", \"B\"]'`).",
             ""]
    for section in sections():
        cls = section_class(section)
        lines += [f"## `{section_header(section)}`", "", first_paragraph(cls.__doc__ or ""), ""]
        if section in OPTIONAL_SECTIONS:
            lines += ["Off unless the recipe has this section.", ""]
        lines += ['<div class="recipe-keys" markdown>', "", "| key | default | what it does |", "|---|---|---|"]
        for row in key_rows(section):
            default = f"`{row.default}`" if row.default != "required" else "**required**"
            kind = row.type + (f"; {row.range}" if row.range else "")
            cells = [f"`{row.key}`", markdown_cell(default),
                     f"{markdown_cell(row.doc)}<br><small>{markdown_cell(kind)}</small>"]
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", "</div>", ""]
    return "\n".join(lines)


def markdown_cell(text: str) -> str:
    r"""``text`` safe in a Markdown table cell: pipes escaped, ``<`` and ``>`` outside code spans as entities
    (``frames/<id>/`` would otherwise be read as an HTML tag and vanish).

    >>> markdown_cell("frames/<id>/ or `a|b`")
    'frames/&lt;id&gt;/ or `a\\|b`'
    """
    parts = text.split("`")
    for i in range(0, len(parts), 2):  # even parts are outside code spans
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts).replace("|", "\\|")


def first_paragraph(docstring: str) -> str:
    r"""The first paragraph of a section's docstring, joined into one line, without its ``[section]:`` prefix.

    >>> first_paragraph("``[eval]``: how test\n    results are scored.\n\nMore.")
    'how test results are scored.'
    """
    paragraph = docstring.strip().split("\n\n")[0]
    text = " ".join(line.strip() for line in paragraph.splitlines()).replace("``", "`")
    return re.sub(r"^`\[+\w+\]+`:\s*", "", text)
