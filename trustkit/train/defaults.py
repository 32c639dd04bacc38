"""The default training configuration of a zoo model on a data set, for any recipe.

Kept apart from :mod:`trustkit.train.config` (the tables) because it needs every recipe registered, and the
recipes themselves are built on :class:`~trustkit.train.config.TrainConfig`.
"""
from __future__ import annotations

from dataclasses import replace

from trustkit.train import adversarial  # noqa: F401 - registers the adversarial recipes (and aliases)
from trustkit.train.config import _ADVERSARIAL, _DEFAULTS, _GAUSSIAN, _RECIPE, _RECIPE_DEFAULTS, TrainConfig
from trustkit.train.recipes import RECIPES


def _canonical_recipe(recipe: str) -> str:
    return RECIPES.canonical(recipe) if recipe in RECIPES else recipe


def default_config(arch: str, dataset: str, recipe: str = "clean") -> TrainConfig:
    """The default recipe for zoo model ``arch`` on ``dataset`` (a generic one for unlisted pairs)."""
    config = _DEFAULTS.get((arch, dataset), TrainConfig())
    if _canonical_recipe(recipe) == "gaussian":
        return replace(config, recipe="gaussian", **_GAUSSIAN.get((arch, dataset), {}))
    if recipe != "clean":
        recipe = _canonical_recipe(recipe)
        config = replace(config, recipe=recipe, **{**_ADVERSARIAL.get((arch, dataset), {}),
                                                   **_RECIPE_DEFAULTS.get(recipe, {})})
        config = replace(config, **_RECIPE.get((arch, dataset, recipe), {}))
    return config
