"""One self-contained HTML page per run: recipe, training curves, results, sweep, per-class tables.

Plots are embedded as base64 PNGs, so the file can be mailed or attached to
an issue as it is.
"""

from __future__ import annotations

import base64
import html
import json
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Sequence

from semisup.errors import SemisupError
from semisup.evaluate.runs import RunDir, per_class_table
from semisup.io import refuse_existing, write_text

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
tr.chosen td { background: #e8f3e8; font-weight: 600; }
img { max-width: 100%; display: block; margin: 0.6em 0; }
.muted { color: #666; } pre { background: #f8f8f8; padding: 1em; overflow-x: auto; }
"""


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]], classes: Sequence[str] = ()) -> str:
    def cell(value: Any) -> str:
        if value is None:
            return "-"
        return f"{value:.3f}" if isinstance(value, float) else html.escape(str(value))
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        css = f' class="{classes[i]}"' if i < len(classes) and classes[i] else ""
        body.append(f"<tr{css}>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _image(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def write_html_report(run_dir: Path, out: Path | None = None, objective: str = "micro-f1",
                      force: bool = False) -> Path:
    """Write ``RUN_DIR/report.html`` (or ``out``) for a finished run.

    Raises:
        SemisupError: not a finished run directory; ``out`` exists and not ``force``.
    """
    from semisup.evaluate.plots import plot_pretraining, plot_training, sweep_plots
    from semisup.evaluate.sweep import sweep
    from semisup.io import read_metrics

    run = RunDir.open(run_dir)
    report_path = run.path / "report.json"
    if not report_path.is_file():
        raise SemisupError(f"{run.path}: no report.json (the run has not finished)")
    out = out or run.path / "report.html"
    refuse_existing(out, force, "report")
    report = json.loads(report_path.read_text())
    recipe = run.recipe()
    val, test = run.predictions("val"), run.predictions("test")
    records = read_metrics(run.path / "metrics.jsonl") if (run.path / "metrics.jsonl").exists() else []
    sweeps = sweep(val, test, objective)
    parts = [f"<h1>semisup run: {html.escape(recipe.run.name)}</h1>",
             f'<p class="muted">{html.escape(str(run.path))} &middot; report written '
             f'{datetime.now():%Y-%m-%d %H:%M} &middot; best checkpoint after epoch {report.get("epoch")}</p>']
    parts.append("<h2>Recipe</h2>")
    m, d = recipe.model, recipe.data
    settings = [("data", f"{d.format}: {d.root}"), ("tasks", ", ".join(f"{t.name} ({t.kind}, {len(t.labels)} labels)"
                                                                   for t in recipe.tasks)),
                ("encoder", f"{m.encoder}, pretrained={m.pretrained}, trainable stages {m.trainable_stages}"),
                ("frames", f"{d.image_size} px, {d.max_frames} per labeled trailer, {d.eval_frames} in evaluation"),
                ("pretext", ", ".join(p.name for p in recipe.pretext) or "none"),
                ("consistency", ", ".join(f"{c.name} (weight {c.weight:g})" for c in recipe.consistency) or "none"),
                ("teacher", f"EMA, decay {recipe.ema.decay:g}, evaluated: {recipe.ema.evaluate}" if recipe.ema
                 else "none"),
                ("pretraining", f"{recipe.pretrain.method}, {recipe.pretrain.epochs} epochs" if recipe.pretrain
                 else "none"),
                ("optimisation", f"{recipe.optim.mode}, Adam lr {recipe.optim.lr:g}, {recipe.optim.schedule}, "
                                 f"{recipe.train.epochs} epochs"),
                ("seed", recipe.run.seed)]
    parts.append(_table(["setting", "value"], settings))
    parts.append(f"<details><summary>config.toml</summary><pre>{html.escape(run.config.read_text())}</pre></details>")
    with tempfile.TemporaryDirectory() as tmp:
        pretrain_log = run.path / "pretrain" / "metrics.jsonl"
        pretrain_records = read_metrics(pretrain_log) if pretrain_log.exists() else []
        if pretrain_records:
            parts.append("<h2>Contrastive pretraining</h2>")
            parts.append(_image(plot_pretraining(pretrain_records, Path(tmp) / "pretrain.png"),
                                "pretraining curves"))
        if records:
            parts.append("<h2>Training</h2>")
            parts.append(_image(plot_training(records, Path(tmp) / "training.png"), "training curves"))
        for task, result in sweeps.items():
            keep = test.labeled[task]
            targets, scores, labels = test.targets[task][keep], test.scores[task][keep], test.labels[task]
            parts.append(f"<h2>{html.escape(task)}: test results</h2>")
            metrics = report["splits"]["test"][task]
            if result.kind == "multiclass":
                parts.append(f"<p>accuracy <b>{metrics['accuracy']:.3f}</b>, macro-F1 <b>{metrics['macro_f1']:.3f}</b>"
                             f" on {metrics['samples']} samples</p>")
                parts.append(_table(["class", "precision", "recall", "F1", "AP", "support"],
                                    [(k, v["precision"], v["recall"], v["f1"], metrics["ap"][k], metrics["support"][k])
                                     for k, v in metrics["per_class"].items()]))
            else:
                parts.append(f"<p>mAP <b>{metrics['mAP']:.3f}</b> on {metrics['samples']} samples</p>")
                parts.append(_table(["rule", "micro P", "micro R", "micro F1", "macro F1", "samples F1"],
                                    [(rule, v["micro"]["precision"], v["micro"]["recall"], v["micro"]["f1"],
                                      v["macro"]["f1"], v["samples"]["f1"]) for rule, v in metrics["rules"].items()]))
                parts.append(f"<h2>{html.escape(task)}: decision rules tuned on validation ({result.objective})</h2>")
                parts.append(_table(["rule", "val P", "val R", "val F1", "test P", "test R", "test F1"],
                                    [(c.rule.describe(), *c.val[_average(objective)],
                                      *(c.test[_average(objective)] if c.test else (None,) * 3))
                                     for c in result.candidates],
                                    ["chosen" if c is result.chosen else "" for c in result.candidates]))
                parts.append(f'<p class="muted">chosen: {html.escape(result.chosen.rule.describe())} '
                             "(highlighted); test labels never influence the choice.</p>")
                parts.append(f"<h2>{html.escape(task)}: per class (test, p &ge; 0.5)</h2>")
                parts.append(_table(["label", "precision@0.5", "recall@0.5", "AP", "support"],
                                    [(r["label"], r["precision"], r["recall"], r["ap"], r["support"])
                                     for r in per_class_table(targets, scores, labels)]))
            for path in sweep_plots(result, targets, scores, labels, Path(tmp)):
                parts.append(_image(path, path.stem))
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>semisup: {html.escape(recipe.run.name)}"
            f"</title><style>{STYLE}</style></head><body>{''.join(parts)}</body></html>")
    write_text(out, page)
    return out


def _average(objective: str) -> str:
    from semisup.evaluate.sweep import OBJECTIVES

    return OBJECTIVES[objective]
