"""Training recipes as data: named JSON files of :class:`TrainConfig` settings.

A recipe file (``model/recipes/<name>.json``, or any path) holds::

    {"about": "what it is", "settings": {"lr": 0.003, ...}, "not_matched": ["..."]}

``settings`` takes :class:`~gaitsearch.model.train_config.TrainConfig` fields except those
of the run itself (data, out, validation data, work dir, resume, progress bar);
``not_matched`` says what of a published recipe the code's options cannot express. Flags
given to ``gaitsearch train`` override a recipe's settings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gaitsearch.model.train_config import TrainConfig, field_extra, flag, idle_settings
from pydantic import BaseModel, ConfigDict, ValidationError

RECIPES_DIR = Path(__file__).parent / "recipes"


class RecipeError(ValueError):
    """A recipe that cannot be used; the message names the file."""


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    about: str
    settings: dict[str, Any]
    not_matched: list[str] = []


def shipped_recipes() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.json"))


def recipe_path(name_or_path: str | Path) -> Path:
    """A shipped recipe's file by name, else the path as given."""
    text = str(name_or_path)
    if "/" not in text and not text.endswith(".json"):
        return RECIPES_DIR / f"{text}.json"
    return Path(text)


def load_recipe(name_or_path: str | Path) -> Recipe:
    """Read and check a recipe; its settings are known, non-run TrainConfig fields."""
    path = recipe_path(name_or_path)
    if not path.is_file():
        raise RecipeError(
            f"{path}: no such recipe (shipped: {', '.join(shipped_recipes())}; or give a path)"
        )
    try:
        recipe = Recipe.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except json.JSONDecodeError as exc:
        raise RecipeError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "top level"
        raise RecipeError(f"{path}: {where}: {first['msg']}") from None
    fields = TrainConfig.model_fields
    for key in recipe.settings:
        if key not in fields:
            raise RecipeError(f"{path}: unknown setting {key!r} (see gaitsearch train --help)")
        if field_extra(key).get("run"):
            raise RecipeError(
                f"{path}: {key!r} belongs to a run, not a recipe (pass {flag(key)} instead)"
            )
    return recipe


def config_from(recipe: str | Path | None, flags: dict[str, Any]) -> TrainConfig:
    """A recipe's settings (none without one) overridden by ``flags`` (None = not given).

    Raises :class:`RecipeError` with one line: a bad recipe file, a setting that would do
    nothing next to the others (naming the recipe when it came from there), a bad value.
    """
    settings = dict(load_recipe(recipe).settings) if recipe is not None else {}
    given = {k: v for k, v in flags.items() if v is not None}
    merged = {**settings, **given}
    idle = idle_settings(merged)
    if idle:
        name = idle[0].split(" ", 1)[0][2:].replace("-", "_")
        source = "" if name in given or recipe is None else f" (set by {recipe_path(recipe)})"
        raise RecipeError(idle[0] + source)
    try:
        return TrainConfig(**merged)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = "_".join(str(p) for p in first["loc"])
        raise RecipeError(f"{flag(where)}: {first['msg']}" if where else first["msg"]) from None
