"""How long a full threshold sweep takes on a large score matrix, side by side with its parts.

    python scripts/bench_sweep.py --samples 100000 --labels 85 --write BENCHMARKS.md

A sweep tunes every rule family on validation and scores it on test: top-k
for k = 1..10, 37 global thresholds, per-class thresholds (with and without
the at-least-one fallback), MCut, rounding, plus mAP on both splits. The rows
time the whole sweep; the top-k and threshold families alone scored the
plain way, one decision matrix and one metric call per rule (what the sweep
replaces with one sort per family); and, for scale, one mAP and one
scikit-learn ``f1_score`` call on the same matrix. The ratio column is
against the full semisup sweep.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_train import markdown_section, replace_section  # noqa: E402
from semisup.evaluate.decisions import Threshold, TopK  # noqa: E402
from semisup.evaluate.metrics import mean_average_precision, precision_recall_f1  # noqa: E402
from semisup.evaluate.sweep import THRESHOLDS, sweep_task  # noqa: E402


def scores(n: int, c: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    targets = rng.random((n, c)) < np.geomspace(0.3, 0.002, c)
    logits = 2.0 * targets + rng.normal(0, 1, (n, c)) - 1.5
    return targets.astype(np.uint8), (1 / (1 + np.exp(-logits))).astype(np.float32)


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--labels", type=int, default=85)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    val_t, val_s = scores(args.samples, args.labels, 0)
    test_t, test_s = scores(args.samples, args.labels, 1)
    rows = [("semisup threshold sweep: all rules, tuned on val, scored on val and test, mAP of both",
             seconds(lambda: sweep_task("genres", val_t, val_s, test_t, test_s)))]
    def rule_by_rule() -> None:
        for targets, probs in ((val_t, val_s), (test_t, test_s)):
            for k in range(1, 11):
                precision_recall_f1(targets, TopK(k)(probs))
            for t in THRESHOLDS:
                precision_recall_f1(targets, Threshold(t)(probs))

    rows.append(("top-k and threshold families scored rule by rule (no shared sort), val and test",
                 seconds(rule_by_rule)))
    rows.append(("semisup mAP, one split", seconds(lambda: mean_average_precision(test_t, test_s))))
    from sklearn.metrics import average_precision_score, f1_score

    rows.append(("scikit-learn mAP, one split (average_precision_score per class)",
                 seconds(lambda: np.mean([average_precision_score(test_t[:, c], test_s[:, c])
                                          for c in range(args.labels) if test_t[:, c].any()]))))
    rows.append(("scikit-learn micro-F1 of one rule (p >= 0.5)",
                 seconds(lambda: f1_score(test_t, test_s >= 0.5, average="micro"))))
    for name, took in rows:
        print(f"{name}: {took:.2f} s", flush=True)
    title = f"bench_sweep: {args.samples} samples x {args.labels} labels"
    intro = (f"`python scripts/bench_sweep.py --samples {args.samples} --labels {args.labels}` "
             "(val and test each this size; ratio = seconds / seconds of the full sweep).")
    table = markdown_section(title, intro, ("what", "seconds", "ratio"),
                             [(name, f"{took:.2f}", f"{took / rows[0][1]:.2f}x") for name, took in rows])
    print(table)
    if args.write:
        replace_section(args.write, title, table)


if __name__ == "__main__":
    main()
