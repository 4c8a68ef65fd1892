"""docs/architecture.md lists every module of the package (a new module is documented where the layout is)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "cvkd"


def test_every_module_is_listed():
    text = (ROOT / "docs" / "architecture.md").read_text()
    modules = [p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"]
    missing = [m for m in modules if not m.startswith(("commands/", "recipes/")) and f"`{m}`" not in text]
    commands = [p.stem for p in (PACKAGE / "commands").glob("*.py") if p.name != "__init__.py"]
    missing += [f"commands/{c}.py" for c in commands if f"`{c}`" not in text]
    assert not missing, f"docs/architecture.md does not list: {', '.join(sorted(missing))}"
