"""The examples in the package's docstrings run and print what they say."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import semisup

MODULES = sorted(m.name for m in pkgutil.walk_packages(semisup.__path__, "semisup.")
                 if not m.name.startswith("semisup.cli"))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed"


def test_the_examples_are_found():
    """Guards the test above against finding nothing (it would pass vacuously)."""
    finder = doctest.DocTestFinder()
    found = {name for name in MODULES if any(t.examples for t in finder.find(importlib.import_module(name)))}
    assert {"semisup.io", "semisup.data.health", "semisup.evaluate.metrics", "semisup.data.frames"} <= found
