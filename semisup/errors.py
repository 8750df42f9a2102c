"""The one user-facing error type.

Anything the user can fix (a recipe key, a path, a malformed file) raises
:class:`SemisupError` with a single line that names the file, key or value and
what is expected. The CLI prints that line and exits with code 2; ``--debug``
shows the traceback as well.
"""


class SemisupError(Exception):
    """An error caused by user input, reported as one line without a traceback."""


class PeerFailed(SemisupError):
    """Another process of a data-parallel run failed, and has said why: this one stops too
    (exit code 2; under ``torchrun`` rank 0 repeats the failing process's message)."""


def check_option(ok: bool, name: str, expected: str, value: object) -> None:
    """Raise ``ValueError("NAME: expected EXPECTED, got VALUE")`` unless ``ok``: one option, its
    value and its range, never the list of every constraint of a table.

    Example:
        >>> check_option(0 < 1.5 <= 1, "keep", "0 < keep <= 1", 1.5)
        Traceback (most recent call last):
        ...
        ValueError: keep: expected 0 < keep <= 1, got 1.5
    """
    if not ok:
        raise ValueError(f"{name}: expected {expected}, got {value!r}")
