"""The training loop, written once for every stage and objective.

:func:`train_stage` runs a :class:`Stage` (a model, its objectives and
optimisers, its streams, how to validate) for a number of epochs. Each step:

1. takes the next labeled and unlabeled batches and counts what was unreadable;
2. agrees with the other processes of a data-parallel run (one small
   all-reduce): which streams every process could read, whether a checkpoint
   is due, whether a process failed (then every process stops);
3. per optimiser, one forward of its objectives through the
   :class:`~semisup.train.learner.Learner` (every augmented view made once
   and shared), then backward and step (``optim.mode = "separate"``); or one
   forward, backward and step of the weighted sum of all losses (``"joint"``);
4. moves the EMA teacher, if the stage has one.

After each epoch the stage validates (the teacher, when it is evaluated),
``best.pt`` is saved when the score improved, and ``last.pt`` always; ``last.pt``
is also saved inside an epoch every ``checkpoint_minutes``. A resumed run
restarts at exactly the saved step with the same random state, so it ends
where an uninterrupted run would.

Under ``torchrun`` (:mod:`semisup.distributed`) every process runs this same
loop on its equal share of each pass: the learner is wrapped in
``DistributedDataParallel``, which averages gradients during backward, or
sharded with FSDP2 (``run.parallel = "fsdp"``: validation then scores a whole
copy, and ``last.pt`` names a folder of every process's shards); BatchNorm
statistics follow rank 0; a batch is skipped only when some process could not
read its share; only rank 0 writes logs and checkpoints (``last.pt`` holds
every process's random state).

Fine-tuning (:func:`semisup.train.loop.fit`) and contrastive pretraining
(:func:`semisup.train.simclr.pretrain`) are both a :class:`Stage` handed to
:func:`train_stage`.
"""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn
from torch.profiler import record_function

from semisup import distributed
from semisup.train import sharding
from semisup.checkpoints import load_checkpoint, save_checkpoint, set_rng_state
from semisup.data.health import ReadTally
from semisup.data.loaders import draw_seed
from semisup.device import autocast, needs_grad_scaler, peak_memory_mb, reset_peak_memory
from semisup.errors import SemisupError
from semisup.models.ema import EmaTeacher
from semisup.objectives import Augment, Objective, ObjectiveOutput, StepBatch, StepContext
from semisup.train.learner import Learner
from semisup.train.logs import RunLogger
from semisup.train.optimizers import lr_factor, optimiser_step, set_lr
from semisup.train.progress import NullProgress
from semisup.train.state import Checkpointer, TrainState
from semisup.train.streams import Streams


@dataclass
class FitResult:
    """Where training ended up."""

    best_epoch: int
    """1-based: the epoch after which best.pt was saved (0: the stage keeps no best.pt)."""
    best_score: float
    epochs: int
    seconds: float
    """Wall time of training, summed over every session of a resumed run."""


@dataclass
class Stage:
    """What one training stage trains and how it is judged.

    Attributes:
        model: the network; its ``state_dict`` is what ``last.pt`` and ``best.pt`` hold.
        objectives: run in this order each step.
        optimizers: from :func:`semisup.train.optimizers.adam_optimizers`.
        streams: the stage's batches.
        augmentations: the views objectives may ask for, by name.
        validate: scores the model (or its teacher) after each epoch: returns the
            epoch record's fields and the score that picks ``best.pt`` (None: keep no best.pt).
            Every process calls it; what rank 0 returns is what counts.
        teacher: the EMA teacher, updated after every step, or None.
        evaluate_teacher: validate (and keep as ``best.pt``) the teacher's weights.
        validate_first: log a validation of the untrained model as epoch 0 (pretraining's kNN baseline).
        record: fixed fields of every epoch record, e.g. ``{"stage": "pretrain"}``.
    """

    model: nn.Module
    objectives: list[Objective]
    optimizers: dict[str, torch.optim.Optimizer]
    streams: Streams
    augmentations: dict[str, Augment]
    validate: Callable[[nn.Module], tuple[dict[str, Any], float | None]]
    teacher: EmaTeacher | None = None
    evaluate_teacher: bool = False
    validate_first: bool = False
    record: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LoopSettings:
    """How long and how a stage trains (from the recipe's ``[train]``, ``[optim]``, ``[run]``)."""

    epochs: int
    device: torch.device
    amp_dtype: torch.dtype | None
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    grad_clip: float = 0.0
    checkpoint_minutes: float = 10.0
    max_unreadable: float = 0.2
    process: distributed.Process = distributed.Process()
    """This process's rank among ``world_size`` (see :mod:`semisup.distributed`)."""
    sync_batchnorm: bool = False
    """BatchNorm layers compute their statistics over every process's batch (``run.sync_batchnorm``)."""
    parallel: str = "ddp"
    """Under torchrun: ``"ddp"`` (a whole model per process) or ``"fsdp"`` (sharded, FSDP2)."""


def step_batch(batch: Any, device: torch.device, augmentations: dict[str, Augment]) -> StepBatch | None:
    """A loader's batch on the device, ready for the objectives (None when it holds no readable trailer)."""
    if batch is None or not len(batch.frames):
        return None
    if hasattr(batch, "owner"):  # a PackedBatch of labeled trailers
        return StepBatch(batch.frames.to(device, non_blocking=True), batch.owner.to(device), batch.num_trailers,
                         augmentations, {n: t.to(device) for n, t in batch.targets.items()},
                         {n: m.to(device) for n, m in batch.has_label.items()})
    b, t = batch.frames.shape[:2]  # a ClipBatch: B clips of T frames
    return StepBatch(batch.frames.to(device, non_blocking=True).flatten(0, 1),
                     torch.arange(b, device=device).repeat_interleave(t), b, augmentations, frames_per_trailer=t)


def objective_mean(state: TrainState, name: str, key: str = "loss") -> float:
    """The mean of objective ``name``'s log ``key`` over the steps it ran this epoch."""
    return state.sums.get(f"{name}:{key}", 0.0) / max(1.0, state.sums.get(f"{name}#steps", 0.0))


def epoch_logs(state: TrainState, objectives: list[Objective]) -> dict[str, Any]:
    """The objectives' means over the steps each ran this epoch, as record fields: a
    top-level objective's under ``loss``, the others under ``record[group][short name]``."""
    fields: dict[str, Any] = {}
    for objective in objectives:
        name = objective.objective_name
        logs = {key[len(name) + 1:]: objective_mean(state, name, key[len(name) + 1:])
                for key in state.sums if key.startswith(f"{name}:")}
        if objective.group:
            fields.setdefault(objective.group, {})[objective.short_name] = logs
        else:
            fields.update(logs)
    return fields


def restore(stage: Stage, learner: nn.Module, scalers: dict[str, torch.amp.GradScaler], path: Path,
            process: distributed.Process = distributed.Process()) -> tuple[TrainState, dict]:
    """Load ``last.pt`` into the stage (weights, optimisers, scalers, objectives' state, teacher,
    random state) and its ``learner`` (sharded or not); return the loop's position and the checkpoint.

    A checkpoint written by as many processes as now resumes exactly, each with
    its own random state and its own running sums of the epoch's logs. One
    written by a different number resumes at the same share of the epoch, with
    random states drawn afresh per process (and rank 0's sums).
    """
    saved = load_checkpoint(path)
    if "sharded" in saved:  # FSDP's shards, resharded to this run's processes
        sharding.load_sharded(learner, stage.optimizers, path.parent / saved["sharded"])
    elif sharding.is_sharded(learner):
        raise SemisupError(f'{path}: written without run.parallel = "fsdp"; resume it with run.parallel = "ddp" '
                           "(edit the run's config.toml)")
    else:
        stage.model.load_state_dict(saved["model"])
        for name, optimizer in stage.optimizers.items():
            optimizer.load_state_dict(saved["optimizers"][name])
        for objective in stage.objectives:
            objective.load_state_dict(saved["objectives"][objective.objective_name])
    for name, scaler in scalers.items():
        scaler.load_state_dict(saved["scalers"][name])
    if stage.teacher is not None:
        stage.teacher.load_state_dict(saved["teacher"])
    state = TrainState.from_dict(saved["state"])
    rngs, saved_world = saved.get("rng_ranks", [saved["rng"]]), saved.get("world_size", 1)
    if saved_world == process.world_size:
        set_rng_state(rngs[process.rank])
        state.sums = dict(saved.get("sums_ranks", [state.sums] * saved_world)[process.rank])
    else:
        state.batch = state.batch * saved_world // process.world_size
        torch.manual_seed(draw_seed(state.epoch, state.batch, process.rank, process.world_size))
    return state, saved


def optimiser_groups(active: list[Objective], joint: bool) -> list[tuple[str, list[Objective]]]:
    """The step's forwards: per optimiser (in the order its objectives come) the active
    objectives it steps; in joint mode one ``joint`` group of all. Objectives that share an
    optimiser come one after another (a step in between would change weights their graphs hold)."""
    if joint:
        return [("joint", active)] if active else []
    groups: dict[str, list[Objective]] = {}
    for objective in active:
        groups.setdefault(objective.optimizer, []).append(objective)
    return list(groups.items())


def step_objectives(stage: Stage, learner: nn.Module, batches: dict[str, StepBatch | None], context: StepContext,
                    scalers: dict[str, torch.amp.GradScaler], grad_clip: float) -> dict[str, ObjectiveOutput]:
    """One training step: per optimiser, a forward through ``learner`` (the
    :class:`~semisup.train.learner.Learner`, DDP-wrapped in a data-parallel run) of the active
    objectives it steps, each on its stream's batch, then one backward and step on the sum of
    their losses (``weight`` counts in joint mode only, where one optimiser steps the weighted sum
    of all). Then the teacher moves.

    Raises:
        SemisupError: an objective returned a loss that no trained parameter produced
            (a plug-in's loss must come from the model or the objective's own layers).
    """
    joint = "joint" in stage.optimizers
    active = [o for o in stage.objectives if batches[o.stream] is not None and o.active(context)]
    outputs: dict[str, ObjectiveOutput] = {}
    for optimizer, members in optimiser_groups(active, joint):
        with record_function(f"semisup/forward:{optimizer}"):
            group = learner([o.objective_name for o in members], batches, context)
        loss = sum((o.weight if joint else 1.0) * group[o.objective_name].loss for o in members)
        if not loss.requires_grad:
            raise SemisupError(f"{', '.join(group)}: the loss does not depend on any trained parameter "
                               "(an objective must compute its loss from the model or its own layers)")
        with record_function(f"semisup/backward+step:{optimizer}"):
            optimiser_step(loss, stage.optimizers[optimizer], scalers[optimizer], grad_clip)
        outputs.update(group)
    if stage.teacher is not None:
        with record_function("semisup/ema"):
            stage.teacher.update(stage.model, context.step)
    return outputs


STREAMS = ("labeled", "unlabeled")


def load_step(labeled: Iterator, unlabeled: Iterator, tallies: dict[str, ReadTally], state: TrainState,
              device: torch.device, augmentations: dict[str, Augment]) -> tuple[dict[str, Any], dict[str, StepBatch | None]]:
    """The step's batches from the loaders, on the device (None where a stream has no readable
    trailer), with what was unreadable counted.

    Raises:
        SemisupError: a stream's first trailers are all unreadable (:meth:`ReadTally.check_early`).
    """
    with record_function("semisup/load"):  # waiting for the loader's workers
        loaded = {"labeled": next(labeled), "unlabeled": next(unlabeled)}
    for name, batch in loaded.items():  # count what was unreadable; stop a run on garbage
        if batch is not None:
            state.bad_frames.update(batch.bad_frames)
            tallies[name].add(batch.indices.tolist(), batch.unreadable)
            tallies[name].check_early()
    with record_function("semisup/to_device"):
        batches = {name: step_batch(b, device, augmentations) for name, b in loaded.items()}
    return loaded, batches


def merge_tallies(tallies: dict[str, ReadTally]) -> None:
    """Every process's tallies joined (each read its share of a stream; the stream is judged whole)."""
    if distributed.current().distributed:
        everyone = distributed.gather_objects({name: t.state_dict() for name, t in tallies.items()})
        for name, tally in tallies.items():
            tally.merge([states[name] for states in everyone])


def train_stage(stage: Stage, settings: LoopSettings, out: Path, resume: bool = False,
                progress: NullProgress | None = None) -> FitResult:
    """Train ``stage`` for ``settings.epochs`` epochs, writing logs and checkpoints under ``out``.

    ``out`` receives ``metrics.jsonl``, ``tensorboard/``, ``checkpoints/last.pt``
    and (when the stage validates with a score) ``checkpoints/best.pt``.

    Raises:
        SemisupError: the processes of a data-parallel run disagree on the data or the steps
            per epoch; a process failed (every process stops, with its message).
    """
    progress = progress or NullProgress()
    model, objectives, optimizers, streams, teacher = (stage.model, stage.objectives, stage.optimizers,
                                                        stage.streams, stage.teacher)
    device, amp_dtype, process = settings.device, settings.amp_dtype, settings.process
    scalers = {name: torch.amp.GradScaler(device.type, enabled=needs_grad_scaler(device, amp_dtype))
               for name in optimizers}
    ckpt_dir = out / "checkpoints"
    learner = Learner(model, objectives)  # every trained parameter, wrapped once (DDP copies rank 0's to all)
    whole = None  # FSDP: a whole copy of the model, for validation and best.pt
    if settings.parallel == "fsdp" and distributed.joined():
        whole = copy.deepcopy(model)
        trainer = sharding.shard(learner, learner.shard_units(), optimizers)
    else:
        trainer = distributed.wrap(learner, device, learner.leaves_parameters_unused(), settings.sync_batchnorm)
    if resume:
        state, saved = restore(stage, learner, scalers, ckpt_dir / "last.pt", process)
    else:
        state, saved = TrainState(), {}
        if teacher is not None:
            distributed.broadcast_module(teacher)
        if process.distributed:  # each process its own augmentation draws
            torch.manual_seed(draw_seed(torch.initial_seed(), process.rank))
    steps, epochs = streams.steps_per_epoch, settings.epochs
    distributed.check_same({"steps per epoch": steps, "training data": streams.fingerprint(),
                            "position": (state.epoch, state.batch)})
    total_steps, warmup_steps = epochs * steps, round(settings.warmup_epochs * steps)
    tallies = streams.tallies(settings.max_unreadable, saved.get("reads", {}))
    logger = RunLogger(out, enabled=process.main, resume_epoch=state.epoch if resume else -1,  # -1: a fresh start
                       resume_step=state.epoch * steps + state.batch)  # drops every record a killed start left
    checkpointer = Checkpointer(ckpt_dir / "last.pt", lambda: {
        **({} if whole is not None else {  # FSDP: in the shards' folder
            "model": model.state_dict(), "optimizers": {n: o.state_dict() for n, o in optimizers.items()},
            "objectives": {o.objective_name: o.state_dict() for o in objectives}}),
        "scalers": {n: s.state_dict() for n, s in scalers.items()},
        "teacher": teacher.state_dict() if teacher is not None else None,
        "reads": {n: t.state_dict() for n, t in tallies.items()}}, state, settings.checkpoint_minutes,
        sharded=None if whole is None else lambda folder: sharding.save_sharded(learner, optimizers, folder))
    synced = [model] + ([teacher] if teacher is not None else [])  # what must be rank 0's before it is read

    def evaluated() -> nn.Module:
        """The model validation scores and best.pt keeps: the teacher when it is evaluated; under
        FSDP a whole copy of the sharded model (gathered from every process)."""
        if whole is not None:
            whole.load_state_dict(sharding.full_state_dict(model))
            return whole
        return teacher.module if stage.evaluate_teacher and teacher is not None else model

    def sync() -> None:
        """Every process holds rank 0's BatchNorm statistics and every process's reads."""
        if not settings.sync_batchnorm:
            distributed.broadcast_buffers(synced)
        merge_tallies(tallies)

    labeled_batches = streams.labeled_batches(state.epoch * steps + state.batch)
    progress.start(total_steps, state.epoch * steps + state.batch)
    reported_bad = len(state.bad_frames)
    try:
        if stage.validate_first and state.epoch == 0 and state.batch == 0:
            zero = {**stage.record, "epoch": 0, "loss": None, **stage.validate(evaluated())[0]}
            distributed.on_main(lambda: logger.log_epoch(zero, step=0))  # a write that fails stops every process
        while state.epoch < epochs:
            model.train()
            reset_peak_memory(device)
            progress.start_epoch(state.epoch, epochs, steps, state.batch)
            unlabeled_batches = streams.unlabeled_epoch(state.epoch, state.batch)
            while state.batch < steps:
                tic, step = time.perf_counter(), state.epoch * steps + state.batch
                set_lr(optimizers, lr_factor(step, total_steps, warmup_steps, settings.schedule))
                loaded, batches, failure = {}, {}, None
                try:
                    loaded, batches = load_step(labeled_batches, unlabeled_batches, tallies, state, device,
                                                stage.augmentations)
                except Exception as exc:  # every process hears of it at the agreement below, and stops
                    failure = exc
                # the step's one collective: a stream steps only where every process has a readable
                # batch; a checkpoint is saved when every process finds one due; a failure stops all
                *readable, due = distributed.agree([batches.get(n) is not None for n in STREAMS]
                                                   + [checkpointer.due()], failure, device)
                batches = {name: batches[name] if ok else None for name, ok in zip(STREAMS, readable)}
                context = StepContext(step, steps, total_steps, teacher.module if teacher else None,
                                      lambda: autocast(device, amp_dtype))
                outputs = step_objectives(stage, trainer, batches, context, scalers, settings.grad_clip)

                state.batch += 1
                state.add(steps=1, images=sum(o.images for o in outputs.values()), seconds=time.perf_counter() - tic,
                          synthetic=getattr(loaded.get("labeled"), "synthetic", 0),
                          **{f"{name}#steps": 1 for name in outputs},
                          **{f"{name}:{key}": value for name, o in outputs.items()
                             for key, value in {"loss": o.loss.item(), **o.logs}.items()})
                progress.advance({**{o.short_name: objective_mean(state, o.objective_name) for o in objectives},
                                  "img/s": state.images_per_s()})
                if due:
                    sync()
                    checkpointer.save()

            sync()  # end of epoch: validation and last.pt see what every process holds
            record = end_epoch(stage, state, tallies, evaluated(), settings, ckpt_dir, checkpointer.elapsed())
            distributed.on_main(lambda: logger.log_epoch(record, step=(state.epoch + 1) * steps))
            progress.end_epoch(record)
            if len(state.bad_frames) > reported_bad:
                progress.message(f"warning: skipped {len(state.bad_frames)} unreadable frames so far, "
                                 f"e.g. {sorted(state.bad_frames)[0]}")
                reported_bad = len(state.bad_frames)
            state.next_epoch()
            checkpointer.save()
    finally:
        progress.close(failed=sys.exc_info()[0] is not None)
        logger.close()
    return FitResult(state.best_epoch, state.best_score, epochs, checkpointer.elapsed())


def end_epoch(stage: Stage, state: TrainState, tallies: dict[str, ReadTally], evaluated: nn.Module,
              settings: LoopSettings, ckpt_dir: Path, elapsed: float) -> dict[str, Any]:
    """After an epoch's last step: check what was unreadable, validate, keep ``best.pt`` when the
    score improved; return the epoch's record (losses averaged over every process's steps).

    Raises:
        SemisupError: a stream had too many unreadable trailers (on every process alike: the
            tallies are every process's).
    """
    for tally in tallies.values():
        tally.check()
    with record_function("semisup/validate"):
        fields, score = stage.validate(evaluated)
    unreadable_eval = fields.pop("unreadable", {})
    improved = score is not None and score > state.best_score
    if improved:
        state.best_score, state.best_epoch = score, state.epoch + 1
        distributed.on_main(lambda: save_checkpoint(ckpt_dir / "best.pt", {
            "model": evaluated.state_dict(), "epoch": state.epoch + 1, "score": score}))
    logs, images_per_s = epoch_logs(state, stage.objectives), state.images_per_s()
    if settings.process.distributed:  # every process's means averaged: the whole global batch; images of all
        logs = distributed.mean_records(distributed.gather_objects(logs))
        images_per_s = sum(distributed.gather_objects(images_per_s))
    optimizer = next(iter(stage.optimizers.values()))
    return {**stage.record, "epoch": state.epoch + 1, **logs, **fields,
            "best": improved, "lr": optimizer.param_groups[0]["lr"],
            "images_per_s": images_per_s, "peak_memory_mb": peak_memory_mb(settings.device),
            "corrupt_frames": len(state.bad_frames),
            "synthetic_clips": int(state.sums.get("synthetic", 0)),
            "unreadable_trailers": {**{n: len(t.unreadable) for n, t in tallies.items()}, **unreadable_eval},
            "elapsed_s": round(elapsed, 1)}
