"""The batches a training stage reads: the labeled stream (cycling) and the unlabeled one
(a pass per epoch, or cycling beside the labeled one), each with its unreadable-data tally."""

from __future__ import annotations

import hashlib
from typing import Any, Iterator

from semisup.data.health import ReadTally


class Streams:
    """The batches a stage reads: labeled (cycling forever) and unlabeled.

    Either may be None. An epoch is one pass over the unlabeled stream when
    there is one (the labeled one cycles), else over the labeled one; with
    ``epoch_over = "labeled"`` it is one pass over the labeled stream even when
    there is an unlabeled one, which then cycles (pass after pass, shuffled
    afresh each pass), so a run takes as many labeled steps as a supervised run
    of the same epochs, whatever the size of the unlabeled pool. Each stream
    carries a :class:`~semisup.data.health.ReadTally` under its ``names`` entry.

    Args:
        labeled, labeled_sampler: loader of :class:`~semisup.data.loaders.PackedBatch` and its
            :class:`~semisup.data.loaders.CyclingBatchSampler`.
        unlabeled, unlabeled_sampler: loader of :class:`~semisup.data.loaders.ClipBatch` and its
            :class:`~semisup.data.loaders.EpochBatchSampler`, or its
            :class:`~semisup.data.loaders.CyclingBatchSampler` with ``epoch_over = "labeled"``.
        names: what each stream is called in messages, e.g. ``{"labeled": "labeled train"}``.
        epoch_over: ``"unlabeled"`` or ``"labeled"``: which stream one epoch is a pass over.
    """

    def __init__(self, labeled=None, labeled_sampler=None, unlabeled=None, unlabeled_sampler=None,
                 names: dict[str, str] | None = None, epoch_over: str = "unlabeled") -> None:
        self.labeled, self.labeled_sampler = labeled, labeled_sampler
        self.unlabeled, self.unlabeled_sampler = unlabeled, unlabeled_sampler
        self.names = {"labeled": "labeled train", "unlabeled": "unlabeled", **(names or {})}
        self.unlabeled_cycles = unlabeled is not None and epoch_over == "labeled"
        if self.unlabeled_cycles and labeled is None:
            raise ValueError("epoch_over='labeled' needs a labeled stream")
        if unlabeled is not None and not self.unlabeled_cycles:
            self.steps_per_epoch = len(unlabeled_sampler)
        else:
            self.steps_per_epoch = len(labeled_sampler.epochs)
        self._cycle: Iterator | None = None  # the cycling unlabeled batches, kept across epochs ...
        self._cycle_step = -1                # ... and the global step of the next one

    def labeled_batches(self, start_step: int) -> Iterator:
        """Labeled batches from global step ``start_step`` on (``None`` forever without a labeled stream)."""
        if self.labeled is None:
            while True:
                yield None
        self.labeled_sampler.start_batch = start_step  # one labeled batch per step
        yield from self.labeled

    def unlabeled_epoch(self, epoch: int, start_batch: int) -> Iterator:
        """Unlabeled batches of ``epoch`` from ``start_batch`` on (``None`` forever without one)."""
        if self.unlabeled is None:
            while True:
                yield None
        if not self.unlabeled_cycles:
            self.unlabeled_sampler.set_epoch(epoch, start_batch)
            yield from self.unlabeled
            return
        # one unlabeled batch per step, as the labeled stream; one loader iterator for the whole
        # run (a new one each epoch would throw away the batches its workers had prefetched)
        step = epoch * self.steps_per_epoch + start_batch
        if self._cycle is None or self._cycle_step != step:
            self.unlabeled_sampler.start_batch = step
            self._cycle, self._cycle_step = iter(self.unlabeled), step
        for _ in range(self.steps_per_epoch - start_batch):
            self._cycle_step += 1
            yield next(self._cycle)

    def fingerprint(self) -> str:
        """What the streams read, in a few characters: a hash of each stream's trailer ids, for
        checking that every process of a data-parallel run reads the same data."""
        digest = hashlib.sha1()
        for name, loader in (("labeled", self.labeled), ("unlabeled", self.unlabeled)):
            if loader is not None:
                digest.update(f"{name}:{len(loader.dataset.samples)}:".encode())
                digest.update("\n".join(s.id for s in loader.dataset.samples).encode())
        return digest.hexdigest()[:12]

    def tallies(self, max_unreadable: float, saved: dict[str, Any]) -> dict[str, ReadTally]:
        """A :class:`ReadTally` per stream, restored from a checkpoint's ``reads``."""
        tallies = {name: ReadTally(self.names[name], loader.dataset.samples, max_unreadable)
                   for name, loader in (("labeled", self.labeled), ("unlabeled", self.unlabeled)) if loader is not None}
        for name, tally in tallies.items():
            if name in saved:
                tally.load_state_dict(saved[name])
        return tallies
