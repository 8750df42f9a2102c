"""Recipe loading: types, ranges, unknown keys, overrides, round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from semisup.config import apply_overrides, load_recipe, recipe_to_toml
from semisup.errors import SemisupError


def test_tiny_recipe_loads_with_defaults(tiny_recipe):
    recipe = load_recipe(tiny_recipe())
    assert recipe.data.image_size == 32
    assert recipe.model.encoder == "test_resnet"
    assert recipe.model.trainable_stages == "all"
    assert recipe.loss.gamma_neg == 4.0 and recipe.loss.clip == 0.05  # ASL paper defaults
    assert recipe.optim.mode == "separate"
    assert recipe.tasks[0].csv_column == "genres"
    assert recipe.pretext[0].options.transforms == "all"


def test_shipped_recipes_are_valid(demo_root):
    for name in ("sesemi.toml", "supervised.toml", "simclr.toml", "sesemi-arrow.toml", "fixmatch.toml",
                 "sesemi-fixmatch.toml", "mean-teacher.toml"):
        path = Path(__file__).parents[1] / "recipes" / name
        recipe = load_recipe(path, [f"data.root={demo_root}"])
        assert recipe.model.encoder == "resnet18"
        assert recipe.data.format == "demo"


@pytest.mark.parametrize("override, message", [
    ("data.image_siz=64", 'data.image_siz: unknown key (did you mean "image_size"?)'),
    ("modle.encoder=x", 'modle: unknown key (did you mean "model"?)'),
    ("data.image_size=big", "data.image_size: expected an integer, got 'big'"),
    ("data.image_size=8", "data.image_size: expected 16 <= x <= 1024, got 8"),
    ("model.head_dropout=1.0", "model.head_dropout: expected 0 <= x < 1, got 1.0"),
    ("model.trainable_stages=-1", "model.trainable_stages: expected x >= 0, got -1"),
    ("model.trainable_stages=some", 'model.trainable_stages: expected an integer or one of "all", got \'some\''),
    ("optim.mode=both", 'optim.mode: expected one of "separate", "joint", got \'both\''),
    ("train.epochs=2.5", "train.epochs: expected an integer, got 2.5"),
    ("model.channels_last=1", "model.channels_last: expected true or false, got 1"),
    ("eval.top_k=[1, 0]", "eval.top_k: expected positive integers"),
    ("data.root=/no/such/folder", "data.root: /no/such/folder does not exist"),
    ("model.pretrained=/no/weights.pth", "model.pretrained: /no/weights.pth does not exist"),
    ("model.encoder=resnet5", "model.encoder: 'resnet5' is not a timm model (did you mean"),
    ("pretext.transform=all", 'pretext.0.transform: unknown key (did you mean "transforms"?)'),
    ("pretext.transforms=three", "pretext.0.transforms: expected one of \"one\", \"all\", got 'three'"),
    ("pretext.name=sesemy", "unknown pretext task 'sesemy' (did you mean \"sesemi\"?)"),
    ("run.device=tpu", 'run.device: expected "auto", "cpu", "cuda" or "cuda:N", got \'tpu\''),
    ("pretrain.epochs=0", "pretrain.epochs: expected x >= 1, got 0"),  # inside an optional section
    ("pretrain.epoch=3", 'pretrain.epoch: unknown key (did you mean "epochs"?)'),
])
def test_bad_values_name_the_key(tiny_recipe, override, message):
    path = tiny_recipe()
    with pytest.raises(SemisupError) as info:
        load_recipe(path, [override])
    assert message in str(info.value)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_required_key(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('[[tasks]]\nname = "genres"\n')
    with pytest.raises(SemisupError, match=r"data: missing required \[data\] section"):
        load_recipe(path)
    path.write_text('[data]\nroot = "."\n')
    with pytest.raises(SemisupError, match=r"tasks: at least one \[\[tasks\]\] entry is required"):
        load_recipe(path)


def test_malformed_toml_and_missing_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[data\nroot = 1\n")
    with pytest.raises(SemisupError, match="bad.toml: malformed TOML"):
        load_recipe(path)
    with pytest.raises(SemisupError, match="recipe not found"):
        load_recipe(tmp_path / "nope.toml")


def test_overrides_parse_toml_values_and_plain_strings():
    raw = {"data": {"root": "a"}, "tasks": [{"name": "g"}], "pretext": [{"name": "sesemi"}, {"name": "x"}]}
    out = apply_overrides(raw, ["data.root=/x/y", "data.image_size=64", "tasks.column=genre",
                                "pretext.1.weight=0.5", "optim.lr=3e-4", 'run.name="quoted"'])
    assert out["data"] == {"root": "/x/y", "image_size": 64}
    assert out["tasks"][0]["column"] == "genre"
    assert out["pretext"][1]["weight"] == 0.5
    assert out["optim"]["lr"] == 3e-4 and out["run"]["name"] == "quoted"
    assert raw["data"] == {"root": "a"}  # the input is not modified
    with pytest.raises(SemisupError, match="name one by index"):
        apply_overrides(raw, ["pretext.weight=1"])
    with pytest.raises(SemisupError, match="expected section.key=value"):
        apply_overrides(raw, ["data.root"])
    with pytest.raises(SemisupError, match="expected an index below 2"):
        apply_overrides(raw, ["pretext.5.weight=1"])


def test_resolved_recipe_round_trips(tiny_recipe, tmp_path):
    recipe = load_recipe(tiny_recipe(), ["pretext.transforms=all", "optim.mode=joint", "tasks.labels=['A', 'B']"])
    text = recipe_to_toml(recipe)
    again = tmp_path / "again.toml"
    again.write_text(text)
    assert load_recipe(again) == recipe
    assert 'transforms = "all"' in text  # task options are flattened into the [[pretext]] table
