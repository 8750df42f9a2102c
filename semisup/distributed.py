"""Data-parallel training under ``torchrun``: which process this is, and the few
collectives the training loop needs.

``torchrun --nproc_per_node=N -m semisup run RECIPE`` starts N copies of
``semisup run``; each reads ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` from
its environment, joins the process group (NCCL on GPUs, gloo on CPUs) and
trains on its own share of every batch. Alone (no ``WORLD_SIZE`` above 1)
every function here is a no-op, so single-process training runs exactly the
code it always did.

How semisup keeps N processes one model:

* every process builds the same model from the same seed, and rank 0's
  weights are broadcast before the first step;
* after each backward pass the gradients an optimiser is about to step are
  averaged across processes (:func:`average_gradients`) -- the all-reduce that
  ``DistributedDataParallel`` does, done per optimiser because semisup's
  objectives (pretext heads, projection heads) keep parameters outside the
  model and separate optimisers step different parameter sets;
* after each step BatchNorm statistics are copied from rank 0
  (:func:`broadcast_buffers`, as DDP's ``broadcast_buffers`` does), unless
  ``run.sync_batchnorm`` computes them over the global batch on GPUs;
* a batch one process could not read is skipped by all (:func:`all_true`).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch
import torch.distributed as dist
from torch import nn

from semisup.errors import SemisupError


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
    Alone, returns rank 0 of 1 and ``device`` unchanged.

    Raises:
        SemisupError: more processes on this machine than GPUs, or ``sync_batchnorm``
            (``run.sync_batchnorm``) for CPU processes, which cannot synchronise BatchNorm.
    """
    world = launched_world_size()
    if world <= 1:
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
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def current() -> Process:
    """This process, from the joined process group (rank 0 of 1 when none was joined)."""
    if not (dist.is_available() and dist.is_initialized()):
        return Process()
    return Process(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def barrier() -> None:
    """Wait for every process (no-op alone)."""
    if current().distributed:
        dist.barrier()


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """Run the block on rank 0 first, then on the others (e.g. building a dataset folder once)."""
    process = current()
    if process.distributed and not process.main:
        dist.barrier()
    yield
    if process.distributed and process.main:
        dist.barrier()


def on_main(work: Callable[[], Any]) -> Any:
    """Do ``work`` on rank 0 only (e.g. create the run directory) and return its result on
    every process; when it fails, every process raises (the others a :class:`SemisupError`
    with rank 0's message)."""
    process = current()
    if not process.distributed:
        return work()
    outcome: tuple[bool, Any] = (False, None)
    if process.main:
        try:
            outcome = (True, work())
        except Exception as exc:
            broadcast_object((False, f"{type(exc).__name__}: {exc}"))
            raise
    done, value = broadcast_object(outcome)
    if not done:
        raise SemisupError(f"rank 0 failed: {value}")
    return value


def broadcast_object(value: Any) -> Any:
    """Rank 0's ``value`` on every process (picklable objects; no-op alone)."""
    if not current().distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(value: Any) -> list[Any]:
    """Every process's ``value``, in rank order, on every process (``[value]`` alone)."""
    process = current()
    if not process.distributed:
        return [value]
    out: list[Any] = [None] * process.world_size
    dist.all_gather_object(out, value)
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


def all_true(flags: Sequence[bool], device: torch.device) -> list[bool]:
    """Per flag: true on every process."""
    if not current().distributed:
        return list(flags)
    tensor = torch.tensor([int(f) for f in flags], dtype=torch.int32, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
    return [bool(v) for v in tensor.tolist()]


def _flat_groups(tensors: Iterable[torch.Tensor]) -> dict[torch.dtype, list[torch.Tensor]]:
    groups: dict[torch.dtype, list[torch.Tensor]] = {}
    for tensor in tensors:
        groups.setdefault(tensor.dtype, []).append(tensor)
    return groups


def average_gradients(parameters: Sequence[nn.Parameter]) -> None:
    """Average the gradients of ``parameters`` across processes, in place.

    One all-reduce per dtype over the flattened gradients. A parameter without
    a gradient on one process counts as a zero gradient there; one without a
    gradient on every process keeps none (so Adam leaves it alone, as it would
    alone).
    """
    process = current()
    if not process.distributed or not parameters:
        return
    device = parameters[0].device
    has_grad = torch.tensor([p.grad is not None for p in parameters], dtype=torch.int32, device=device)
    dist.all_reduce(has_grad)
    stepped = [p for p, n in zip(parameters, has_grad.tolist()) if n > 0]
    for p in stepped:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    for grads in _flat_groups(p.grad for p in stepped).values():
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= process.world_size
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()


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
    """Copy rank 0's buffers (BatchNorm running statistics) to every process."""
    if current().distributed:
        _broadcast_from_rank0([b for module in modules for b in module.buffers()])


def broadcast_parameters(modules: Iterable[nn.Module]) -> None:
    """Copy rank 0's parameters and buffers to every process (before the first step)."""
    if not current().distributed:
        return
    modules = list(modules)
    with torch.no_grad():
        _broadcast_from_rank0([p.data for m in modules for p in m.parameters()])
    broadcast_buffers(modules)


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
