"""The optimisers of a stage and how they step: Adam per objective group (or one joint Adam),
the learning-rate schedule, and one optimiser step."""

from __future__ import annotations

import math

import torch
from torch import nn

from semisup.objectives import Objective


def optimiser_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                   grad_clip: float = 0.0) -> None:
    """zero_grad -> backward (scaled for fp16; in a data-parallel run DDP averages the gradients
    across processes during it) -> optional gradient clipping -> step."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if grad_clip > 0:
        scaler.unscale_(optimizer)
        params = [p for group in optimizer.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    scaler.step(optimizer)
    scaler.update()


def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: str) -> float:
    """Learning-rate multiplier at ``step``: linear warm-up, then constant or cosine to zero."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def set_lr(optimizers: dict[str, torch.optim.Optimizer], factor: float) -> None:
    """Scale every parameter group's ``initial_lr`` by the schedule's ``factor``."""
    for optimizer in optimizers.values():
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor


def adam_optimizers(objectives: list[Objective], model: nn.Module, mode: str, lr: float,
                     weight_decay: float = 0.0) -> dict[str, torch.optim.Optimizer]:
    """Adam optimisers by name: one per optimiser the objectives name (``mode = "separate"``),
    or one named ``joint``.

    In separate mode each optimiser steps the parameters its objectives train
    (the shared trainable encoder plus their heads) at the learning rate of its
    first objective (or ``lr``); objectives that share an optimiser (a
    consistency method shares ``supervised``) have their losses summed into one
    step. In joint mode one Adam holds every parameter, a group per objective
    for the parameters it adds. A stage with a single optimiser gets it by its
    name either way. Every group remembers its ``initial_lr`` for the schedule.
    """
    names = list(dict.fromkeys(o.optimizer for o in objectives))
    if mode == "joint" and len(names) > 1:
        groups, seen = [], set()
        for objective in objectives:
            params = [p for p in objective.trained_parameters(model) if id(p) not in seen]
            seen.update(id(p) for p in params)
            if params:
                groups.append({"params": params, "lr": objective.lr or lr})
        optimizers = {"joint": torch.optim.Adam(groups, weight_decay=weight_decay)}
    else:
        optimizers = {}
        for name in names:
            members = [o for o in objectives if o.optimizer == name]
            params = list({id(p): p for o in members for p in o.trained_parameters(model)}.values())
            optimizers[name] = torch.optim.Adam(params, lr=members[0].lr or lr, weight_decay=weight_decay)
    for optimizer in optimizers.values():
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
    return optimizers
