"""The README stays true: generated registry tables, the Quickstart, and every CLI command."""

import re
from pathlib import Path

from distillbench.cli.main import build_parser
from distillbench.cli.docs import render_readme

README = Path(__file__).resolve().parents[1] / "README.md"


def test_registry_tables_match_the_registry():
    text = README.read_text()
    assert render_readme(text) == text, "README tables drifted: run `.venv/bin/python -m distillbench.cli.docs`"


def test_quickstart_shows_the_two_commands_first():
    quickstart = README.read_text().split("## Quickstart", 1)[1]
    commands = re.findall(r"^(make \w+)$", quickstart, re.M)
    assert commands[:2] == ["make demo", "make test"]


def test_every_cli_command_and_option_is_documented():
    text = README.read_text()
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # argparse keeps sub-commands here
    for name, sub in commands.items():
        assert f"distillbench {name}" in text, name
        for action in sub._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert option in text, f"{name} {option}"


def test_every_recipe_field_is_in_the_recipe_format_section():
    from distillbench.core.recipe import Budget, DataSpec, Recipe

    section = README.read_text().split("## Recipe format")[1].split("## Methods")[0]
    missing = [f for model in (Recipe, Budget, DataSpec) for f in model.model_fields
               if not re.search(rf"\b{f}:", section)]
    assert not missing, f"README recipe format lacks {missing}"
