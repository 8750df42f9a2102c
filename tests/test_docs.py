"""The documentation: the site builds with --strict, its key reference is the schema's, its tables agree
with the files that made them, and every shell or Python block in it runs or says why not."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from semisup.config import reference, schema
from conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)
NOT_RUN = re.compile(r"<!-- not run: (.*?) -->\s*$")
RUNNABLE = {"bash", "sh", "shell", "python"}


def mkdocs(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """``mkdocs ARGS`` in ``cwd``, with semisup importable for the site's hooks."""
    pytest.importorskip("mkdocs", reason="the docs extra is not installed (pip install -e '.[docs]')")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "mkdocs", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


# ---------------------------------------------------------------- the key reference


def test_every_recipe_key_has_a_doc():
    assert reference.undocumented_keys() == []


@dataclasses.dataclass(frozen=True)
class Extra:
    """``[extra]``: a section with a key that has no doc, for the test below."""

    documented: int = schema.spec(1, doc="has a doc")
    bare: int = schema.spec(2)


@dataclasses.dataclass(frozen=True)
class WithExtra(schema.Recipe):
    """A recipe with the section above."""

    extra: Extra = dataclasses.field(default_factory=Extra)


def test_an_undocumented_key_is_found(monkeypatch):
    """The check above can fail: a key without a doc is named."""
    monkeypatch.setattr(schema, "Recipe", WithExtra)
    assert reference.undocumented_keys() == ["extra.bare"]


def test_the_terminal_and_the_site_show_the_same_keys():
    every = [row.key for section in reference.sections() for row in reference.key_rows(section)]
    assert len(every) > 100 and "data.root" in every and "tasks.aggregator" in every
    terminal = run_cli("recipe", "keys")
    assert terminal.returncode == 0
    assert all(key in terminal.stdout for key in every)
    one = run_cli("recipe", "keys", "loss")
    assert "loss.gamma_neg" in one.stdout and "data.root" not in one.stdout
    assert "x >= 0" in one.stdout                                     # the range, read from the schema
    bad = run_cli("recipe", "keys", "nope")
    assert bad.returncode == 2 and "no section 'nope'" in bad.stderr and "Traceback" not in bad.stderr
    page = run_cli("recipe", "keys", "--markdown")
    assert page.stdout == reference.reference_markdown() + "\n"


# ---------------------------------------------------------------- the site


@pytest.mark.slow
def test_the_site_builds_strictly_with_every_key(tmp_path):
    built = mkdocs("build", "--strict", "--site-dir", str(tmp_path / "site"))
    assert built.returncode == 0, built.stderr[-3000:]
    keys_page = (tmp_path / "site" / "reference" / "recipe-keys" / "index.html").read_text()
    for section in reference.sections():
        for row in reference.key_rows(section):
            assert f"<code>{row.key}</code>" in keys_page, f"{row.key} is not on the generated page"
    assert "frames/&lt;id&gt;/" in keys_page                            # not swallowed as an HTML tag
    plugins = (tmp_path / "site" / "reference" / "plugins" / "index.html").read_text()
    for name in ("semisup.pretext.base.PretextTask", "semisup.models.aggregators.Aggregator",
                 "semisup.objectives.consistency.ConsistencyObjective", "semisup.selection.strategies.Strategy"):
        assert f'id="{name}"' in plugins                                # generated from the docstrings
    assert ":meth:" not in plugins and ":class:" not in plugins        # Sphinx roles read as prose


@pytest.mark.slow
def test_a_broken_link_or_a_page_outside_the_navigation_fails_the_build(tmp_path):
    for mutation in ("link", "page"):
        copy = tmp_path / mutation
        shutil.copytree(ROOT / "docs", copy / "docs")
        shutil.copy(ROOT / "mkdocs.yml", copy / "mkdocs.yml")
        if mutation == "link":
            with open(copy / "docs" / "index.md", "a") as page:
                page.write("\nSee [nothing](no-such-page.md).\n")
        else:
            (copy / "docs" / "orphan.md").write_text("# An orphan\n")
        built = mkdocs("build", "--strict", "--site-dir", str(copy / "site"), cwd=copy)
        assert built.returncode != 0
        assert ("no-such-page.md" if mutation == "link" else "orphan.md") in built.stderr


# ---------------------------------------------------------------- pages


def test_the_readme_is_a_front_door():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 250
    assert "pip install . && semisup run recipes/sesemi.toml" in readme
    assert 'pip install -e ".[test]" && python -m pytest -q' in readme


def copies(text: str) -> dict[str, list[str]]:
    """Every fenced results table in a page: name -> the texts between the fences."""
    found: dict[str, list[str]] = {}
    for match in re.finditer(r"<!-- results:([\w-]+) -->\n(.*?)<!-- /results:\1 -->", text, re.S):
        found.setdefault(match.group(1), []).append(match.group(2))
    return found


def test_every_copy_of_a_results_table_is_the_file_that_made_it():
    made = {path.stem: path.read_text() for path in (ROOT / "docs" / "results").glob("*.md")}
    assert made, "no results table has been made (python scripts/results.py NAME)"
    seen = set()
    for page in PAGES:
        for name, texts in copies(page.read_text()).items():
            assert name in made, f"{page.name}: table {name!r} has no docs/results/{name}.md"
            for text in texts:
                assert text == made[name], f"{page.name}: table {name!r} differs from docs/results/{name}.md"
            seen.add(name)
    assert seen == set(made)
    for name, text in made.items():
        assert "Made by `python scripts/results.py" in text and "precision" in text, name


def blocks() -> list[tuple[str, int, str, str, str]]:
    """Every shell or Python block of the README and the docs: (page, line, language, code, reason not run)."""
    found = []
    for page in PAGES:
        text = page.read_text()
        for match in FENCE.finditer(text):
            language = match.group(1)
            if language not in RUNNABLE:
                continue
            before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            reason = NOT_RUN.search(before)
            line = text.count("\n", 0, match.start()) + 1
            found.append((str(page.relative_to(ROOT)), line, language, match.group(2),
                          reason.group(1).strip() if reason else ""))
    return found


def test_the_blocks_are_found():
    found = blocks()
    assert len(found) > 20
    assert any(not reason for *_, reason in found), "no block is run"
    assert all("```" not in code for *_, code, _ in found)


RUN = [b for b in blocks() if not b[4]]


@pytest.mark.parametrize("page, line, language, code, reason", RUN, ids=[f"{b[0]}:{b[1]}" for b in RUN])
def test_a_block_that_is_not_marked_runs(page, line, language, code, reason, tmp_path):
    """An unmarked block runs as written, in a scratch folder beside a copy of the recipes."""
    shutil.copytree(ROOT / "recipes", tmp_path / "recipes")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(tmp_path)}
    if language == "python":
        (tmp_path / "block.py").write_text(code)
        command = [sys.executable, "block.py"]
    else:
        command = ["bash", "-euo", "pipefail", "-c", code]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{page}:{line}: {done.stderr[-2000:]}"
