"""The ``semisup`` command line: parses arguments, calls the library, prints with rich.

Every user error is a :class:`~semisup.errors.SemisupError`, printed as one
line on stderr with exit code 2; ``semisup --debug ...`` adds the traceback.
The commands live in submodules by topic: :mod:`.run` (run, compare) and
:mod:`.data` (data demo / extract / split / inspect), :mod:`.evaluate` (threshold-sweep,
evaluate, predict, embed, report) and :mod:`.pretext` (pretext list).
"""

from __future__ import annotations

import sys
import traceback

from rich.markup import escape

from semisup.cli.app import app, errors
from semisup.cli import data, evaluate, pretext, run  # noqa: F401  (register the commands)
from semisup.errors import SemisupError


def main() -> None:
    """Entry point: run the app, turning user errors into one line and exit code 2."""
    debug = "--debug" in sys.argv[1:]
    try:
        app()
    except SemisupError as exc:
        if debug:
            traceback.print_exc()
        errors.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        errors.print("interrupted (a run continues with `semisup run --resume RUN_DIR`)")
        sys.exit(130)


__all__ = ["app", "main"]
