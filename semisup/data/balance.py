"""Re-balancing the labeled stream: every pass over the labeled trailers is drawn afresh.

Shot movement is long-tailed (Static and Motion common, Push and Pull rare).
The research projects this toolkit serves found that a one-off undersampling
of the majority classes throws data away and hurts them, while drawing the
majority subset afresh every epoch restores them. :class:`BalancedPasses`
makes each pass (one cycle of the labeled stream) a pure function of
``(seed, pass)``, so runs stay reproducible and resume exactly:

* ``undersample``: every class is capped at the median class count; the
  members of a capped class are drawn afresh each pass, so over the run every
  sample is seen;
* ``oversample``: every class is filled up to the largest class count with
  repeats of its members drawn afresh each pass;
* ``repeat-factor`` (Gupta et al., LVIS 2019; multi-label or multi-class):
  sample ``i`` appears about ``r_i = max over its labels c of max(1, sqrt(t / f_c))``
  times per pass, ``f_c`` the share of labeled samples carrying ``c``.

Samples without a label for the balanced task appear once per pass.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

BalanceMode = Literal["undersample", "oversample", "repeat-factor"]
BALANCE_MODES: tuple[str, ...] = ("none", "undersample", "oversample", "repeat-factor")


class BalancedPasses:
    """The labeled trailers of each pass, re-balanced by one task's labels.

    Args:
        targets: ``(N, C)`` 0/1 labels of the balanced task (one-hot for multi-class).
        labeled: ``(N,)`` bool, the sample has labels for the task.
        mode: ``undersample``, ``oversample`` or ``repeat-factor``.
        seed, stream: with the pass index, what every draw derives from.
        threshold: ``t`` of repeat-factor sampling.

    Example:
        >>> targets = np.eye(2)[[0, 0, 0, 0, 1, 1]]
        >>> passes = BalancedPasses(targets, np.ones(6, bool), "undersample", seed=0, stream=1)
        >>> passes.length, np.bincount(targets[passes(0)].argmax(1)).tolist()
        (5, [3, 2])
    """

    def __init__(self, targets: np.ndarray, labeled: np.ndarray, mode: BalanceMode, seed: int, stream: int,
                 threshold: float = 0.1) -> None:
        if mode not in BALANCE_MODES[1:]:
            raise ValueError(f"balance mode must be one of {', '.join(BALANCE_MODES[1:])}, got {mode!r}")
        targets, labeled = np.asarray(targets, bool), np.asarray(labeled, bool)
        self.mode, self.seed, self.stream = mode, seed, stream
        self.unlabeled = np.flatnonzero(~labeled)
        if mode == "repeat-factor":
            share = targets[labeled].mean(0) if labeled.any() else np.zeros(targets.shape[1])
            factor = np.where(share > 0, np.maximum(1.0, np.sqrt(threshold / np.maximum(share, 1e-12))), 1.0)
            per_sample = np.where(targets.any(1) & labeled, (targets * factor).max(1), 1.0)
            self.repeats = per_sample
            self.length = int(round(per_sample.sum()))
            return
        classes = targets.argmax(1)
        self.members = [np.flatnonzero(labeled & (classes == c) & targets.any(1)) for c in range(targets.shape[1])]
        sizes = [len(m) for m in self.members if len(m)]
        self.quota = int(np.median(sizes)) if mode == "undersample" else max(sizes, default=0)
        self.length = len(self.unlabeled) + sum(min(len(m), self.quota) if mode == "undersample" else self.quota
                                                for m in self.members if len(m))

    def __call__(self, index: int) -> np.ndarray:
        """The shuffled sample indices of pass ``index`` (always :attr:`length` of them)."""
        rng = np.random.default_rng([self.seed, self.stream, index, 7])
        if self.mode == "repeat-factor":
            whole = np.floor(self.repeats).astype(int)
            extra = self.length - whole.sum()
            fraction = self.repeats - whole
            if extra > 0 and fraction.sum() > 0:
                chosen = rng.choice(len(whole), size=min(extra, int((fraction > 0).sum())), replace=False,
                                    p=fraction / fraction.sum())
                whole[chosen] += 1
            order = np.repeat(np.arange(len(whole)), whole)
        else:
            parts = [self.unlabeled]
            for members in self.members:
                if not len(members):
                    continue
                if len(members) > self.quota:      # undersample: a fresh subset of the majority class
                    parts.append(rng.choice(members, self.quota, replace=False))
                elif self.mode == "oversample":    # all of it, plus fresh repeats up to the quota
                    parts += [members, rng.choice(members, self.quota - len(members), replace=True)]
                else:
                    parts.append(members)
            order = np.concatenate(parts).astype(np.int64)
        if len(order) < self.length:  # rounding in repeat-factor: top up, the length is a promise
            order = np.concatenate([order, rng.choice(order, self.length - len(order))])
        return rng.permutation(order)[:self.length]
