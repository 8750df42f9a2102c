"""What the labeling page works on: a run's selection, its trailers' media, the answers, the merge.

:func:`open_session` reads it all from a run directory: the run's tasks and
vocabularies (its ``config.toml``), the dataset its recipe names (for each
selected trailer's frames or video; a run trained from a feature cache names
its dataset too), the selection CSV (the answers file, see
:mod:`semisup.label.answers`) and where the labels are merged
(``labels.csv`` of a folder-format dataset).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from semisup.data.annotate import Merged, merge_labels
from semisup.data.samples import Sample, TaskSpec
from semisup.errors import SemisupError
from semisup.label.answers import Answers
from semisup.label.thumbnails import Thumbnails

MERGEABLE = ("folder", "demo", "demo-shots", "demo-moves")
"""Dataset formats whose labels live in a ``labels.csv`` that answers can be merged into."""


@dataclass
class LabelSession:
    """Everything the page serves and writes.

    Attributes:
        run: the run directory; ``title``: shown on the page.
        answers: the selection CSV and its answers.
        tasks: the run's tasks (vocabularies and kinds).
        samples: the selected trailers by position (``None`` where the dataset no longer has one).
        thumbnails: their strips.
        data_root: the dataset's folder (media paths of a Label Studio import are relative to it).
        root, labels_file: the dataset and its labels file that merging writes (``root`` is
            ``None`` for formats without one); ``merge_note`` says why merging is off.
    """

    run: Path
    title: str
    answers: Answers
    tasks: list[TaskSpec]
    samples: list[Sample | None]
    thumbnails: Thumbnails
    data_root: Path
    root: Path | None
    labels_file: str
    merge_note: str = ""

    def merge(self) -> Merged:
        """Merge every answered row into the dataset's labels file, as ``semisup data label --partial`` does
        (rows skipped, marked unsure or not reached yet stay unlabeled; rows merged before are counted).

        Raises:
            SemisupError: merging is off for this dataset, or the rows have problems (nothing written).
        """
        if self.root is None:
            raise SemisupError(self.merge_note)
        return merge_labels(self.root, self.answers.path, self.labels_file, partial=True)


def open_session(run_dir: Path, selection: Path | None = None, frames: int = 12, height: int = 144) -> LabelSession:
    """Read a run, its selection and its dataset for the labeling page.

    Args:
        run_dir: a trained run.
        selection: the CSV ``semisup select`` wrote (default ``RUN_DIR/select.csv``).
        frames: thumbnails per trailer; ``height``: their height in pixels.

    Raises:
        SemisupError: not a run, no selection, a selection of other tasks, an unreadable dataset.
    """
    from semisup.build import read_recipe_data
    from semisup.evaluate.runs import RunDir, recipe_tasks

    run = RunDir.open(run_dir)
    selection = Path(selection) if selection else run.path / "select.csv"
    if not selection.is_file():
        raise SemisupError(f"{selection}: no selection to label (make one with `semisup select {run.path} "
                           "--budget N`)")
    recipe = run.recipe()
    tasks = recipe_tasks(recipe)
    answers = Answers(selection, tasks)
    dataset = read_recipe_data(recipe.data, recipe.tasks)
    by_id = {s.id: s for s in dataset.samples}
    samples = [by_id.get(row.id) for row in answers.rows()]
    root: Path | None = Path(recipe.data.root).expanduser()
    note = ""
    if recipe.data.format not in MERGEABLE:
        root, note = None, (f"the run's dataset ({recipe.data.format} format) has no labels.csv to merge into; "
                            f"the answers are in {selection}")
    elif not (root / recipe.data.labels_file).is_file():
        root, note = None, f"{Path(recipe.data.root) / recipe.data.labels_file}: not found, nothing to merge into"
    return LabelSession(run.path, f"{recipe.run.name}: {selection.name}", answers, tasks, samples,
                        Thumbnails(run.path / "label" / "thumbnails", frames, height),
                        Path(recipe.data.root).expanduser(), root,
                        recipe.data.labels_file, note)
