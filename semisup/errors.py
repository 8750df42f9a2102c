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
