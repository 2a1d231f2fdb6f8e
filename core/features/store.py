"""Recipes kept in the workspace (recipes/NAME.json), written whole or not at all; or read from any JSON file."""
from __future__ import annotations

import json
from pathlib import Path

from core import atomic, auth
from core.data.catalog import NAME_RE
from core.features import recipe as R
from core.settings import Settings


def folder(settings: Settings) -> Path:
    return settings.workspace / "recipes"


def names(settings: Settings) -> list[str]:
    return sorted(p.stem for p in folder(settings).glob("*.json"))


def save(settings: Settings, recipe: R.Recipe, name: str) -> Path:
    """Keep `recipe` as NAME (a plain name: letters, digits, underscores); replaces a recipe of that name."""
    if not NAME_RE.match(name or ""):
        raise R.RecipeError(f"{name!r} is not a usable recipe name.",
                            "Use letters, digits and underscores, starting with a letter (e.g. fraud_features).")
    path = folder(settings) / f"{name}.json"
    doc = R.Recipe(steps=recipe.steps, name=name, fitted_on=recipe.fitted_on).to_json()
    doc["created_by"] = auth.who()  # kept beside the recipe; reading ignores it
    atomic.write_text(path, json.dumps(doc, indent=2, ensure_ascii=False))
    return path


def load(settings: Settings, text: str) -> R.Recipe:
    """A kept recipe by name, or a recipe JSON file by path."""
    kept = folder(settings) / f"{text}.json"
    path = kept if NAME_RE.match(text or "") and kept.exists() else Path(text).expanduser()
    if not path.is_file():
        listed = ", ".join(names(settings)) or "none yet"
        raise R.RecipeError(f"No recipe named or at {text!r}.", f"Kept recipes: {listed}. Or give a .json path.")
    try:
        return R.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise R.RecipeError(f"{path} is not a text file.", "Give a recipe JSON file.") from None


def remove(settings: Settings, name: str) -> None:
    (folder(settings) / f"{name}.json").unlink(missing_ok=True)
