"""MkDocs hooks: pages generated from the code when the site is built.

``reference/recipe-keys.md`` is :func:`semisup.config.reference.reference_markdown`,
so the key reference is the schema's own ``doc`` strings and cannot drift from it.
"""

from __future__ import annotations

from mkdocs.structure.files import File, Files


def on_files(files: Files, config) -> Files:
    """Add the generated pages to the site."""
    from semisup.config.reference import reference_markdown

    files.append(File.generated(config, "reference/recipe-keys.md", content=reference_markdown()))
    return files
