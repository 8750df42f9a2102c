"""Recipes: the TOML schema and its loader. Only this package reads TOML."""

from semisup.config.load import (SAFE_TO_CHANGE_ON_RESUME, apply_overrides, load_recipe, parse_recipe, reads_order,
                                 recipe_changes, recipe_to_dict, recipe_to_toml, stored_recipe_dict)
from semisup.config.schema import (
    AugmentConfig,
    ConsistencyConfig,
    DataConfig,
    EmaConfig,
    EvalConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    PretextConfig,
    PretrainConfig,
    Recipe,
    RunConfig,
    SyntheticMovesConfig,
    TaskConfig,
    TrainConfig,
)

__all__ = [
    "AugmentConfig", "ConsistencyConfig", "DataConfig", "EmaConfig", "EvalConfig", "LossConfig", "ModelConfig", "OptimConfig", "PretextConfig", "PretrainConfig", "Recipe",
    "RunConfig", "SyntheticMovesConfig", "TaskConfig", "TrainConfig", "apply_overrides", "load_recipe", "parse_recipe",
    "recipe_to_dict", "recipe_to_toml", "SAFE_TO_CHANGE_ON_RESUME", "recipe_changes",
    "stored_recipe_dict", "reads_order",
]
