"""Writing files safely: atomic replacement, the usual file modes, and never overwriting by accident.

Every file semisup writes goes through :func:`atomic_write`: the content
goes to a hidden temporary file beside the target (``.NAME.XXXX.partial``),
which is renamed over the target only when complete. A crash at any moment
leaves the old file or the new one, never a torn one; a process killed
mid-write leaves at most a ``.partial`` file, which
:func:`remove_stale_partials` deletes when the run starts or resumes.

A rewritten file keeps the mode it had; a new one gets the mode the user's
umask gives (``0644`` with the common ``022``), like any file a program
creates, not the ``0600`` of a bare temporary file.

Commands that write to a path the user names check it first with
:func:`refuse_existing`: an existing file, or a folder that is not empty, is
an error unless ``--force`` is given.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator, Mapping

from semisup.errors import SemisupError

PARTIAL_SUFFIX = ".partial"
# Temporary files of this module, and of releases before it (".best.pt.k2j4_x9a").
_PARTIAL = re.compile(r"^\..+(\.partial|\.pt\.[A-Za-z0-9_]{8})$")


def umask() -> int:
    """The process's file-mode creation mask (read without changing it for good)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def new_file_mode() -> int:
    """The mode a newly created file gets under the current umask (``0o644`` for umask ``022``)."""
    return 0o666 & ~umask()


def new_dir_mode() -> int:
    """The mode a newly created folder gets under the current umask (``0o755`` for umask ``022``)."""
    return 0o777 & ~umask()


@contextmanager
def atomic_write(path: Path, mode: str = "w", **open_kwargs: Any) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success rename it over ``path``.

    The parent folder is created if needed. The file is flushed and synced to
    disk before the rename. On any error the temporary file is removed and
    ``path`` is untouched.

    Args:
        path: the file to (re)write.
        mode: ``"w"`` (text) or ``"wb"`` (binary).
        **open_kwargs: passed to :func:`open` (``encoding``, ``newline``).

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "hello.txt"
        >>> with atomic_write(target) as handle:
        ...     _ = handle.write("hello")
        >>> target.read_text()
        'hello'
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write: mode must be 'w' or 'wb', got {mode!r}")
    path = link_target(Path(path))
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            file_mode = path.stat().st_mode & 0o7777
        except FileNotFoundError:
            file_mode = new_file_mode()
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=PARTIAL_SUFFIX, dir=path.parent)
        with os.fdopen(fd, mode, **open_kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, file_mode)
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in WRITE_FAILURES:
            raise write_failed(path, exc.strerror or str(exc)) from exc
        raise


def link_target(path: Path) -> Path:
    """The file a write to ``path`` should replace: the target when ``path`` is a symbolic link
    (the user's link stays a link), else ``path``.

    Raises:
        SemisupError: a link that does not resolve (a loop).
    """
    if not path.is_symlink():
        return path
    try:
        return path.resolve(strict=False)
    except (RuntimeError, OSError):  # a link to itself
        raise SemisupError(f"{path}: a symbolic link that does not resolve (a loop); replace it") from None


WRITE_FAILURES = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                            errno.EIO, errno.ENOTDIR, errno.EEXIST, errno.EISDIR, errno.ENAMETOOLONG})
"""Errors of writing a file that the user fixes outside semisup (space, quota, permissions, a
read-only disk, a file size limit, a file where a folder should be): :func:`atomic_write` reports
them in one line."""


def write_failed(path: Path, cause: str) -> SemisupError:
    """The one-line error for a file that could not be written (the old file, if any, is untouched)."""
    return SemisupError(f"{path}: could not be written ({cause}); nothing was changed there: make room, fix the "
                        "permissions or move what is in the way, then run the command again (a run continues with "
                        "`semisup run --resume RUN_DIR`)")


def copy_file(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` atomically, keeping its modification time and mode."""
    with Path(source).open("rb") as src, atomic_write(target, "wb") as handle:  # a source error is not a write's
        shutil.copyfileobj(src, handle)
    shutil.copystat(source, target)


def write_text(path: Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    with atomic_write(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON atomically; NaN and infinities become ``null``."""
    with atomic_write(path, "w", encoding="utf-8") as handle:
        json.dump(json_safe(data), handle, indent=2)
        handle.write("\n")


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


@contextmanager
def atomic_folder(path: Path) -> Iterator[Path]:
    """Build a folder under a hidden temporary name beside ``path``, then rename it into place.

    ``path`` must not exist, or be an empty folder (it is replaced). The new
    folder gets the usual mode (not the ``0700`` of a bare temporary folder).
    On any error the temporary folder is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=PARTIAL_SUFFIX, dir=path.parent))
    try:
        os.chmod(tmp, new_dir_mode())
        yield tmp
        if path.is_dir():
            path.rmdir()  # empty, checked by the caller; rmdir refuses anything else
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_stale_partials(folder: Path) -> list[Path]:
    """Delete the temporary files that a killed writer left in ``folder`` (not recursive).

    Call it only where no other process is writing (a run's own folders,
    when the run starts or resumes).

    Returns:
        The files removed.
    """
    removed = []
    if not folder.is_dir():
        return removed
    for entry in os.scandir(folder):
        if _PARTIAL.match(entry.name):
            path = Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def torch_load(path: Path) -> Any:
    """``torch.load`` onto the CPU with ``weights_only=True``: never runs pickled code.

    torch's warnings about a file it refuses (e.g. "Detected pickle protocol 4")
    are silenced: callers turn the exception into one line of their own.

    Raises:
        Exception: whatever ``torch.load`` raises for a missing, foreign or unsafe file.
    """
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.load(path, map_location="cpu", weights_only=True)


def refuse_existing(path: Path, force: bool, what: str = "output", option: str = "--out",
                    kind: str = "file") -> None:
    """Refuse to write over something that exists, unless ``force``.

    Args:
        path: the file or folder a command is about to write.
        force: the user said ``--force``: overwriting is allowed.
        what: what the command writes, for the message.
        option: the option that names ``path``, for the message.
        kind: ``"file"`` (any existing file is refused) or ``"folder"``
            (a non-empty folder is refused; an empty one is fine).

    Raises:
        SemisupError: ``path`` exists (or is of the wrong kind: a folder where
            a file is expected, or the reverse; ``--force`` does not change that).
    """
    path = Path(path)
    if not path.exists():
        return
    if kind == "file":
        if path.is_dir():
            raise SemisupError(f"{path}: is a folder, expected a {what} file ({option})")
        if not force:
            raise SemisupError(f"{path}: already exists (use --force to overwrite it, or choose another {option})")
        return
    if not path.is_dir():
        raise SemisupError(f"{path}: is a file, expected a {what} folder ({option})")
    if not force and any(path.iterdir()):
        raise SemisupError(f"{path}: already exists and is not empty (use --force to write into it, "
                           f"or choose another {option})")


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` (a torn last line is ignored)."""
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records
