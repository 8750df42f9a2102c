"""The labeling page at the size of a real labeling round: how fast it opens, how fast strips are made.

    python scripts/bench_label.py [--trailers 500] [--frames 20] [--repeats 5] [--write BENCHMARKS.md]

Generates a folder dataset (``--trailers`` unlabeled trailers of ``--frames``
480x270 JPEGs of real photos, plus 60 labeled ones), trains a tiny run on it
(timm's ``test_resnet`` at 32 px, one epoch: the run only has to exist),
selects every unlabeled trailer (``semisup select --budget N --strategy
random``), then:

* makes every trailer's thumbnail strip (``--frames`` thumbnails each, 144 px
  high) in one process, as the page's background thread does;
* serves the page (``semisup label RUN --frames N``) and opens it in headless
  Chromium ``--repeats`` times: the time from the start of navigation to the
  first trailer's whole strip decoded on screen, and to the page's load event;
* once more with the thumbnail cache removed and the server restarted: the
  first strip then is made while the person waits.

Needs Chromium and chromedriver (as the page's test does).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_shards import generate_pool  # noqa: E402
from bench_train import markdown_section, replace_section  # noqa: E402

RECIPE = """
[run]
name = "bench-label"
seed = 0

[data]
format = "folder"
root = "{root}"
image_size = 32
max_frames = 4
eval_frames = 4
num_workers = 0

[[tasks]]
name = "genres"

[model]
encoder = "test_resnet"
trainable_stages = "all"
head_hidden = 32

[train]
epochs = 1
labeled_batch_size = 8
eval_batch_size = 32
"""


def semisup(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "semisup.cli", *args], check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "HF_HUB_OFFLINE": "1"})


def serve(run: Path, frames: int) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, "-m", "semisup.cli", "label", str(run), "--port", "0",
                                "--frames", str(frames)], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "COLUMNS": "400", "PYTHONUNBUFFERED": "1"})
    for line in process.stdout:
        found = re.search(r"http://\S+", line)
        if found:
            return process, found.group(0)
    raise SystemExit("semisup label printed no URL")


def open_page(driver, url: str, frames: int) -> tuple[float, float]:
    """Seconds from navigation start to the first strip decoded, and to the load event."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get("about:blank")
    driver.get(url)
    script = ("const s = Array.from(document.querySelectorAll('#strip img'));"
              f"return s.length === {frames} && s.every(i => i.complete && i.naturalWidth > 0) ? performance.now() : 0")
    strip_ms = WebDriverWait(driver, 120, poll_frequency=0.005).until(lambda d: d.execute_script(script))
    load_ms = driver.execute_script("const n = performance.getEntriesByType('navigation')[0]; return n.loadEventEnd")
    return strip_ms / 1000, load_ms / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trailers", type=int, default=500)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--write", type=Path, help="put the table into this Markdown file (BENCHMARKS.md)")
    args = parser.parse_args()

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from semisup.label.session import open_session

    with tempfile.TemporaryDirectory() as scratch:
        root, run = Path(scratch) / "data", Path(scratch) / "run"
        generate_pool(root, args.trailers + 60, args.frames)
        recipe = Path(scratch) / "recipe.toml"
        recipe.write_text(RECIPE.format(root=root))
        semisup("run", str(recipe), "--out", str(run))
        semisup("select", str(run), "--budget", str(args.trailers), "--strategy", "random")

        session = open_session(run, frames=args.frames)
        start = time.perf_counter()
        made = sum(len(session.thumbnails.strip(s).files) for s in session.samples if s is not None)
        make_s = time.perf_counter() - start
        page_kb = None

        options = webdriver.ChromeOptions()
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,900", f"--user-data-dir={Path(scratch) / 'chromium'}"):
            options.add_argument(flag)
        options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
        warm, cold = [], None
        try:
            process, url = serve(run, args.frames)
            try:
                open_page(driver, url, args.frames)  # the browser's own first start is not the page's
                for _ in range(args.repeats):
                    driver.execute_cdp_cmd("Network.clearBrowserCache", {})
                    warm.append(open_page(driver, url, args.frames))
                page_kb = len(driver.page_source.encode()) / 1024
            finally:
                process.terminate()
                process.wait()
            shutil.rmtree(run / "label" / "thumbnails")
            process, url = serve(run, args.frames)
            try:
                driver.execute_cdp_cmd("Network.clearBrowserCache", {})
                cold = open_page(driver, url, args.frames)
            finally:
                process.terminate()
                process.wait()
        finally:
            driver.quit()

    n = args.trailers
    rows = [(f"make every strip ({n} trailers x {args.frames} thumbnails, one process)", f"{make_s:.1f} s",
             f"{n / make_s:.1f} trailers/s, {made / make_s:.0f} thumbnails/s"),
            (f"open the page, strips made (median of {args.repeats}, browser cache cleared)",
             f"{statistics.median(w[0] for w in warm):.2f} s to the first strip on screen",
             f"load event at {statistics.median(w[1] for w in warm):.2f} s; page {page_kb:.0f} KiB"),
            ("open the page right after start, no strip made yet",
             f"{cold[0]:.2f} s to the first strip on screen", f"load event at {cold[1]:.2f} s")]
    title = "bench_label: the labeling page at the size of a labeling round"
    intro = (f"`python scripts/bench_label.py --trailers {n} --frames {args.frames} --repeats {args.repeats}` on "
             f"{platform.machine()}, {os.cpu_count()} cores: {n} selected trailers of {args.frames} 480x270 JPEGs, "
             f"{args.frames} thumbnails (144 px high) per strip, the page served by `semisup label` on 127.0.0.1 and "
             "opened in headless Chromium. Times run from the start of navigation.")
    table = markdown_section(title, intro, ("what", "time", "also"), rows)
    print(table)
    if args.write:
        replace_section(args.write, title, table)


if __name__ == "__main__":
    main()
