"""The labeling page (``semisup label``) and the Label Studio round trip.

The page is always served by its own server (uvicorn, started as a user
starts it) and driven over HTTP or in headless Chromium; answers are read back
from the selection CSV, merges from ``labels.csv``.
"""

from __future__ import annotations

import csv
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

from conftest import TINY_RECIPE, run_cli
from semisup.data.annotate import merge_labels
from semisup.data.samples import TaskSpec
from semisup.errors import SemisupError
from semisup.label.answers import AnswerError, Answers
from semisup.label.studio import labeling_config, merge_export, read_export
from test_evaluate_cli import chrome

GENRES = ("Action", "Animation", "Comedy", "Documentary", "Drama", "Horror", "Romance", "Sci-Fi", "Thriller")


# --- a run to label -------------------------------------------------------------------------------------------

def copy_run(trained_run: Path, demo_root: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The session's trained run and a copy of its dataset it now points at (merging changes labels.csv)."""
    data, run = tmp_path / "data", tmp_path / "run"
    shutil.copytree(demo_root, data)
    shutil.copytree(trained_run, run)
    config = run / "config.toml"
    config.write_text(config.read_text().replace(f'root = "{demo_root}"', f'root = "{data}"'))
    return run, data


@pytest.fixture
def selected(trained_run, demo_root, tmp_path):
    """A run with ``select.csv`` (8 trailers) and its Label Studio import beside it."""
    run, data = copy_run(trained_run, demo_root, tmp_path)
    result = run_cli("select", str(run), "--budget", "8", "--format", "label-studio")
    assert result.returncode == 0, result.stderr
    return run, data


def rows_of(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


class Server:
    """``semisup label ...`` in its own process, as a user starts it."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "400", "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen([sys.executable, "-m", "semisup.cli", "label", *args, "--port", "0"],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        deadline, seen = time.monotonic() + 60, ""
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            seen += line
            found = re.search(r"http://\S+", line)
            if found:
                self.url = found.group(0)
                break
            if not line and self.process.poll() is not None:
                raise AssertionError(f"semisup label exited: {seen}")
        else:
            raise AssertionError(f"no URL printed: {seen}")
        parts = urlsplit(self.url)
        self.host, self.port = parts.hostname, parts.port

    def request(self, method: str, path: str, body: object = None, headers: dict | None = None,
                host: str | None = None) -> tuple[int, dict, bytes]:
        """A raw request (the path is sent exactly as given: no normalisation of ``..``)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        data = json.dumps(body).encode() if body is not None else None
        sent = {"Host": host or f"127.0.0.1:{self.port}", **(headers or {})}
        if data is not None:
            sent.setdefault("Content-Type", "application/json")
        connection.request(method, path, body=data, headers=sent)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process.stdout.close()


# --- the answers file -----------------------------------------------------------------------------------------

TASKS = [TaskSpec("genres", GENRES, "multilabel"), TaskSpec("scale", ("CS", "LS", "MS"), "multiclass")]


def write_selection(path: Path) -> Path:
    path.write_text("id,rank,strategy,score,media,genres_guess,genres,scale_guess,scale\n"
                    "a,1,mix,0.9,,Drama|Comedy,,CS,\nb,2,mix,0.8,,Horror,,LS,\nc,3,mix,0.7,,Action,Action,MS,MS\n")
    return path


def test_answers_are_checked_against_the_vocabulary_and_written_at_once(tmp_path):
    path = write_selection(tmp_path / "select.csv")
    answers = Answers(path, TASKS)
    assert [r.status for r in answers.rows()] == ["", "", "answered"]  # c was filled in by hand
    assert answers.first_open() == 0 and answers.row(0).guess == {"genres": ("Drama", "Comedy"), "scale": ("CS",)}
    before = path.read_text()
    for labels, status, reason in [({"genres": ["Drma"]}, "answered", "'Drma' is not in the task's vocabulary"),
                                   ({"scale": ["CS", "LS"]}, "answered", "one label per trailer, got 2"),
                                   ({"mood": ["calm"]}, "answered", "no task 'mood'"),
                                   ({"genres": "Drama"}, "answered", "expected a list of labels"),
                                   ({}, "answered", "no label chosen"),
                                   ({"genres": ["Drama"]}, "done", "status 'done' is not one of")]:
        with pytest.raises(AnswerError, match=reason):
            answers.save(0, labels, status)
    with pytest.raises(AnswerError, match="no selected trailer at position 3"):
        answers.save(3, {"genres": ["Drama"]}, "answered")
    assert path.read_text() == before  # nothing refused reached the file

    answers.save(0, {"genres": ["Romance", "Drama"], "scale": ["CS"]}, "answered")
    answers.save(0, {"genres": ["Horror"], "scale": []}, "answered")  # answered twice: the second one counts
    answers.save(1, {"genres": ["Drama"]}, "skipped")                 # a skip keeps no labels
    rows = rows_of(path)
    assert [(r["id"], r["genres"], r["scale"], r["status"]) for r in rows] == [
        ("a", "Horror", "", "answered"), ("b", "", "", "skipped"), ("c", "Action", "MS", "")]
    assert rows[0]["genres_guess"] == "Drama|Comedy"  # the model's guess stays beside the answer
    again = Answers(path, TASKS)  # a restarted page reads what was answered
    assert again.first_open() == 3 and again.counts() == {"open": 0, "answered": 2, "skipped": 1, "unsure": 0}

    path.write_text(path.read_text() + "d,4,mix,0.1,,,,,\n")  # edited elsewhere while the page is open
    with pytest.raises(AnswerError, match="was changed by another program"):
        again.save(0, {"genres": ["Drama"]}, "answered")
    write_selection(tmp_path / "twice.csv").write_text((tmp_path / "twice.csv").read_text() + "a,4,mix,0,,,,,\n")
    with pytest.raises(SemisupError, match=r"twice.csv:5: id 'a' appears twice \(first on line 2\)"):
        Answers(tmp_path / "twice.csv", TASKS)
    with pytest.raises(SemisupError, match="no column 'mood' for the run's task"):
        Answers(path, [TaskSpec("mood", ("calm",))])


def test_a_merge_leaves_out_skipped_and_unsure_rows_and_counts_rows_merged_before(tmp_path):
    (tmp_path / "labels.csv").write_text("id,split,genres\nx,train,Drama\ny,unlabeled,\nz,unlabeled,\n"
                                         "w,unlabeled,\n")
    selection = tmp_path / "select.csv"
    selection.write_text("id,genres_guess,genres,status\ny,Drama,Drama,answered\nz,Drama,Drama,unsure\n"
                         "w,Drama,,skipped\n")
    merged = merge_labels(tmp_path, selection)  # no --partial needed: skipped and unsure rows are not empty rows
    assert merged.labeled == ["y"] and merged.skipped == ["z", "w"] and merged.already == []
    selection.write_text("id,genres_guess,genres,status\ny,Drama,Drama,answered\nz,Drama,Comedy,answered\n")
    with pytest.raises(SemisupError, match="'Comedy' is not in the dataset's vocabulary"):
        merge_labels(tmp_path, selection)
    selection.write_text("id,genres_guess,genres,status\ny,Drama,Drama,answered\nz,Drama,Drama,answered\n")
    again = merge_labels(tmp_path, selection)  # y again, unchanged: merged before, not a problem
    assert again.labeled == ["z"] and again.already == ["y"]
    selection.write_text("id,genres_guess,genres,status\ny,Drama,Drama|Comedy,answered\n")
    with pytest.raises(SemisupError, match="'y' is already labeled"):  # a changed answer is not merged silently
        merge_labels(tmp_path, selection, allow_new_labels=True)
    with pytest.raises(SemisupError, match=r"no filled-in rows to merge \(2 merged before\)"):
        selection.write_text("id,genres_guess,genres,status\ny,Drama,Drama,answered\nz,Drama,Drama,answered\n")
        merge_labels(tmp_path, selection)


# --- the server over HTTP -------------------------------------------------------------------------------------

def test_the_server_serves_only_the_selection_and_refuses_traversal(selected, tmp_path):
    run, data = selected
    first = rows_of(run / "select.csv")[0]["id"]
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    os.symlink(secret, data / "frames" / first / "000.jpg.link")  # a link out of the trailer's folder...
    frames = sorted((data / "frames" / first).iterdir())
    target = frames[0]
    target.unlink()
    os.symlink(secret, target)                                    # ...in place of its first frame
    server = Server(str(run))
    try:
        status, _, body = server.request("GET", "/api/strip/0")
        strip = json.loads(body)
        assert status == 200 and strip["unreadable"] == 1 and len(strip["thumbs"]) >= 1  # the link is not read
        for k in range(len(strip["thumbs"])):
            status, headers, body = server.request("GET", f"/thumb/0/{k}")
            assert status == 200 and headers["content-type"] == "image/jpeg" and b"top secret" not in body
        for path in ["/static/../app.py", "/static/..%2fapp.py", "/static/%2e%2e/%2e%2e/errors.py",
                     "/static/..%252fapp.py", "/thumb/0/../../../etc/passwd", "/thumb/0/99", "/thumb/-1/0",
                     "/thumb/8/0", f"/media/{secret}", "/video/0", "/label/thumbnails", f"/{secret}",
                     "/static/label.js/../../session.py", "/static//etc/passwd"]:
            status, _, body = server.request("GET", path)
            assert status == 404 and b"top secret" not in body and b"import" not in body, path
        status, _, body = server.request("GET", "/static/label.js")
        assert status == 200 and b"keydown" in body

        # DNS rebinding: another name for this machine is not served without a token
        status, _, body = server.request("GET", "/", host="attacker.example")
        assert status == 403 and b"not served here" in body
        # changes: JSON from the page's own origin only
        answer = {"row": 0, "labels": {"genres": ["Drama"]}, "status": "answered"}
        status, _, _ = server.request("POST", "/api/answer", answer, {"Origin": "http://attacker.example"})
        assert status == 403
        status, _, _ = server.request("POST", "/api/answer", answer, {"Content-Type": "text/plain"})
        assert status == 415
        assert "answered" not in (run / "select.csv").read_text()
        status, _, body = server.request("POST", "/api/answer", {**answer, "labels": {"genres": ["Dramma"]}})
        assert status == 422 and "'Dramma' is not in the task's vocabulary" in json.loads(body)["error"]
        status, _, body = server.request("POST", "/api/answer", answer,
                                         {"Origin": f"http://127.0.0.1:{server.port}"})
        assert status == 200 and json.loads(body)["counts"]["answered"] == 1
        status, _, body = server.request("POST", "/api/answer", {**answer, "labels": {"genres": ["Horror"]}})
        assert status == 200 and json.loads(body)["counts"]["answered"] == 1  # answered twice: one answer
        rows = rows_of(run / "select.csv")
        assert [(r["genres"], r["status"]) for r in rows if r["status"]] == [("Horror", "answered")]
    finally:
        server.stop()


def test_off_loopback_every_request_needs_the_token(selected):
    run, _ = selected
    server = Server(str(run), "--host", "0.0.0.0", "--token", "s3cret-token")
    try:
        assert server.url.endswith("?token=s3cret-token")
        status, _, body = server.request("GET", "/")
        assert status == 403 and b"token is needed" in body
        for path in ("/api/state", "/api/strip/0", "/thumb/0/0", "/static/label.js"):
            assert server.request("GET", path)[0] == 403, path
        assert server.request("GET", "/?token=wrong")[0] == 403
        status, headers, body = server.request("GET", "/?token=s3cret-token", host="labeling.example:80")
        assert status == 200 and b"semisup label" in body
        cookie = headers["set-cookie"].split(";")[0]
        assert "HttpOnly" in headers["set-cookie"] and "samesite=strict" in headers["set-cookie"].lower()
        assert server.request("GET", "/thumb/0/0", headers={"Cookie": cookie})[0] == 200  # images carry the cookie
        answer = {"row": 1, "labels": {"genres": ["Drama"]}, "status": "answered"}
        status, _, _ = server.request("POST", "/api/answer", answer, {"Cookie": cookie})
        assert status == 403  # a cookie alone cannot change anything: a POST names the token itself
        status, _, _ = server.request("POST", "/api/answer", answer, {"X-Semisup-Token": "s3cret-token"})
        assert status == 200
    finally:
        server.stop()
    generated = Server(str(run), "--host", "0.0.0.0")  # no --token: a random one, printed in the URL
    try:
        token = generated.url.split("?token=")[1]
        assert len(token) >= 24 and generated.request("GET", "/")[0] == 403
        assert generated.request("GET", f"/?token={token}")[0] == 200
    finally:
        generated.stop()


# --- the page in a browser ------------------------------------------------------------------------------------

def test_label_with_mouse_and_keyboard_survive_a_kill_and_merge(selected, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    run, data = selected
    chosen = rows_of(run / "select.csv")
    original = (data / "labels.csv").read_text()
    wanted = ["Drama", "Comedy|Horror", "Action", "Romance", "Sci-Fi|Thriller", "Documentary"]
    driver = chrome(tmp_path)
    server = Server(str(run))
    try:
        driver.get(server.url)
        wait = WebDriverWait(driver, 20)

        def at(index: int) -> None:
            wait.until(lambda d: d.find_element(By.ID, "trailer-id").text == chosen[index]["id"])

        def checked() -> set[str]:
            return {i.get_attribute("value") for i in driver.find_elements(By.CSS_SELECTOR, "#tasks input:checked")}

        at(0)
        assert checked() == set(chosen[0]["genres_guess"].split("|")) - {""}  # the model's guess, filled in
        wait.until(lambda d: d.execute_script(  # the strip's thumbnails arrive and decode
            "const s = Array.from(document.querySelectorAll('#strip img'));"
            "return s.length === 5 && s.every(i => i.complete && i.naturalWidth > 0)"))
        for index in range(3):  # the mouse: clear the guess, click the answer, Save
            at(index)
            for box in driver.find_elements(By.CSS_SELECTOR, "#tasks input:checked"):
                box.click()
            for label in wanted[index].split("|"):
                driver.find_element(By.CSS_SELECTOR, f"#tasks input[value='{label}']").click()
            assert checked() == set(wanted[index].split("|"))
            driver.find_element(By.ID, "save").click()
        for index in range(3, 6):  # the keyboard: digits toggle labels (1 = the first label), Enter saves
            at(index)
            body = driver.find_element(By.TAG_NAME, "body")
            for label in checked():
                body.send_keys(str(GENRES.index(label) + 1))
            for label in wanted[index].split("|"):
                body.send_keys(str(GENRES.index(label) + 1))
            assert checked() == set(wanted[index].split("|"))
            body.send_keys(Keys.ENTER)
        at(6)
        driver.find_element(By.TAG_NAME, "body").send_keys(Keys.BACKSPACE)  # back: the answer is shown again
        at(5)
        assert checked() == set(wanted[5].split("|"))
        server.kill()  # mid-way: nothing answered may be lost

        rows = rows_of(run / "select.csv")
        assert [r["genres"] for r in rows[:6]] == wanted and all(r["status"] == "answered" for r in rows[:6])
        server = Server(str(run))
        driver.get(server.url)
        at(6)  # resumed at the first trailer not answered
        assert driver.find_element(By.ID, "progress").text.startswith("6 of 8 done")
        body = driver.find_element(By.TAG_NAME, "body")
        body.send_keys("s")  # skip trailer 7
        at(7)
        if not checked():
            body.send_keys("1")
        body.send_keys("u")  # unsure about trailer 8 (its guess kept as the answer, not merged)
        wait.until(lambda d: "8 of 8 done" in d.find_element(By.ID, "progress").text)
        driver.save_screenshot(str(tmp_path / "label-page.png"))
        if os.environ.get("SEMISUP_SCREENSHOTS"):  # the README's picture is taken here
            shutil.copy(tmp_path / "label-page.png", Path(os.environ["SEMISUP_SCREENSHOTS"]) / "label-page.png")
        driver.find_element(By.ID, "merge").click()
        wait.until(lambda d: "merged into" in d.find_element(By.ID, "message").text)
        message = driver.find_element(By.ID, "message").text
    finally:
        server.stop()
        driver.quit()
    assert message.startswith("6 trailer(s) merged into")
    labels = {r["id"]: r for r in rows_of(data / "labels.csv")}
    for row, genres in zip(chosen[:6], wanted):
        assert labels[row["id"]]["genres"] == genres and labels[row["id"]]["split"] == "train"
    for row in chosen[6:]:  # skipped and unsure: still unlabeled
        assert labels[row["id"]]["split"] == "unlabeled" and labels[row["id"]]["genres"] == ""
    backups = list(data.glob("labels.backup-*.csv"))
    assert len(backups) == 1 and backups[0].read_text() == original and message.endswith(str(backups[0]))


# --- Label Studio -----------------------------------------------------------------------------------------------

def test_a_label_studio_export_merges_exactly_as_the_csv_does(selected, tmp_path):
    import xml.etree.ElementTree as ET

    run, data = selected
    chosen = rows_of(run / "select.csv")
    tasks = json.loads((run / "select.label-studio.json").read_text())
    config = ET.fromstring((run / "select.label-studio.xml").read_text())
    assert config.find("Image").get("valueList") == "$frames"
    choices = config.find("Choices")
    assert choices.get("name") == "genres" and choices.get("choice") == "multiple"
    assert [c.get("value") for c in choices.findall("Choice")] == list(GENRES)
    assert [t["data"]["trailer"] for t in tasks] == [r["id"] for r in chosen]  # best first
    for task, row in zip(tasks, chosen):
        prediction = task["predictions"][0]
        assert prediction["model_version"] == "semisup run" and prediction["score"] == float(row["score"])
        guessed = [r["value"]["choices"] for r in prediction["result"] if r["from_name"] == "genres"]
        assert "|".join(guessed[0] if guessed else []) == row["genres_guess"]
        frames = task["data"]["frames"]
        assert frames and all(f.startswith("/data/local-files/?d=frames/") for f in frames)
        assert (data / frames[0].split("?d=")[1]).is_file()  # relative to the dataset root

    # the annotator's answers, once through the CSV and once as Label Studio exports them
    answers = ["Drama", "Comedy|Horror", "", "Action"]  # trailer 3 is left unanswered
    by_csv = tmp_path / "by-csv"
    shutil.copytree(data, by_csv)
    filled = run / "filled.csv"
    with filled.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(chosen[0]))
        writer.writeheader()
        for row, genres in zip(chosen[:4], answers):
            writer.writerow({**row, "genres": genres})
    assert run_cli("data", "label", str(by_csv), str(filled), "--partial").returncode == 0

    export = []
    for n, (task, genres) in enumerate(zip(tasks[:4], answers), start=1):
        result = [{"id": f"r{n}", "from_name": "genres", "to_name": "frames", "type": "choices",
                   "value": {"choices": genres.split("|")}}] if genres else []
        older = {"id": 100 + n, "result": [{"from_name": "genres", "to_name": "frames", "type": "choices",
                                            "value": {"choices": ["Thriller"]}}],
                 "was_cancelled": False, "updated_at": "2026-01-01T10:00:00Z"}  # replaced by a later one
        latest = {"id": n, "result": result, "was_cancelled": not genres, "updated_at": "2026-02-01T10:00:00Z"}
        export.append({"id": n, "data": task["data"], "annotations": [older, latest] if genres else [latest],
                       "predictions": task["predictions"]})
    export_path = tmp_path / "project-1-at-2026-12-05.json"
    export_path.write_text(json.dumps(export))
    rows, names = read_export(export_path)
    assert names == ["genres"] and [r["status"] for _, r in rows] == ["", "", "skipped", ""]
    by_studio = tmp_path / "by-studio"
    shutil.copytree(data, by_studio)
    result = run_cli("data", "label", str(by_studio), str(export_path))
    assert result.returncode == 0, result.stderr
    assert "3 trailers labeled" in result.stdout and "1 rows left unlabeled" in result.stdout
    assert (by_studio / "labels.csv").read_text() == (by_csv / "labels.csv").read_text()

    # the same checks as the CSV: a label outside the vocabulary, a trailer outside the dataset
    export[0]["annotations"][-1]["result"][0]["value"]["choices"] = ["Dramma"]
    export[1]["data"] = {**export[1]["data"], "trailer": "nobody"}
    export_path.write_text(json.dumps(export))
    with pytest.raises(SemisupError) as error:
        merge_export(data, export_path, partial=True)
    lines = str(error.value).splitlines()
    assert lines[0].endswith("2 problem(s), nothing merged:")
    assert f"{export_path}: task 1: genres label 'Dramma' is not in the dataset's vocabulary" in lines[1]
    assert lines[2].startswith(f"{export_path}: task 2: id 'nobody' is not in")
    export_path.write_text('{"tasks": []}')
    failed = run_cli("data", "label", str(data), str(export_path))
    assert failed.returncode == 2 and "expected a Label Studio JSON export (a list of tasks)" in failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1


def test_the_labeling_config_names_one_choice_for_one_label_tasks_and_a_video_player():
    text = labeling_config([TaskSpec("genres", ("A&B", "C")), TaskSpec("scale", ("CS", "LS"), "multiclass")], "video")
    assert '<Video name="video" value="$video" />' in text and 'value="A&amp;B"' in text  # escaped
    assert '<Choices name="scale" toName="video" choice="single"' in text
    assert '<Choices name="genres" toName="video" choice="multiple"' in text


# --- every task kind, videos, a run from cached features ------------------------------------------------------

def test_videos_one_label_tasks_and_a_run_from_cached_features(tmp_path):
    from media import photo, write_clip

    from semisup.config import load_recipe
    from semisup.features import write_features
    from semisup.train.run import start_run

    root = tmp_path / "shots"
    names = ["astronaut", "coffee", "chelsea", "rocket"]
    rows = ["id,split,genres,scale"]
    rng = np.random.default_rng(0)
    for i in range(16):
        base = photo(names[i % 4], (72, 96))
        frames = [np.roll(base, 3 * t * (1 + i % 3), axis=1) for t in range(8)]
        write_clip(root / "videos" / f"shot-{i:02d}.mp4", frames)
        split = "unlabeled" if i >= 10 else ("val" if i in (6, 7) else "test" if i in (8, 9) else "train")
        genres = "|".join(rng.choice(["Drama", "Comedy", "Horror"], size=1 + i % 2, replace=False))
        rows.append(f"shot-{i:02d},{split},{genres if split != 'unlabeled' else ''},"
                    f"{['CS', 'LS'][i % 2] if split != 'unlabeled' else ''}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(TINY_RECIPE.format(root=root, labels_file="labels.csv")
                      .replace('[[pretext]]\nname = "sesemi"\nframes_per_trailer = 2\nhead_hidden = 32\n', "")
                      + '\n[[tasks]]\nname = "scale"\nkind = "multiclass"\n')
    frozen = ["model.trainable_stages=0"]
    write_features(load_recipe(recipe, frozen), tmp_path / "cache")
    run = start_run(recipe, [*frozen, f'data.features="{tmp_path / "cache"}"', "train.epochs=1"],
                    tmp_path / "run").run_dir
    result = run_cli("select", str(run), "--budget", "4", "--format", "label-studio")
    assert result.returncode == 0, result.stderr
    tasks = json.loads((run / "select.label-studio.json").read_text())
    assert all(t["data"]["video"].startswith("/data/local-files/?d=videos/shot-") for t in tasks)
    assert 'choice="single"' in (run / "select.label-studio.xml").read_text()

    server = Server(str(run))
    try:
        status, _, body = server.request("GET", "/api/state")
        state = json.loads(body)
        assert [t["kind"] for t in state["tasks"]] == ["multilabel", "multiclass"]
        strip = json.loads(server.request("GET", "/api/strip/0")[2])
        assert len(strip["thumbs"]) == 8 and strip["unreadable"] == 0 and strip["video"] == "/video/0"
        status, headers, body = server.request("GET", "/video/0", headers={"Range": "bytes=0-99"})
        assert status == 206 and len(body) == 100 and body[4:8] == b"ftyp"  # the player can scrub
        status, _, body = server.request("POST", "/api/answer", {"row": 0, "labels": {"scale": ["CS", "LS"]}})
        assert status == 422 and "one label per trailer" in json.loads(body)["error"]
        for row, (genres, scale) in enumerate([(["Drama"], ["CS"]), (["Comedy", "Horror"], ["LS"])]):
            status, _, _ = server.request("POST", "/api/answer", {"row": row, "labels": {"genres": genres,
                                                                                          "scale": scale}})
            assert status == 200
        status, _, body = server.request("POST", "/api/merge", {})
        merged = json.loads(body)
        assert status == 200 and len(merged["labeled"]) == 2 and merged["left"] == 2
    finally:
        server.stop()
    labels = {r["id"]: r for r in rows_of(root / "labels.csv")}
    first, second = (r["id"] for r in rows_of(run / "select.csv")[:2])
    assert (labels[first]["genres"], labels[first]["scale"], labels[first]["split"]) == ("Drama", "CS", "train")
    assert (labels[second]["genres"], labels[second]["scale"]) == ("Comedy|Horror", "LS")


def test_bad_inputs_are_one_line_errors(selected, tmp_path):
    run, _ = selected
    for args, message in [((str(tmp_path / "nope"),), "run directory does not exist"),
                          ((str(run), str(tmp_path / "none.csv")), "no selection to label"),
                          ((str(run), "--host", "192.0.2.1"), "cannot listen there")]:
        result = run_cli("label", *args, timeout=60)
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    again = run_cli("select", str(run), "--budget", "2", "--format", "label-studio")
    assert again.returncode == 2 and "select.label-studio.json: already exists" in again.stderr
