"""MkDocs hooks: pages generated from the code when the site is built.

``reference/recipe-keys.md`` is :func:`semisup.config.reference.reference_markdown`,
so the key reference is the schema's own ``doc`` strings and cannot drift from it.

semisup's docstrings cross-reference with Sphinx roles (``:class:`~semisup.x.Y```),
which mkdocstrings renders as the literal role before the code; the last hook
drops the role and the ``~`` so the reference reads as prose.
"""

from __future__ import annotations

import re

from mkdocs.structure.files import File, Files

ROLE = re.compile(r":(?:class|meth|func|attr|mod|data|exc|obj):(<code>)~?")


def on_files(files: Files, config) -> Files:
    """Add the generated pages to the site."""
    from semisup.config.reference import reference_markdown

    files.append(File.generated(config, "reference/recipe-keys.md", content=reference_markdown()))
    return files


def on_page_content(html: str, page, config, files) -> str:
    """Sphinx roles in rendered docstrings: ``:meth:<code>x</code>`` -> ``<code>x</code>``."""
    return ROLE.sub(r"\1", html)
