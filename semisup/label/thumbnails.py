"""Thumbnail strips of the selected trailers, made once and kept beside the run.

A person labels from a strip of frames in time order: evenly spaced over the
trailer (:func:`semisup.data.frames.even_frames`), shrunk to a fixed height
with their aspect ratio (a shot's scale is judged from its framing), saved as
JPEG under ``RUN_DIR/label/thumbnails/<key>/``. A strip is made the first time
the page asks for it (and ahead of the person by a background thread), written
atomically, and read from disk ever after: a page of 500 trailers opens at
once.

What may be read is fixed here, not by the browser: the page asks for "frame
``k`` of trailer ``n`` of the selection", never for a path. A frame file that
is a symbolic link out of its own folder (or a video that is a link out of
its folder) is not read: it is counted as unreadable, as is a frame PIL or
PyAV cannot decode.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from semisup.data.frames import even_frames
from semisup.data.images import DECODE_ERRORS
from semisup.data.samples import Sample
from semisup.data.video import VideoError, count_frames, read_frames
from semisup.io import atomic_write, write_json

DONE = "strip.json"


@dataclass(frozen=True)
class Strip:
    """A trailer's thumbnails.

    Attributes:
        files: the JPEG files in time order.
        unreadable: frames that could not be shown (undecodable, or links out of their folder).
    """

    files: list[Path]
    unreadable: int


def stays_inside(path: Path) -> bool:
    """Whether ``path`` resolves inside the folder it is listed in (a link out of it does not).

    A frames folder may itself be a link to another disk; a frame inside it may
    not point elsewhere (``/etc/passwd``), nor may a video in its folder.

    Example:
        >>> import os, tempfile
        >>> folder, elsewhere = Path(tempfile.mkdtemp()), Path(tempfile.mkdtemp())
        >>> for place in (folder / "a.jpg", elsewhere / "secret.txt"):
        ...     _ = place.write_bytes(b"x")
        >>> os.symlink(elsewhere / "secret.txt", folder / "b.jpg")
        >>> stays_inside(folder / "a.jpg"), stays_inside(folder / "b.jpg")
        (True, False)
    """
    try:
        return Path(path).resolve(strict=True).is_relative_to(Path(path).parent.resolve(strict=True))
    except (OSError, RuntimeError):  # missing, a loop
        return False


class Thumbnails:
    """The thumbnail cache of one selection.

    Args:
        folder: where strips are kept (``RUN_DIR/label/thumbnails``).
        count: thumbnails per trailer (fewer when a trailer has fewer frames).
        height: their height in pixels.
    """

    def __init__(self, folder: Path, count: int = 12, height: int = 144) -> None:
        self.folder = Path(folder)
        self.count = count
        self.height = height
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def strip(self, sample: Sample) -> Strip:
        """The strip of ``sample``, made now if it does not exist yet (one maker per trailer at a time)."""
        place = self.folder / self.key(sample)
        done = self._read_done(place)
        if done is not None:
            return done
        with self._guard:
            lock = self._locks.setdefault(sample.id, threading.Lock())
        with lock:
            done = self._read_done(place)  # another request made it while this one waited
            if done is not None:
                return done
            images, unreadable = self._frames(sample)
            files = []
            for k, image in enumerate(images):
                target = place / f"{k:03d}.jpg"
                with atomic_write(target, "wb") as handle:
                    image.save(handle, format="JPEG", quality=85)
                files.append(target)
            # written last: a strip without it is made again
            write_json(place / DONE, {"id": sample.id, "files": [f.name for f in files], "unreadable": unreadable})
            return Strip(files, unreadable)

    def key(self, sample: Sample) -> str:
        """The strip's folder name: ids may hold any character, the name holds none that matters."""
        digest = hashlib.sha1(f"{sample.id}\0{self.count}\0{self.height}".encode()).hexdigest()[:20]
        return digest

    def _read_done(self, place: Path) -> Strip | None:
        try:
            record = json.loads((place / DONE).read_text())
            files = [place / name for name in record["files"]]
            if all(f.is_file() for f in files):
                return Strip(files, int(record["unreadable"]))
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return None

    def _frames(self, sample: Sample) -> tuple[list[Image.Image], int]:
        if sample.video is not None:
            return self._from_video(Path(sample.video))
        picked = even_frames(len(sample.frames), self.count)
        images, unreadable = [], 0
        for i in picked:
            frame = sample.frames[int(i)]
            try:
                images.append(self._shrink(self._open(frame)))
            except (*DECODE_ERRORS, PermissionError):
                unreadable += 1
        return images, unreadable

    def _open(self, frame) -> Image.Image:
        if hasattr(frame, "frame_bytes"):  # a frame inside shards
            return Image.open(io.BytesIO(frame.frame_bytes()))
        if not stays_inside(Path(frame)):
            raise OSError(f"{frame}: a link out of its folder")
        return Image.open(frame)

    def _shrink(self, image: Image.Image) -> Image.Image:
        with image:
            image.draft("RGB", (self.height * 4, self.height))  # JPEG: decode at a reduced scale
            image = image.convert("RGB")
            width = max(1, round(image.width * self.height / image.height))
            return image.resize((width, self.height), Image.BILINEAR)

    def _from_video(self, path: Path) -> tuple[list[Image.Image], int]:
        if not stays_inside(path):
            return [], 1
        try:
            picked = even_frames(max(1, count_frames(path)), self.count)
            frames = read_frames(path, picked, self.height)  # centre squares: the player beside shows the whole frame
        except VideoError:
            return [], 1
        return [Image.fromarray(np.asarray(f)) for f in frames], len(picked) - len(frames)
