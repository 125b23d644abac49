"""The README and docs/ stay true: generated registry tables, the Quickstart, every CLI command and
recipe field, the README's length, and every relative link."""

import re
import unicodedata
from pathlib import Path

import pytest

from distillbench.cli.main import build_parser
from distillbench.cli.docs import PAGES, render_table

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_MAX_LINES = 300


@pytest.mark.parametrize("kind", sorted(PAGES))
def test_registry_tables_match_the_registry(kind):
    text = (ROOT / PAGES[kind]).read_text()
    assert render_table(kind, text) == text, (
        f"{PAGES[kind]} table drifted: run `.venv/bin/python -m distillbench.cli.docs`")


def test_the_readme_keeps_no_registry_table():
    assert "<!-- registry:" not in README.read_text()


def test_quickstart_shows_the_two_commands_first():
    quickstart = README.read_text().split("## Quickstart", 1)[1]
    commands = re.findall(r"^(make \w+)$", quickstart, re.M)
    assert commands[:2] == ["make demo", "make test"]


def _cli_commands():
    parser = build_parser()
    return parser._subparsers._group_actions[0].choices  # argparse keeps sub-commands here


@pytest.mark.parametrize("page", ["README.md", "docs/cli.md"])
def test_every_cli_command_and_option_is_documented(page):
    """The README's CLI-at-a-glance table and the full reference in docs/cli.md each name them all."""
    text = (ROOT / page).read_text()
    if page == "README.md":  # only the at-a-glance table counts
        text = text.split("## Command line at a glance", 1)[1].split("\n## ", 1)[0]
    for name, sub in _cli_commands().items():
        assert f"distillbench {name}" in text, f"{page}: {name}"
        for action in sub._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert option in text, f"{page}: {name} {option}"


def _recipe_models() -> list:
    """Every pydantic model a recipe of any registered kind is made of: the kinds' recipe models and the
    models nested in them (data sections, the budget, generation)."""
    from pydantic import BaseModel

    from distillbench.core.registry import KINDS

    found, pending = [], [entry.obj.recipe_model for entry in KINDS.entries()]
    while pending:
        model = pending.pop()
        if model in found:
            continue
        found.append(model)
        for info in model.model_fields.values():
            if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
                pending.append(info.annotation)
    return found


def test_every_recipe_field_is_in_the_recipe_format_page():
    section = (DOCS / "recipes.md").read_text()
    missing = sorted({f"{model.__name__}.{f}" for model in _recipe_models() for f in model.model_fields
                      if not re.search(rf"\b{f}:", section)})
    assert not missing, f"docs/recipes.md lacks {missing}"


def test_the_readme_is_a_front_door():
    lines = README.read_text().count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines (at most {README_MAX_LINES}): move text to docs/"


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    text = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LNM")
    return text.replace(" ", "-")


def _anchors(text: str) -> set[str]:
    anchors, seen = set(), {}
    prose = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    for heading in re.findall(r"^#{1,6} (.+)$", prose, re.M):
        slug = _slug(heading)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def _pages():
    return [README, *sorted(DOCS.glob("*.md"))]


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_to_an_existing_file(page):
    prose = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)
    prose = re.sub(r"`[^`\n]*`", "", prose)  # code spans are not links
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", prose):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, …
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(target)
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file.read_text()):
            broken.append(target)
    assert not broken, f"{page.relative_to(ROOT)}: broken links {broken}"
