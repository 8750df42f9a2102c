"""Data-parallel training under ``torchrun``: which process this is, the one
wrapper that keeps N processes one model, and the few collectives the loop needs.

``torchrun --nproc_per_node=N -m semisup run RECIPE`` starts N copies of
``semisup run``; each reads ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` from
its environment, joins the process group (NCCL on GPUs, gloo on CPUs) and
trains on its own share of every batch. Alone (no ``WORLD_SIZE`` above 1)
every function here is a no-op, so single-process training runs exactly the
code it always did.

How semisup keeps N processes one model:

* every trained parameter of a stage lives in one module, the learner
  (:class:`semisup.train.learner.Learner`), wrapped once in
  ``DistributedDataParallel`` (:func:`wrap`): DDP copies rank 0's weights to
  every process when it wraps them, and averages gradients in buckets that
  overlap the backward pass; or sharded with FSDP2 (``run.parallel = "fsdp"``,
  :mod:`semisup.train.sharding`);
* every process reads an equal share of every pass
  (:func:`semisup.data.loaders.equal_share`), so every process takes the same
  steps; :func:`check_same` stops a stage in one line when they do not agree;
* each step starts with one small all-reduce (:func:`agree`): whether every
  process read a batch of each stream, whether a checkpoint is due, and
  whether any process failed; a failure on one process stops every process
  at that point, with its message;
* BatchNorm statistics follow rank 0 (DDP's buffer sync before each forward,
  :func:`broadcast_buffers` before validation and checkpoints),
  unless ``run.sync_batchnorm`` computes them over the global batch on GPUs.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch
import torch.distributed as dist
from torch import nn

from semisup.errors import PeerFailed, SemisupError


@dataclass(frozen=True)
class Process:
    """This process's place in a data-parallel run (rank 0 of 1 when alone)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes logs, checkpoints and reports."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launched_rank() -> int:
    """This process's rank as ``torchrun`` set it (0 when not launched by it)."""
    return int(os.environ.get("RANK", "0"))


def launched_world_size() -> int:
    """How many processes ``torchrun`` started (1 when not launched by it)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def join(device: torch.device, sync_batchnorm: bool = False) -> tuple[Process, torch.device]:
    """Join the process group ``torchrun`` described in the environment, once.

    Returns this process and its device: on CUDA the GPU of ``LOCAL_RANK``.
    Alone, returns rank 0 of 1 and ``device`` unchanged. One process started by
    ``torchrun`` (``--nproc_per_node=1``) joins a group of one, so that it
    trains through DDP as N processes do (NCCL on a GPU).

    Raises:
        SemisupError: more processes on this machine than GPUs, or ``sync_batchnorm``
            (``run.sync_batchnorm``) for CPU processes, which cannot synchronise BatchNorm.
    """
    world = launched_world_size()
    if world <= 1 and "TORCHELASTIC_RUN_ID" not in os.environ:  # not started by torchrun
        return Process(), device
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise SemisupError(f"torchrun: process LOCAL_RANK={local_rank} but this machine has "
                               f"{torch.cuda.device_count()} CUDA devices (use --nproc_per_node <= that)")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    elif sync_batchnorm:
        raise SemisupError("run.sync_batchnorm: synchronised BatchNorm needs CUDA devices; set it to false for "
                           "CPU processes (BatchNorm statistics then follow rank 0)")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Process(rank, world, local_rank), device


def leave() -> None:
    """Leave the process group at the end of a run (no-op alone)."""
    if joined():
        dist.destroy_process_group()


def current() -> Process:
    """This process, from the joined process group (rank 0 of 1 when none was joined)."""
    if not joined():
        return Process()
    return Process(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def joined() -> bool:
    """Whether this process is in a process group (started by torchrun, one process or more)."""
    return dist.is_available() and dist.is_initialized()


def barrier() -> None:
    """Wait for every process (no-op alone)."""
    if current().distributed:
        dist.barrier()


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """Run the block on rank 0 first, then on the others (e.g. building a dataset folder once).

    A failure stops every process with the failing one's message: when rank 0's block fails the
    others do not run theirs and raise :class:`PeerFailed`; when another's fails, every process
    raises after the block (the failing one its own error, the rest :class:`PeerFailed`), so no
    process goes on to wait in a collective that a failed process will never join.
    """
    process = current()
    if not process.distributed:
        yield
        return
    if not process.main:
        done, message = broadcast_object(None)
        if not done:
            raise PeerFailed(f"process 0 of {process.world_size} failed: {message}")
    failure: Exception | None = None
    try:
        yield
    except Exception as exc:
        failure = exc
    if process.main:
        broadcast_object((failure is None, None if failure is None else _message(failure)))
        if failure is not None:
            raise failure
    outcomes = gather_objects(None if failure is None else _message(failure))
    if failure is not None:
        raise failure
    for rank, message in enumerate(outcomes):
        if message is not None:
            raise PeerFailed(f"process {rank} of {process.world_size} failed: {message}")


def on_main(work: Callable[[], Any], group: Any = None) -> Any:
    """Do ``work`` on rank 0 only (e.g. create the run directory) and return its result on
    every process; when it fails, every process raises (the others :class:`PeerFailed`
    with rank 0's message). Work that may take minutes (statting every frame file) waits
    over a :func:`patient_group`."""
    process = current()
    if not process.distributed:
        return work()
    outcome: tuple[bool, Any] = (False, None)
    if process.main:
        try:
            outcome = (True, work())
        except Exception as exc:
            broadcast_object((False, _message(exc)), group)
            raise
    done, value = broadcast_object(outcome, group)
    if not done:
        raise PeerFailed(f"process 0 of {process.world_size} failed: {value}")
    return value


def broadcast_object(value: Any, group: Any = None) -> Any:
    """Rank 0's ``value`` on every process (picklable objects; no-op alone); over ``group`` when given."""
    if not current().distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0, group=group)
    return box[0]


def patient_group() -> Any:
    """A gloo group of every process whose collectives wait up to a week; ``None`` alone.

    For work split unevenly in time (each process writes its share of a feature cache):
    a process done early waits in the group's gather for the slowest instead of hitting
    the backend's 30-minute timeout. A process that fails exits, and torchrun stops the
    others: nothing waits on a dead process. Every process must call this at the same point.
    """
    if not current().distributed:
        return None
    import datetime

    return dist.new_group(backend="gloo", timeout=datetime.timedelta(days=7))


def gather_objects(value: Any, group: Any = None) -> list[Any]:
    """Every process's ``value``, in rank order, on every process (``[value]`` alone);
    over ``group`` when given (e.g. :func:`patient_group`)."""
    process = current()
    if not process.distributed:
        return [value]
    out: list[Any] = [None] * process.world_size
    dist.all_gather_object(out, value, group=group)
    return out


def mean_records(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Records of the same shape averaged key by key (nested dicts recursively; numbers
    averaged, None where any is None; anything else taken from the first).

    Example:
        >>> mean_records([{"loss": 1.0, "fixmatch": {"loss": 2.0}}, {"loss": 3.0, "fixmatch": {"loss": 4.0}}])
        {'loss': 2.0, 'fixmatch': {'loss': 3.0}}
    """
    first = records[0]
    out: dict[str, Any] = {}
    for key, value in first.items():
        values = [r.get(key) for r in records]
        if isinstance(value, dict):
            out[key] = mean_records([v if isinstance(v, dict) else {} for v in values])
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            numbers = [v for v in values if isinstance(v, (int, float))]
            out[key] = sum(numbers) / len(numbers) if len(numbers) == len(values) else None
        else:
            out[key] = value
    return out


def _flat_groups(tensors: Iterable[torch.Tensor]) -> dict[torch.dtype, list[torch.Tensor]]:
    groups: dict[torch.dtype, list[torch.Tensor]] = {}
    for tensor in tensors:
        groups.setdefault(tensor.dtype, []).append(tensor)
    return groups


def _broadcast_from_rank0(tensors: Iterable[torch.Tensor]) -> None:
    """Copy rank 0's values of ``tensors`` into every process's, in place: one broadcast per dtype."""
    for group in _flat_groups(tensors).values():
        flat = torch.cat([t.reshape(-1) for t in group])
        dist.broadcast(flat, src=0)
        offset = 0
        for t in group:
            t.copy_(flat[offset:offset + t.numel()].view_as(t))
            offset += t.numel()


def broadcast_buffers(modules: Iterable[nn.Module]) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every process: before
    validation and checkpoints, so that every process scores and saves the same model."""
    if current().distributed:
        _broadcast_from_rank0([b for module in modules for b in module.buffers()])


def broadcast_module(module: nn.Module) -> None:
    """Copy rank 0's parameters and buffers of ``module`` to every process (a module outside
    the DDP-wrapped learner, such as the EMA teacher, before the first step)."""
    if not current().distributed:
        return
    with torch.no_grad():
        _broadcast_from_rank0([p.data for p in module.parameters()] + list(module.buffers()))


def wrap(module: nn.Module, device: torch.device, find_unused_parameters: bool,
         sync_batchnorm: bool = False) -> nn.Module:
    """``module`` in ``DistributedDataParallel`` under ``torchrun`` (unchanged alone).

    DDP broadcasts rank 0's parameters and buffers when it wraps, and rank 0's
    buffers again before each forward (not with SyncBatchNorm), then averages
    gradients during every backward pass that follows a forward through it, in
    buckets whose all-reduce overlaps the rest of the backward pass; the
    gradients are views of those buckets (``gradient_as_bucket_view``), so no
    extra gradient-sized copy is made.

    Args:
        module: every trained parameter of the stage (the learner).
        device: this process's device.
        find_unused_parameters: a forward may leave trained parameters unused (one
            optimiser's group among several, an objective that is not active yet).
        sync_batchnorm: BatchNorm layers are ``SyncBatchNorm``: their statistics are
            already the global batch's, so DDP does not broadcast buffers.
    """
    if not joined():
        return module
    return nn.parallel.DistributedDataParallel(
        module, device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=find_unused_parameters, forward_sync_buffers=not sync_batchnorm,
        gradient_as_bucket_view=True)


def _message(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, SemisupError) else f"{type(exc).__name__}: {exc}"


def agree(flags: Sequence[bool], failure: BaseException | None, device: torch.device) -> list[bool]:
    """The step's one collective: per flag, whether it is true on every process, and
    whether some process failed.

    Args:
        flags: this process's flags (e.g. "I read a labeled batch").
        failure: the exception this process met since the last agreement, or None.
        device: where the collective runs (the process group's device).

    Returns:
        Per flag, true on every process.

    Raises:
        The ``failure`` itself on the process that met it; :class:`PeerFailed`, with the
        failing process's message, on every other process. Alone, ``failure`` is raised
        as it is.
    """
    process = current()
    if not process.distributed:
        if failure is not None:
            raise failure
        return list(flags)
    tensor = torch.tensor([failure is not None, *(not f for f in flags)], dtype=torch.int32, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    if tensor[0].item():
        messages = gather_objects(None if failure is None else _message(failure))
        if failure is not None:
            raise failure
        rank, message = next((r, m) for r, m in enumerate(messages) if m is not None)
        raise PeerFailed(f"process {rank} of {process.world_size} failed: {message}")
    return [not v for v in tensor[1:].tolist()]


def check_same(what: dict[str, Any]) -> None:
    """Stop unless every process has the same values of ``what`` (e.g. steps per epoch and
    the dataset it reads): one collective at the start of a stage.

    Raises:
        SemisupError: on every process, naming the first value that differs and each
            process's value.
    """
    if not current().distributed:
        return
    everyone = gather_objects(what)
    for key in what:
        values = [w[key] for w in everyone]
        if any(v != values[0] for v in values):
            raise SemisupError(f"the {len(values)} processes disagree on {key}: "
                               + ", ".join(f"process {r} has {v}" for r, v in enumerate(values))
                               + " (every process must read the same data with the same recipe)")


def gather_rows(tensor: torch.Tensor) -> torch.Tensor:
    """Every process's rows of ``tensor`` (first dimension may differ), concatenated in rank order."""
    process = current()
    if not process.distributed:
        return tensor
    sizes = gather_objects(int(tensor.shape[0]))
    padded = torch.zeros((max(sizes), *tensor.shape[1:]), dtype=tensor.dtype, device=tensor.device)
    padded[:tensor.shape[0]] = tensor
    parts = [torch.empty_like(padded) for _ in range(process.world_size)]
    dist.all_gather(parts, padded)
    return torch.cat([part[:n] for part, n in zip(parts, sizes)])


def mean_across(tensor: torch.Tensor) -> torch.Tensor:
    """The mean of ``tensor`` over processes (a copy; ``tensor`` alone)."""
    process = current()
    if not process.distributed:
        return tensor
    out = tensor.detach().clone()
    dist.all_reduce(out)
    return out / process.world_size
