"""Sharded data-parallel training (``run.parallel = "fsdp"``): FSDP2 over the learner, whole
weights gathered for validation, and checkpoints written shard by shard.

With DDP (:func:`semisup.distributed.wrap`) every process holds the whole
model, its gradients and its optimiser states. FSDP2
(``torch.distributed.fsdp.fully_shard``) keeps one N-th of each on every
process and gathers a group of weights only while it computes, which is what
lets an encoder too big for one GPU train. Checkpoints then hold every
process's shards, written and read with ``torch.distributed.checkpoint``,
which reshards them for another number of processes (or one, without FSDP).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from semisup.errors import SemisupError
from semisup.io import write_failed


def shard(module: nn.Module, units: Sequence[nn.Module], optimizers: dict[str, torch.optim.Optimizer]) -> nn.Module:
    """``module`` sharded across the processes with FSDP2 (``run.parallel = "fsdp"``): each of
    ``units`` (the encoder's blocks) is one ``fully_shard`` group, the rest of ``module`` one more.

    Every parameter, gradient and optimiser state then lives on one process in N
    (each a ``DTensor`` shard); a forward gathers a group's parameters just
    before it runs and frees them after, and a backward reduce-scatters the
    gradients. ``fully_shard`` replaces the parameters, so the optimisers (built
    before, not yet stepped) are pointed at the new ones by name.

    Args:
        module: every trained parameter of the stage (the learner).
        units: its submodules to shard one by one, in forward order.
        optimizers: the stage's optimisers over ``module``'s parameters.
    """
    from torch.distributed.fsdp import fully_shard

    names = {id(p): name for name, p in module.named_parameters()}
    for p in module.parameters():  # FSDP shards contiguous tensors only (not channels-last conv weights)
        if not p.is_contiguous():
            p.data = p.data.contiguous()
    for unit in units:
        fully_shard(unit)
    fully_shard(module)
    sharded = dict(module.named_parameters())
    for optimizer in optimizers.values():
        for group in optimizer.param_groups:
            group["params"] = [sharded[names[id(p)]] for p in group["params"]]
    return module


def is_sharded(module: nn.Module) -> bool:
    """Whether ``module``'s parameters are FSDP shards (``DTensor``)."""
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in module.parameters())


def full_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """``module.state_dict()`` with whole tensors: for a sharded module every process gathers
    every shard (a collective: call it on every process)."""
    if not is_sharded(module):
        return module.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(module, options=StateDictOptions(full_state_dict=True))


def sharded_state(module: nn.Module, optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, Any]:
    """The state of ``module`` and its optimisers as ``torch.distributed.checkpoint`` saves and
    loads it: each process's own shards, keyed by parameter name (so that a checkpoint written
    by N processes loads into M, or into one process without FSDP)."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    return {"learner": get_model_state_dict(module),
            "optimizers": {name: get_optimizer_state_dict(module, o) for name, o in optimizers.items()}}


def save_sharded(module: nn.Module, optimizers: dict[str, torch.optim.Optimizer], folder: Path) -> None:
    """Every process writes its shards of ``module`` and ``optimizers`` into ``folder``
    (``torch.distributed.checkpoint``; a collective)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.api import CheckpointException

    try:
        dcp.save(sharded_state(module, optimizers), checkpoint_id=str(folder))
    except CheckpointException as exc:  # every process gets it (DCP gathers the failures); a BaseException
        shutil.rmtree(folder, ignore_errors=True)  # the last.pt written before names an older, whole folder
        raise write_failed(folder, _first_cause(exc)) from None


def load_sharded(module: nn.Module, optimizers: dict[str, torch.optim.Optimizer], folder: Path) -> None:
    """Load what :func:`save_sharded` wrote, resharded to this run's processes (or whole, alone)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

    from torch.distributed.checkpoint.api import CheckpointException

    if not (folder / ".metadata").is_file():  # before DCP, which would log its own traceback first
        what = "incomplete (no .metadata)" if folder.is_dir() else "missing"
        raise SemisupError(f"{folder}: the shards last.pt names are {what}; the run cannot resume from them")
    state = sharded_state(module, optimizers)
    try:
        dcp.load(state, checkpoint_id=str(folder))
    except CheckpointException as exc:  # a BaseException: it would pass every `except Exception`
        raise SemisupError(f"{folder}: the shards last.pt names do not read ({_first_cause(exc)}); the run cannot "
                           "resume from them") from None
    set_model_state_dict(module, state["learner"])
    for name, optimizer in optimizers.items():
        set_optimizer_state_dict(module, optimizer, state["optimizers"][name])


def _first_cause(exc: BaseException) -> str:
    """The first process's error inside a ``CheckpointException`` (its ``failures`` by rank), in one line."""
    failures = getattr(exc, "failures", None) or {}
    cause = next(iter(failures.values()), (exc, None))[0]
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[0]}" if text else type(cause).__name__
