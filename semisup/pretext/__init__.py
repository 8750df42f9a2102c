"""Self-supervised pretext tasks on unlabeled frames, by registered name."""

from semisup.pretext.base import (
    PretextOutput,
    PretextTask,
    get_pretext_task,
    pretext_key,
    pretext_tasks,
    register_pretext,
)
from semisup.pretext import sesemi  # noqa: F401  (registers the built-in task)

__all__ = ["PretextOutput", "PretextTask", "get_pretext_task", "pretext_key", "pretext_tasks", "register_pretext"]
