"""Objectives: the ways semisup learns, each a loss on one stream's batch.

See :mod:`semisup.objectives.base` for the API the training loop uses,
:mod:`semisup.objectives.consistency` for the ``[[consistency]]`` plug-in API.
"""

from semisup.objectives.base import Augment, Objective, ObjectiveOutput, StepBatch, StepContext
from semisup.objectives.consistency import (CONSISTENCY, ConsistencyObjective, consistency_catalogue,
                                            get_consistency, register_consistency)
from semisup.objectives.pretext import Pretext, clip_frames
from semisup.objectives.simclr import SimCLR
from semisup.objectives.supervised import Supervised
from semisup.objectives import fixmatch, mean_teacher  # noqa: F401  (register the built-in methods)

__all__ = ["Augment", "CONSISTENCY", "ConsistencyObjective", "Objective", "ObjectiveOutput", "Pretext", "SimCLR",
           "StepBatch", "StepContext", "Supervised", "clip_frames", "consistency_catalogue", "get_consistency",
           "register_consistency"]
