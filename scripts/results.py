"""Every results table of the README and the docs, made by one command.

    python scripts/results.py demo-genres --out runs/results            # run, tabulate, write
    python scripts/results.py demo-genres --out runs/results --seeds 0  # one seed
    python scripts/results.py --list

A table is a list of rows; a row is a recipe with a few `--set` overrides, run
once per seed into OUT/<table>/<row>-s<seed>. A run directory that already
holds a report.json is kept and an unfinished one resumed, so an interrupted
sweep continues where it stopped. The table is `semisup compare --markdown`
over the finished runs, written to docs/results/<table>.md under a line that
says how, where and when it was made (command, CPU, precision, torch, date,
commit). Every block of the README and the docs fenced by
``<!-- results:<table> -->`` and ``<!-- /results:<table> -->`` is then
rewritten with that file, so no two copies of a table can disagree
(tests/test_docs.py checks it).
"""

from __future__ import annotations

import argparse
import datetime
import platform
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"


@dataclass(frozen=True)
class Row:
    """One line of a table: a recipe and its overrides."""

    name: str
    recipe: str
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class Table:
    """Rows run over seeds, and what `semisup compare` is told about them."""

    rows: tuple[Row, ...]
    seeds: tuple[int, ...] = (0, 1, 2)
    compare: tuple[str, ...] = ()
    note: str = ""


TABLES: dict[str, Table] = {
    "demo-genres": Table(
        rows=tuple(Row(name, f"recipes/{name}.toml") for name in
                   ("supervised", "sesemi", "simclr", "fixmatch", "sesemi-fixmatch", "mean-teacher")),
        note="Demo genres (60 labeled trailers, 360 unlabeled, ResNet18 from scratch at 64 px); test mAP and the "
             "micro-F1 of the decision rule `threshold-sweep` picks on validation; train time counts training only "
             "(SimCLR: pretraining included)."),
}
"""Table name -> its rows. Add a table here, then fence its copies in the docs."""


def run_rows(table: Table, out: Path, seeds: tuple[int, ...]) -> list[str]:
    """Run (or resume, or keep) every row of ``table`` for every seed; the finished run directories."""
    finished = []
    for seed in seeds:
        for row in table.rows:
            run_dir = out / f"{row.name}-s{seed}"
            if run_dir.is_dir() and not (run_dir / "report.json").is_file():
                subprocess.run(["semisup", "run", "--resume", str(run_dir)], check=True)
            elif not run_dir.is_dir():
                overrides = [*row.overrides, f"run.name={row.name}", f"run.seed={seed}"]
                command = ["semisup", "run", row.recipe, *(a for o in overrides for a in ("--set", o)),
                           "--out", str(run_dir)]
                print(shlex.join(command), flush=True)
                subprocess.run(command, check=True)
            finished.append(str(run_dir))
    return finished


def provenance(command: str) -> str:
    """One line: how, on what and when a table was made."""
    import torch

    from semisup.device import resolve_precision

    dtype = resolve_precision(torch.device("cpu"), "auto")
    precision = "fp32" if dtype is None else str(dtype).removeprefix("torch.").replace("bfloat16", "bf16")
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip() or "unknown"
    return (f"Made by `{command}` on {datetime.date.today().isoformat()}: {cpu}, CPU, precision {precision} "
            f"(`run.precision = \"auto\"`), torch {torch.__version__}, semisup commit {commit}.")


def write_table(name: str, table: Table, runs: list[str], command: str) -> Path:
    """``semisup compare`` over ``runs`` into docs/results/<name>.md; its path."""
    made = subprocess.run(["semisup", "compare", *runs, *table.compare, "--markdown"], check=True,
                          capture_output=True, text=True).stdout.strip()
    text = f"{table.note}\n{provenance(command)}\n\n{made}\n"
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.md"
    path.write_text(text)
    return path


def fenced_copies(name: str) -> re.Pattern[str]:
    """The pattern of a table's fenced copy in a Markdown page."""
    return re.compile(rf"(<!-- results:{re.escape(name)} -->\n).*?(<!-- /results:{re.escape(name)} -->)", re.S)


def update_copies(name: str) -> list[Path]:
    """Rewrite every fenced copy of table ``name`` in README.md and docs/ with docs/results/<name>.md."""
    text = (RESULTS / f"{name}.md").read_text()
    pattern = fenced_copies(name)
    changed = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        old = page.read_text()
        new = pattern.sub(lambda m: m.group(1) + text + m.group(2), old)
        if new != old:
            page.write_text(new)
            changed.append(page)
    return changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tables", nargs="*", help="table names (see --list)")
    parser.add_argument("--out", type=Path, default=Path("runs/results"), help="folder of the run directories")
    parser.add_argument("--seeds", type=int, nargs="+", help="instead of each table's own seeds")
    parser.add_argument("--list", action="store_true", help="list the tables and exit")
    args = parser.parse_args()
    if args.list or not args.tables:
        for name, table in TABLES.items():
            print(f"{name}: {', '.join(r.name for r in table.rows)}; seeds {' '.join(map(str, table.seeds))}")
        return
    unknown = [n for n in args.tables if n not in TABLES]
    if unknown:
        parser.error(f"unknown table {unknown[0]!r}; known: {', '.join(TABLES)}")
    for name in args.tables:
        table = TABLES[name]
        seeds = tuple(args.seeds or table.seeds)
        runs = run_rows(table, args.out / name, seeds)
        command = f"python scripts/results.py {name}" + (f" --seeds {' '.join(map(str, seeds))}"
                                                          if seeds != table.seeds else "")
        path = write_table(name, table, runs, command)
        for page in update_copies(name):
            print(f"updated {page.relative_to(ROOT)}")
        print(path.read_text())


if __name__ == "__main__":
    sys.exit(main())
