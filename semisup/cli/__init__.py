"""The ``semisup`` command line: parses arguments, calls the library, prints with rich.

Every user error is a :class:`~semisup.errors.SemisupError`, printed as one
line on stderr with exit code 2; ``semisup --debug ...`` adds the traceback.
The commands live in submodules by topic: :mod:`.run` (run, compare) and
:mod:`.data` (data demo / extract / split / inspect), :mod:`.evaluate` (threshold-sweep,
evaluate, predict, embed, report), :mod:`.plugins` (pretext list, aggregator list) and
:mod:`.recipe` (recipe keys), :mod:`.select` (select, select-simulate), :mod:`.label`
(the labeling page) and :mod:`.export` (model folder, ONNX, TorchScript).
"""

from __future__ import annotations

import os
import sys
import traceback

import typer
from rich.markup import escape

from semisup.cli.app import app, errors
from semisup.cli import data, evaluate, export, label, plugins, recipe, run, select  # noqa: F401  (register the commands)
from semisup.errors import PeerFailed, SemisupError

try:  # typer >= 0.20 carries its own copy of click
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older typer uses click itself
    from click import exceptions as click_errors


def main() -> None:
    """Entry point: run the app, turning user errors into one line and exit code 2.

    Command-line usage errors (a missing argument, an unknown option) are one
    line too, naming the command and where its help is.
    """
    debug = "--debug" in sys.argv[1:]
    try:
        code = app(standalone_mode=False, prog_name="semisup")  # errors come back here, not as boxes
    except PeerFailed as exc:  # another process of a torchrun run failed and printed why: rank 0 repeats it
        if os.environ.get("RANK", "0") == "0":
            _error(str(exc), debug)
        code = 2
    except SemisupError as exc:
        _error(str(exc), debug)
        code = 2
    except click_errors.NoArgsIsHelpError:
        code = 2  # the help was shown
    except click_errors.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx else "semisup"
        _error(f"{command}: {exc.format_message().rstrip('.')} (see `{command} --help`)", debug)
        code = exc.exit_code
    except click_errors.ClickException as exc:
        _error(exc.format_message(), debug)
        code = exc.exit_code
    except typer.Abort:
        code = 130
    except Exception as exc:
        if not lost_peer(exc):
            raise
        _error("lost contact with another process of this torchrun run (it failed or was stopped, and says why "
               f"in its own output): {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", debug)
        code = 2
    if code == 130:
        errors.print("interrupted (a run continues with `semisup run --resume RUN_DIR`)")
    code = code if isinstance(code, int) else 0
    if code and "TORCHELASTIC_RUN_ID" in os.environ:
        # a torchrun process that failed leaves without tearing its process group down: that can wait
        # on, or abort over, the other processes' half-closed connections; its exit code must be its own
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def lost_peer(exc: BaseException) -> bool:
    """Whether ``exc`` is a collective that broke because another process of a data-parallel run
    died (gloo: "connection closed by peer"), not a fault of this process."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or "torch.distributed" not in sys.modules:
        return False
    import torch.distributed as dist

    return isinstance(exc, (dist.DistBackendError, dist.DistNetworkError)) or (
        isinstance(exc, RuntimeError) and "gloo" in str(exc).lower())


def _error(message: str, debug: bool) -> None:
    """Print ``error: MESSAGE`` as one line on stderr (with the traceback under ``--debug``)."""
    if debug:
        traceback.print_exc()
    errors.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


__all__ = ["app", "main"]
