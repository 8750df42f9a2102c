"""Bad input at the command line: one line on stderr, exit code 2, no traceback."""

from __future__ import annotations

import shutil

import pytest

from conftest import run_cli


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_malformed_toml(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[data\n")
    assert_one_line_error(run_cli("run", str(bad)), "bad.toml: malformed TOML")


@pytest.mark.parametrize("override, fragments", [
    ("data.max_frame=3", ['data.max_frame: unknown key (did you mean "max_frames"?)']),
    ("tasks.focal_gamma=2", ["tasks.0.focal_gamma: only for multiclass tasks (multi-label tasks use Asymmetric Loss"]),
    ("tasks.aggregator=gur", ["tasks.0.aggregator: unknown aggregator 'gur' (did you mean \"gru\"?)"]),
    ("train.epochs=many", ["train.epochs: expected an integer, got 'many'"]),
    ("data.root=/no/such/dir", ["data.root: /no/such/dir does not exist"]),
    ("tasks.column=genre", ["labels.csv: no column 'genre'", 'did you mean "genres"?']),
])
def test_bad_recipe_values(tiny_recipe, override, fragments):
    assert_one_line_error(run_cli("run", str(tiny_recipe()), "--set", override), *fragments)


def test_missing_and_empty_frames_folders(tiny_recipe, demo_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(demo_root, root)
    shutil.rmtree(root / "frames" / "demo-0003")
    assert_one_line_error(run_cli("run", str(tiny_recipe(root=root))), "labels.csv:5",
                          "frames/demo-0003 does not exist")
    (root / "frames" / "demo-0003").mkdir()
    assert_one_line_error(run_cli("run", str(tiny_recipe(root=root))), "frames/demo-0003 holds no images")


def test_debug_shows_the_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[data\n")
    result = run_cli("--debug", "run", str(bad))
    assert result.returncode == 2 and "Traceback" in result.stderr


def test_run_needs_a_recipe_or_resume(tmp_path):
    assert_one_line_error(run_cli("run"), "give a recipe")
    assert_one_line_error(run_cli("run", "--resume", str(tmp_path)), "not a run directory")
    assert_one_line_error(run_cli("run", str(tmp_path / "nope.toml")), "recipe not found")
    assert_one_line_error(run_cli("run", str(tmp_path)), f"{tmp_path}: is a folder, expected a recipe .toml file")


def test_usage_errors_are_one_line_naming_the_command(tmp_path):
    """Not typer's five-line box (issue 9, case 12)."""
    assert_one_line_error(run_cli("compare"), "semisup compare: Missing argument", "semisup compare --help")
    assert_one_line_error(run_cli("run", "--bogus"), "semisup run: No such option: --bogus")
    assert_one_line_error(run_cli("data", "nope"), "semisup data: No such command 'nope'")
    assert run_cli("run", "--help").returncode == 0


def test_run_out_that_is_a_file(tiny_recipe, tmp_path):
    (tmp_path / "out").write_text("mine")
    assert_one_line_error(run_cli("run", str(tiny_recipe()), "--out", str(tmp_path / "out")),
                          "out: is a file, expected a run directory")
    assert (tmp_path / "out").read_text() == "mine"


def test_the_demo_recipe_pointed_at_a_mistyped_root_does_not_build_the_demo_there(tmp_path):
    """`--set data.root=PATH` with the demo recipe's format = "demo" must never train on a
    demo rendered at PATH (issue 9, case 13)."""
    from pathlib import Path

    recipe = Path(__file__).resolve().parents[1] / "recipes" / "sesemi.toml"
    mistyped = tmp_path / "data" / "mien"
    assert_one_line_error(run_cli("run", str(recipe), "--set", f"data.root={mistyped}", "--out", str(tmp_path / "r")),
                          "mien: does not exist; data.format = \"demo\" builds the demo on first use only under",
                          'set data.format = "folder"')
    assert not mistyped.parent.exists() and not (tmp_path / "r").exists()


def test_data_demo_command(tmp_path):
    result = run_cli("data", "demo", str(tmp_path / "d"), "--scale", "0.05", "--seed", "3")
    assert result.returncode == 0, result.stderr
    assert "Drama" in result.stdout and (tmp_path / "d" / "labels.csv").is_file()
    assert_one_line_error(run_cli("data", "demo", str(tmp_path / "d")), "already exists")


def _commands(group, prefix=()):
    """Every (path, click command) under a click group, depth first."""
    for name, command in group.commands.items():
        yield (*prefix, name), command
        if hasattr(command, "commands"):
            yield from _commands(command, (*prefix, name))


def test_help_texts_survive_rich_markup():
    """Typer renders help through rich markup: a "[pretrain]" in a help text would vanish."""
    import typer.main
    from rich.markup import render

    from semisup.cli.app import app

    group = typer.main.get_command(app)
    checked = 0
    for path, command in _commands(group):
        texts = [command.help or ""] + [getattr(param, "help", None) or "" for param in command.params]
        for text in texts:
            meant = text.replace("\\[", "[")  # an escaped bracket is shown as a bracket
            assert render(text).plain == meant, f"semisup {' '.join(path)}: {text!r}"
            checked += 1
    assert checked > 40
