"""The learner: every parameter a training stage trains, in one module, and the one
forward a training step goes through.

A stage trains the model (encoder, aggregators, task heads, pretext heads) and
whatever its objectives add (SimCLR's projection head, a plug-in's own
layers). :class:`Learner` holds all of them, so that a data-parallel run can
wrap it once in ``DistributedDataParallel`` (:func:`semisup.distributed.wrap`)
and every gradient that trains anything is averaged by DDP. The EMA teacher is
not in it: it is not trained by gradients.

A step runs one forward per optimiser (``optim.mode = "separate"``: the
objectives an optimiser steps, then its backward and step) or one for all
(``"joint"``). Each forward goes through the wrapper, so each backward that
follows it is one DDP reduction.

Example:
    >>> from semisup.objectives import Supervised
    >>> learner = Learner(nn.Linear(2, 2), [Supervised({})])
    >>> [name for name, _ in learner.named_children()]
    ['model', 'objectives']
"""

from __future__ import annotations

from typing import Sequence

from torch import nn

from semisup.objectives import Objective, ObjectiveOutput, StepBatch, StepContext


class Learner(nn.Module):
    """The model and the objectives that train it, as one module.

    Args:
        model: the network every objective trains (its ``state_dict`` is the checkpoint's model).
        objectives: the stage's objectives; their own parameters (heads) are trained too.
    """

    def __init__(self, model: nn.Module, objectives: Sequence[Objective]) -> None:
        super().__init__()
        self.model = model
        self.objectives = nn.ModuleList(objectives)
        self._by_name = {o.objective_name: o for o in objectives}

    def forward(self, names: Sequence[str], batches: dict[str, StepBatch | None],
                context: StepContext) -> dict[str, ObjectiveOutput]:
        """The losses of the objectives ``names`` (one optimiser's, or all in joint mode),
        each on its stream's batch.

        Args:
            names: objective names, in step order; each must have a batch in ``batches``.
            batches: the step's batch of each stream (``"labeled"``, ``"unlabeled"``).
            context: where training is (step, teacher, autocast).

        Returns:
            Each objective's output by name.
        """
        return {name: self._by_name[name](batches[self._by_name[name].stream], self.model, context)
                for name in names}

    def leaves_parameters_unused(self) -> bool:
        """Whether a forward may not use every trained parameter: with several objectives,
        each optimiser's forward trains its own group (separate mode), and in any mode an
        objective may be inactive (a warm-up) or its stream unreadable on a step. DDP then
        looks for the unused parameters after each forward (a walk over the autograd graph);
        one objective uses all it trains."""
        return len(self.objectives) > 1

    def shard_units(self) -> list[nn.Module]:
        """The encoder's blocks, each sharded as one group under FSDP (``run.parallel = "fsdp"``):
        every child of the timm backbone that has trainable parameters, and a sequence of blocks
        (a ResNet stage, a ViT's ``blocks``) block by block. Frozen stages stay in the learner's
        own group. Empty for an encoder without a backbone (a feature cache)."""
        backbone = getattr(getattr(self.model, "encoder", None), "model", None)
        if backbone is None:
            return []

        def trains(module: nn.Module) -> bool:
            return any(p.requires_grad for p in module.parameters())

        units: list[nn.Module] = []
        for child in backbone.children():
            if not trains(child):
                continue
            if isinstance(child, (nn.Sequential, nn.ModuleList)) and len(child) > 1:
                units += [block for block in child if trains(block)]
            else:
                units.append(child)
        return units
