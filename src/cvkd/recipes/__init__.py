"""Built-in YAML recipes shipped with the package (the synthetic benchmark's teachers and students)."""

from pathlib import Path

RECIPES = Path(__file__).resolve().parent


def recipe_path(name: str) -> Path:
    """Path of a built-in recipe, e.g. `synthetic/teachers.yaml`."""
    return RECIPES / name
