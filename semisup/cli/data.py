"""``semisup data``: demo, extract, split, index, inspect, label."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from semisup.cli.app import console, data_app, errors, fmt
from semisup.data.index import Listing
from semisup.data.samples import Dataset
from semisup.errors import SemisupError

FORMAT_HELP = "Layout: folder, demo, demo-shots, demo-moves, movienet or movieshots."
# Typer renders help as rich markup, so recipe sections like [data] are escaped.
RECIPE_HELP = escape("Take the layout, its options and the tasks from this recipe's [data] and [[tasks]].")


def _progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("eta"),
                    TimeRemainingColumn(), console=errors)


def read_for_command(root: Optional[Path], fmt_name: Optional[str], recipe: Optional[Path],
                     ignore_split: bool = False, listing: Optional[Listing] = None) -> tuple[Dataset, str, Path]:
    """The dataset a ``data`` command works on: from a recipe, or a root and a layout; its folders
    listed through ``listing``, else from its index when it has one."""
    from semisup.data.folder import read_csv
    from semisup.data.formats import FORMATS, default_tasks, read_dataset
    from semisup.data.index import open_listing

    if recipe is not None:
        from semisup.config import load_recipe
        from semisup.build import read_recipe_data

        loaded = load_recipe(recipe)
        return (read_recipe_data(loaded.data, loaded.tasks, ignore_split, listing), loaded.data.format,
                loaded.data.root.expanduser())
    if root is None:
        raise SemisupError("give a dataset ROOT (with --format) or --recipe RECIPE")
    fmt_name = fmt_name or "folder"
    if fmt_name not in FORMATS:
        raise SemisupError(f"--format: unknown format {fmt_name!r} (expected one of {', '.join(FORMATS)})")
    if fmt_name == "shards":  # a folder or a URL; the tasks it was written with
        from semisup.data.shards import shard_tasks

        return read_dataset("shards", root, shard_tasks(root), ignore_split=ignore_split), fmt_name, root
    columns: list[str] = []
    if fmt_name in ("folder", "demo") and root.is_dir():
        columns = read_csv(root / "labels.csv")[1]
    return read_dataset(fmt_name, root, default_tasks(fmt_name, columns), ignore_split=ignore_split,
                        listing=listing or open_listing(root)), fmt_name, root


def _recipe_format(recipe: Path) -> str:
    from semisup.config import load_recipe

    return load_recipe(recipe).data.format


def _listing_for(root: Optional[Path], recipe: Optional[Path]) -> Listing | None:
    """The folder listing a command reads a dataset through: the dataset's index when it has one."""
    from semisup.data.index import open_listing

    if recipe is not None:
        from semisup.config import load_recipe

        data = load_recipe(recipe).data
        return None if data.format == "shards" else open_listing(data.root, data.index)
    return open_listing(root) if root is not None else None


@data_app.command("demo")
def demo(
    out: Path = typer.Argument(..., help="Folder to write (must not exist or be empty)."),
    seed: int = typer.Option(0, help="Same seed, same dataset."),
    scale: float = typer.Option(1.0, help="Multiply every split's size (0.1 for a tiny copy)."),
    variant: str = typer.Option("genres", help="genres: trailers with genres; shots: shots with a shot scale "
                                               "and a camera movement; moves: the cross-source camera movement "
                                               "benchmark."),
) -> None:
    """Write the built-in demo dataset in the generic folder format."""
    from semisup.data.demo import VARIANTS, write_demo

    if scale <= 0:
        raise SemisupError(f"--scale: expected a positive number, got {scale}")
    if variant not in VARIANTS:
        raise SemisupError(f"--variant: expected one of {', '.join(VARIANTS)}, got {variant!r}")
    with errors.status(f"rendering the demo's {variant}..."):
        summary = write_demo(out, seed=seed, scale=scale, variant=variant)
    for column, counts in summary.label_counts.items():
        table = Table(title=f"demo dataset: {summary.trailers} samples, {summary.frames} frames: {column}")
        table.add_column("label")
        table.add_column("samples", justify="right")
        for label, count in counts.items():
            table.add_row(label, str(count))
        console.print(table)
    console.print("splits: " + ", ".join(f"{k} {v}" for k, v in summary.splits.items()))
    console.print(f"written to [bold]{summary.root}[/]")


@data_app.command("extract")
def extract(
    src: Path = typer.Argument(..., help="Folder of videos (searched recursively)."),
    out: Path = typer.Argument(..., help="Dataset folder to write frames/<id>/ into."),
    mode: str = typer.Option("even", help="even: COUNT evenly spaced frames; shots: one frame per detected shot."),
    count: int = typer.Option(16, help="Frames per video in even mode."),
    short_side: int = typer.Option(240, help="Scale frames so their short side has this many pixels."),
    quality: int = typer.Option(90, help="JPEG quality."),
    workers: int = typer.Option(2, help="Videos decoded in parallel."),
) -> None:
    """Turn videos into frame folders (resumable: finished videos are skipped)."""
    from semisup.data.extract import check_extract_options, extract_videos, find_videos

    check_extract_options(mode, count, short_side, quality, workers)  # before the progress bar shows
    total = len(find_videos(src))
    started = time.monotonic()
    with _progress() as bars:
        task = bars.add_task("videos", total=total, rate="")

        def advance(result) -> None:
            done = bars.tasks[0].completed + 1
            rate = done / max(time.monotonic() - started, 1e-9)
            bars.update(task, advance=1, rate=f"{rate:.1f} videos/s")
            if result.status == "failed":
                bars.console.print(f"[yellow]skipped[/] {result.source}: {result.message}")

        results = extract_videos(src, out, mode, count, short_side, quality, workers, on_result=advance)
    counts = {status: sum(r.status == status for r in results) for status in ("done", "skipped", "failed")}
    frames = sum(r.frames for r in results if r.status == "done")
    console.print(f"{counts['done']} extracted ({frames} frames), {counts['skipped']} already there, "
                  f"{counts['failed']} failed; manifest: {out / 'extract.csv'}")
    for r in results:
        if r.message and r.status != "failed":
            console.print(f"[yellow]note[/] {r.source}: {r.message}")
    if counts["failed"] == len(results):
        raise SemisupError(f"{src}: none of the {len(results)} videos could be decoded "
                           f"(first: {results[0].source}: {results[0].message})")


@data_app.command("split")
def split(
    root: Optional[Path] = typer.Argument(None, help="Dataset folder."),
    fmt_name: Optional[str] = typer.Option(None, "--format", help=FORMAT_HELP),
    recipe: Optional[Path] = typer.Option(None, "--recipe", help=RECIPE_HELP),
    val: float = typer.Option(0.1, help="Fraction of labeled samples for validation."),
    test: float = typer.Option(0.2, help="Fraction of labeled samples for test."),
    labeled: int = typer.Option(0, help="Keep labels on about this many train samples; the rest become unlabeled."),
    labeled_fraction: float = typer.Option(1.0, help="... or on this fraction of the train samples."),
    seed: int = typer.Option(0, help="Same seed, same split."),
    force: bool = typer.Option(False, "--force", help="Replace an existing split (the old file is kept as .bak)."),
) -> None:
    """Write a seeded, stratified (multi-label), grouped split: train / val / test / unlabeled."""
    from semisup.data.formats import FOLDER_FORMATS
    from semisup.data.splits import SplitPlan, split_dataset, split_shares, write_split_column, write_split_file

    if fmt_name == "shards" or (recipe is not None and _recipe_format(recipe) == "shards"):
        raise SemisupError("data split: shards keep the split they were written with; split the source "
                           "dataset, then `semisup data shard ROOT OUT --force`")
    dataset, fmt_name, root = read_for_command(root, fmt_name, recipe, ignore_split=True)
    if dataset.fatal():
        raise SemisupError(dataset.fatal()[0].message + " (fix the data first: `semisup data inspect`)")
    try:
        plan = SplitPlan(val, test, labeled_fraction, labeled, seed)
    except ValueError as exc:
        raise SemisupError(f"--val/--test/--labeled: {exc}") from None
    try:
        splits = split_dataset(dataset.samples, dataset.tasks, plan)
    except ValueError as exc:
        raise SemisupError(f"--labeled/--labeled-fraction: {exc}") from None
    if fmt_name in FOLDER_FORMATS:
        target = Path(dataset.source)
        had = any(s.strip() for s in _column(target, "split"))
        if had and not force:
            raise SemisupError(f"{target}: already has a split column (use --force to replace it; a .bak copy is kept)")
        backup = write_split_column(target, splits)
    else:
        target = root / "split.csv"
        if target.exists() and not force:
            raise SemisupError(f"{target}: exists (use --force to replace it; a .bak copy is kept)")
        backup = write_split_file(target, splits)
    _print_split(dataset, splits, split_shares(dataset.samples, dataset.tasks, splits))
    console.print(f"split written to [bold]{target}[/]" + (f" (previous file kept as {backup.name})" if backup else ""))
    if fmt_name == "movieshots":
        console.print("note: recipes use MovieShots' official split when its file exists; "
                      'set data.split_file = "split.csv" to use this one')


def _max_unreadable(recipe: Optional[Path]) -> float:
    """The recipe's ``data.max_unreadable``, or the schema's default without a recipe."""
    from dataclasses import fields

    from semisup.config import DataConfig, load_recipe

    if recipe is not None:
        return load_recipe(recipe).data.max_unreadable
    return next(f.default for f in fields(DataConfig) if f.name == "max_unreadable")


def _column(path: Path, name: str) -> list[str]:
    from semisup.data.folder import read_csv

    rows, columns = read_csv(path)
    return [row.get(name) or "" for _, row in rows] if name in columns else []


def _print_split(dataset: Dataset, splits: dict[str, str], shares: dict) -> None:
    counts = {name: sum(1 for s in splits.values() if s == name) for name in ("train", "val", "test", "unlabeled")}
    console.print("samples: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    for task, table_data in shares.items():
        table = Table(title=f"{task}: share of samples with each label")
        for column in ("label", "all", "train", "val", "test"):
            table.add_column(column, justify="left" if column == "label" else "right")
        for label, by_split in table_data.items():
            table.add_row(label, *(fmt(100 * by_split[k], 1) + "%" if by_split[k] == by_split[k] else "-"
                                   for k in ("all", "train", "val", "test")))
        console.print(table)


@data_app.command("label")
def label(
    root: Path = typer.Argument(..., help="Folder-format dataset (its labels.csv is updated)."),
    selection: Path = typer.Argument(..., help="The CSV `semisup select` wrote, with its task columns filled in, "
                                               "or a Label Studio JSON export of its tasks."),
    labels_file: str = typer.Option("labels.csv", "--labels-file", help="The labels CSV inside ROOT."),
    partial: bool = typer.Option(False, "--partial", help="Merge the filled-in rows, leave empty rows unlabeled."),
    allow_new_labels: bool = typer.Option(False, "--allow-new-labels",
                                          help="Admit labels the dataset does not use yet."),
) -> None:
    """Merge hand-filled labels into labels.csv (those trailers move to train); the old file is backed up."""
    from semisup.data.annotate import merge_labels
    from semisup.label.studio import merge_export

    merge = merge_export if selection.suffix.lower() == ".json" else merge_labels
    result = merge(root, selection, labels_file, partial=partial, allow_new_labels=allow_new_labels)
    skipped = f"; {len(result.skipped)} rows left unlabeled (empty, skipped or unsure)" if result.skipped else ""
    skipped += f"; {len(result.already)} merged before" if result.already else ""
    console.print(f"{len(result.labeled)} trailers labeled ({', '.join(result.tasks)}) and moved to train in "
                  f"[bold]{escape(str(result.labels_file))}[/]{skipped}; the old file is "
                  f"{escape(str(result.backup))}")


@data_app.command("index")
def index(
    root: Optional[Path] = typer.Argument(None, help="Dataset folder."),
    fmt_name: Optional[str] = typer.Option(None, "--format", help=FORMAT_HELP),
    recipe: Optional[Path] = typer.Option(None, "--recipe", help=RECIPE_HELP),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the index here (for a dataset folder you cannot "
                                                           "write to; name it in the recipe's data.index). "
                                                           "Default: ROOT/semisup-index.parquet, or data.index."),
    refresh: bool = typer.Option(False, "--refresh", help="Write an existing index again (after frames were "
                                                          "added to or removed from existing trailers' folders)."),
) -> None:
    """Write the dataset index: every folder listed once and every video's header, in one Parquet file
    that run, inspect, split, features, evaluate, select and embed then read instead of listing the folders."""
    from dataclasses import astuple

    from semisup.data.index import index_path, write_index
    from semisup.data.video import probe

    if root is None and recipe is not None:
        from semisup.config import load_recipe

        data = load_recipe(recipe).data
        root, target = data.root.expanduser(), out or index_path(data.root, data.index)
    elif root is not None:
        target = out or index_path(root)
    else:
        raise SemisupError("give a dataset ROOT (with --format) or --recipe RECIPE")
    if target.exists() and not refresh:
        raise SemisupError(f"{target}: the dataset index exists; --refresh writes it again")
    started = time.monotonic()
    listing = Listing(root.expanduser(), record=True)
    with errors.status(f"listing {root}..."):
        dataset, fmt_name, root = read_for_command(root, fmt_name, recipe, listing=listing)
    videos = [s.video for s in dataset.samples if s.video is not None]
    with _progress() as bars:
        task = bars.add_task("video headers", total=len(videos), rate="")
        counts = write_index(listing, target, fmt_name, lambda p: astuple(probe(p)), iter(videos),
                             on_video=lambda: bars.update(task, advance=1))
    console.print(f"[bold]{escape(str(target))}[/]: {counts['folders']} folders ({counts['entries']} entries), "
                  f"{counts['videos']} video headers"
                  + (f", {counts['unreadable videos']} unreadable videos left out" if counts["unreadable videos"]
                     else "")
                  + f"; {len(dataset.samples)} samples, in {time.monotonic() - started:.1f} s")


@data_app.command("shard")
def shard(
    root: Path = typer.Argument(..., help="Dataset folder."),
    out: str = typer.Argument(..., help="Where the shards go: a folder, or an object-store URL (s3://bucket/prefix; "
                                        "another S3-compatible store: set S3_ENDPOINT_URL)."),
    fmt_name: Optional[str] = typer.Option(None, "--format", help=FORMAT_HELP),
    recipe: Optional[Path] = typer.Option(None, "--recipe", help=RECIPE_HELP + " ROOT replaces its data.root."),
    side: int = typer.Option(256, "--side", min=16, help="Side of the stored frames (centre squares); recipes "
                                                          "train from them at data.image_size up to this."),
    video_frames: int = typer.Option(32, "--video-frames", min=1, help="Frames kept per video, evenly spaced "
                                                                       "(a frames folder keeps all its frames)."),
    part_size: int = typer.Option(1000, "--part-size", min=1, help="Trailers per part: the unit a killed call "
                                                                   "resumes from."),
    force: bool = typer.Option(False, "--force", help="Replace a shard dataset at OUT."),
) -> None:
    """Write the dataset into streaming shards (MDS) on disk or object storage, resumable; train from
    them with data.format = "shards" and data.root = OUT."""
    from semisup.data.shards import write_shards

    decoder = "pyav"
    with errors.status(f"reading {root}..."):
        if recipe is not None:
            from semisup.build import read_recipe_data
            from semisup.config import load_recipe

            loaded = load_recipe(recipe, [f'data.root="{root}"'])
            dataset, decoder = read_recipe_data(loaded.data, loaded.tasks), loaded.data.decoder
        else:
            dataset = read_for_command(root, fmt_name, None)[0]
    fatal = dataset.fatal()
    if fatal:
        raise SemisupError(f"{fatal[0].message} (and {len(fatal) - 1} more problems: `semisup data inspect` lists "
                           "them); fix them before sharding" if len(fatal) > 1 else fatal[0].message)
    started = time.monotonic()
    with _progress() as bars:
        task = bars.add_task("trailers", total=len(dataset.samples), rate="")

        def advance() -> None:
            done = bars.tasks[task].completed + 1
            bars.update(task, advance=1, rate=f"{done / max(time.monotonic() - started, 1e-9):.1f} trailers/s")

        summary = write_shards(dataset.samples, dataset.tasks, out, side, video_frames, part_size, force, decoder,
                               on_trailer=advance)
    console.print(f"[bold]{escape(out)}[/]: {summary.trailers} trailers, {summary.frames} frames of {side} px in "
                  f"{summary.parts} parts"
                  + (f" ({summary.resumed_parts} kept from an earlier call)" if summary.resumed_parts else "")
                  + (f"; {summary.skipped_frames} unreadable frames skipped" if summary.skipped_frames else "")
                  + f", in {time.monotonic() - started:.1f} s")
    if summary.left_out:
        errors.print(f"warning: {len(summary.left_out)} trailers without a readable frame left out: "
                     + ", ".join(summary.left_out[:5]) + (" ..." if len(summary.left_out) > 5 else ""))
    console.print(f'train from them: --set data.format=shards --set data.root="{out}"')


@data_app.command("inspect")
def inspect(
    root: Optional[Path] = typer.Argument(None, help="Dataset folder."),
    fmt_name: Optional[str] = typer.Option(None, "--format", help=FORMAT_HELP),
    recipe: Optional[Path] = typer.Option(None, "--recipe", help=RECIPE_HELP),
    check: bool = typer.Option(False, "--check", help="Decode every frame and video (slow, thorough)."),
) -> None:
    """Summarise a dataset and list what is wrong with it. Exit code 1 if a run could not start."""
    from semisup.data.inspect import check_frames, problem_summary, summarise

    listing = _listing_for(root, recipe)
    dataset, _, root = read_for_command(root, fmt_name, recipe, listing=listing)
    summary = summarise(dataset, listing)
    console.print(f"[bold]{root}[/]: {len(dataset.samples)} samples  " +
                  "  ".join(f"{k} {summary.splits.get(k, 0)}" for k in ("train", "val", "test", "unlabeled")) +
                  f"  frames per sample min {summary.frames[0]} / median {summary.frames[1]:g} / max {summary.frames[2]}")
    for task, table_data in summary.labels.items():
        table = Table(title=f"{task} ({summary.kinds[task]}): samples per label; "
                            f"{summary.unlabeled[task]} labeled-split samples lack this task's labels")
        for column in ("label", "train", "val", "test", "total", ""):
            table.add_column(column, justify="left" if column in ("label", "") else "right")
        most = max([sum(v.values()) for v in table_data.values()] or [1]) or 1
        for label, by_split in sorted(table_data.items(), key=lambda kv: -sum(kv[1].values())):
            total = sum(by_split.values())
            table.add_row(label, str(by_split["train"]), str(by_split["val"]), str(by_split["test"]), str(total),
                          "█" * max(1 if total else 0, round(20 * total / most)))
        console.print(table)
    problems = list(dataset.problems)
    if check:
        with _progress() as bars:
            task = bars.add_task("decoding", total=len(dataset.samples), rate="")
            problems += check_frames(dataset.samples, on_sample=lambda: bars.update(task, advance=1),
                                     max_unreadable=_max_unreadable(recipe))
    if not problems:
        console.print("[green]no problems found[/]" + ("" if check else " (--check also decodes every frame)"))
        return
    table = Table(title="problems")
    table.add_column("")
    table.add_column("problem", overflow="fold")
    fatal_kinds = {p.kind for p in problems if p.fatal}
    for line in problem_summary(problems):
        kind = line.split(": ", 1)[0].split(" x ", 1)[1]
        table.add_row("[red]error[/]" if kind in fatal_kinds else "[yellow]warning[/]", line)
    console.print(table)
    if fatal_kinds:
        raise typer.Exit(1)
