"""Unreadable trailers: counted per stream, and the rule that stops a run.

A frame that cannot be decoded is skipped and counted; a trailer that has no
readable frame at all (every image broken, or a video that does not decode)
is left out of its batch and counted as *unreadable*. A few of those are
normal in a large collection. Many mean the data is not what the user thinks
(a wrong codec, a half-copied disk), and a model trained or scored on what
is left would be meaningless. So each stream of a run (labeled train,
unlabeled, val, test) keeps a :class:`ReadTally` of the distinct trailers it
has read and stops the run with one line when

* the first ``min(pool, 16)`` distinct trailers it read are *all* unreadable
  (checked at every step: a run on garbage stops within seconds), or
* more than ``max_share`` of the distinct trailers it has read are unreadable
  (checked at the end of every epoch and after every evaluation, when the
  stream has seen its whole pool, so the share is exact and does not
  depend on which trailers came first).

``max_share`` is the recipe's ``data.max_unreadable`` (default 0.2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from semisup.data.samples import Sample
from semisup.errors import SemisupError

ALL_UNREADABLE_AFTER = 16
"""Distinct trailers a stream reads before "none readable" stops the run."""


def describe(sample: Sample) -> str:
    """A sample's id and where its frames are, for messages."""
    first = sample.frames[0] if sample.frames else None
    where = sample.video if sample.video is not None else getattr(first, "parent", first or "")  # a folder, or shards
    return f"{sample.id} ({where})" if where else sample.id


def unreadable_error(stream: str, unreadable: int, read: int, example: Sample, max_share: float,
                     limit: str = "data.max_unreadable") -> SemisupError:
    """The one-line error for a stream with too many unreadable trailers."""
    if unreadable == read:
        what = f"none of the {read} trailers read so far has a readable frame"
    else:
        what = f"{unreadable} of {read} trailers ({unreadable / read:.0%}) have no readable frame"
    return SemisupError(f"{stream}: {what}, e.g. {describe(example)}; more than {limit} = {max_share:g} "
                        "(check the files with `semisup data inspect --check`, or raise the limit)")


@dataclass
class ReadTally:
    """The distinct trailers a stream has read, and those without a readable frame.

    Args:
        stream: the stream's name in messages (``"labeled train"``, ``"val"``).
        samples: the stream's pool; batches report positions in it.
        max_share: the largest tolerated share of unreadable trailers.

    Example:
        >>> from semisup.data.samples import Sample
        >>> tally = ReadTally("val", [Sample(str(i)) for i in range(4)], max_share=0.3)
        >>> tally.add([0, 1, 2, 3], unreadable=[2])
        >>> tally.check()                                   # 1 of 4: within the limit
        >>> tally.add([], unreadable=[3])
        >>> tally.check()
        Traceback (most recent call last):
        ...
        semisup.errors.SemisupError: val: 2 of 4 trailers (50%) have no readable frame, e.g. 2; more than data.max_unreadable = 0.3 (check the files with `semisup data inspect --check`, or raise the limit)
    """

    stream: str
    samples: Sequence[Sample]
    max_share: float
    seen: set[int] = field(default_factory=set)
    unreadable: set[int] = field(default_factory=set)

    def add(self, read: Sequence[int], unreadable: Sequence[int]) -> None:
        """Record a batch: the pool positions it read, and those that had no readable frame."""
        self.seen.update(int(i) for i in read)
        self.seen.update(int(i) for i in unreadable)
        self.unreadable.update(int(i) for i in unreadable)

    def share(self) -> float:
        """Unreadable share of the distinct trailers read so far (0 before any)."""
        return len(self.unreadable) / len(self.seen) if self.seen else 0.0

    def check_early(self) -> None:
        """Stop at once if the first trailers read are all unreadable.

        Raises:
            SemisupError: ``min(pool, 16)`` or more distinct trailers read, none readable.
        """
        enough = min(len(self.samples), ALL_UNREADABLE_AFTER)
        if len(self.seen) >= enough and len(self.unreadable) == len(self.seen):
            self._fail()

    def check(self) -> None:
        """Stop if more than ``max_share`` of the trailers read are unreadable, or none is readable.

        Raises:
            SemisupError: naming the stream, the counts and an example trailer.
        """
        if self.seen and (self.share() > self.max_share or len(self.unreadable) == len(self.seen)):
            self._fail()

    def ids(self) -> list[str]:
        """Ids of the unreadable trailers, in pool order."""
        return [self.samples[i].id for i in sorted(self.unreadable)]

    def _fail(self) -> None:
        example = self.samples[min(self.unreadable)]
        raise unreadable_error(self.stream, len(self.unreadable), len(self.seen), example, self.max_share)

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps (positions only; the pool comes from the data)."""
        return {"seen": sorted(self.seen), "unreadable": sorted(self.unreadable)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.seen, self.unreadable = set(state["seen"]), set(state["unreadable"])

    def merge(self, states: Sequence[dict[str, Any]]) -> None:
        """Add what other tallies of the same stream read (their :meth:`state_dict`): the
        processes of a data-parallel run each read a share of the stream, and judge it whole."""
        for state in states:
            self.seen.update(state["seen"])
            self.unreadable.update(state["unreadable"])


def check_split(stream: str, samples: Sequence[Sample], unreadable_ids: Sequence[str], max_share: float) -> None:
    """Apply the rule to one pass over a split (evaluation): ``unreadable_ids`` of ``samples``.

    Raises:
        SemisupError: more than ``max_share`` of the split, or all of it, is unreadable.
    """
    if not samples:
        return
    position = {s.id: i for i, s in enumerate(samples)}
    tally = ReadTally(stream, samples, max_share)
    tally.add(range(len(samples)), [position[i] for i in unreadable_ids])
    tally.check()
