"""Self-supervised pretext tasks on unlabeled frames: the API, the registry and
entry points, and the built-in tasks (sesemi, rotation, jigsaw, frame-order, arrow-of-time,
camera-move)."""

from semisup.pretext.base import (
    CatalogueEntry,
    PretextOutput,
    PretextTask,
    get_pretext_task,
    pretext_catalogue,
    pretext_key,
    pretext_tasks,
    register_pretext,
)
from semisup.pretext import jigsaw, sesemi, temporal  # noqa: F401  (register the built-in tasks)

__all__ = ["CatalogueEntry", "PretextOutput", "PretextTask", "get_pretext_task", "pretext_catalogue", "pretext_key",
           "pretext_tasks", "register_pretext"]
