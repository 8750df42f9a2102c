"""Read any supported dataset layout by name."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Sequence

from semisup.data.demo import ensure_demo
from semisup.data.folder import read_folder
from semisup.data.index import Listing
from semisup.data.labels import TaskColumn
from semisup.data.movienet import read_movienet
from semisup.data.movieshots import read_movieshots
from semisup.data.samples import Dataset
from semisup.data.shards import read_shards

Format = Literal["folder", "demo", "demo-shots", "demo-moves", "movienet", "movieshots", "shards"]
FORMATS: tuple[str, ...] = ("folder", "demo", "demo-shots", "demo-moves", "movienet", "movieshots", "shards")
DEMO_VARIANTS: dict[str, str] = {"demo": "genres", "demo-shots": "shots", "demo-moves": "moves"}
"""The formats that the demo builds on first use, and the variant each one is."""
FOLDER_FORMATS: tuple[str, ...] = ("folder", *DEMO_VARIANTS)
"""The formats read as the folder layout (labels.csv + frames/<id>/)."""


def read_dataset(fmt: Format, root: Path, tasks: Sequence[TaskColumn], *, labels_file: str = "labels.csv",
                 split_file: str = "", meta_dir: str = "meta", keyframes_dir: str = "keyframes",
                 annotations: str = "v1_full_trailer.json", clips_dir: str = "trailer",
                 ignore_split: bool = False, listing: Listing | None = None, shard_cache: str = "",
                 image_size: int | None = None) -> Dataset:
    """Read a dataset in layout ``fmt`` (the demo's formats are built at ``root`` on first use).

    Keyword options apply to the formats that use them: ``labels_file``
    (folder, demo), ``split_file`` (movienet: default ``split.csv``;
    movieshots: default the official split), ``meta_dir`` and
    ``keyframes_dir`` (movienet), ``annotations`` and ``clips_dir`` (movieshots).
    ``ignore_split`` reads every sample as ``train`` with its labels, to make a new split.
    ``shard_cache`` and ``image_size`` (shards): where remote shards are kept, and the frame side
    a recipe reads (checked against the shards').
    ``listing`` lists the folders (:func:`semisup.data.index.open_listing`: from the dataset's
    index when it has one); default: live.

    Raises:
        SemisupError: the layout is unreadable (see each reader).
    """
    if fmt == "shards":  # a folder or a URL (which a Path would spoil)
        return read_shards(root, tasks, ignore_split, shard_cache, image_size)
    root = Path(root).expanduser()
    if fmt in DEMO_VARIANTS:
        ensure_demo(root, variant=DEMO_VARIANTS[fmt])
    if fmt in FOLDER_FORMATS:
        return read_folder(root, tasks, labels_file, ignore_split, listing)
    if fmt == "movienet":
        return read_movienet(root, tasks, meta_dir, keyframes_dir, split_file or "split.csv", ignore_split, listing)
    if fmt == "movieshots":
        return read_movieshots(root, tasks, annotations, clips_dir, split_file, ignore_split, listing)
    raise ValueError(f"unknown dataset format {fmt!r}; expected one of {', '.join(FORMATS)}")


def default_tasks(fmt: Format, columns: Sequence[str] = ()) -> list[TaskColumn]:
    """The tasks a layout usually holds, for commands run without a recipe.

    folder/demo: every CSV column except ``id``, ``split`` and ``group``, as
    multi-label tasks; movienet: ``genres``; movieshots: ``scale`` and
    ``movement`` (multi-class, with the published class order).
    """
    from semisup.data.movieshots import MOVEMENT_CLASSES, SCALE_CLASSES

    if fmt == "movienet":
        return [TaskColumn("genres", "genres")]
    movement = TaskColumn("movement", "movement", "multiclass", MOVEMENT_CLASSES, unknown="error")
    if fmt in ("movieshots", "demo-shots"):
        return [TaskColumn("scale", "scale", "multiclass", SCALE_CLASSES, unknown="error"), movement]
    if fmt == "demo-moves":
        return [movement]
    return [TaskColumn(c, c) for c in columns if c not in ("id", "split", "group")]
