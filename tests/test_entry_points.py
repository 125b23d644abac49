"""Third-party packages register methods through entry points (group ``distillbench.methods``)."""

import importlib
import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from distillbench.cli.main import main
from distillbench.core.errors import UserInputError
from distillbench.core.registry import METHODS, REGISTRIES
from distillbench.plugins import BUILTINS

PYPROJECT = """
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "my-plugin"
version = "0.1"

[project.entry-points."distillbench.methods"]
my-sft = "my_plugin:MySFT"

[tool.setuptools]
py-modules = ["my_plugin"]
"""

# Not decorated: the entry point registers it, with the family its class attribute names.
MY_PLUGIN = '''
"""SFT under another name, from outside distillbench."""
from dataclasses import dataclass

from distillbench.methods.llm.sft import SFT


@dataclass
class MySFT(SFT):
    """SFT from an installed plug-in."""

    family = "llm"
'''


def _reread() -> None:
    importlib.invalidate_caches()  # importlib.metadata caches each sys.path folder's listing
    for registry in REGISTRIES.values():
        registry.refresh()


@pytest.fixture
def site(tmp_path):
    """A folder of installed packages, first on sys.path; after the test it, its modules and its names are gone."""
    folder = tmp_path / "site"
    folder.mkdir()
    sys.path.insert(0, str(folder))
    _reread()
    yield folder
    sys.path.remove(str(folder))
    loaded = [name for name, module in sys.modules.items() if str(folder) in str(getattr(module, "__file__", ""))]
    for dist in importlib.metadata.distributions(path=[str(folder)]):
        for point in dist.entry_points:
            group = point.group.removeprefix("distillbench.")
            if point.name not in BUILTINS.get(group, {}):  # a clashing entry point never replaced the built-in
                REGISTRIES[group].unregister(point.name)
    for name in loaded:
        del sys.modules[name]
    _reread()


def pip_install(source: Path, target: Path) -> None:
    """Install the package in `source` into `target`, offline: setuptools comes from this environment."""
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-build-isolation", "--no-deps",
                    "--no-index", "--no-cache-dir", "--target", str(target), str(source)],
                   check=True, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})


def write_installed(site: Path, name: str, entry_points: str, modules: dict[str, str]) -> None:
    """An installed distribution written by hand (what pip writes, less the record): quick for tests of errors."""
    info = site / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    for module, source in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))


def test_a_method_installed_by_entry_point_runs_in_a_recipe(site, tmp_path, tiny_recipe):
    source = tmp_path / "my-plugin"
    source.mkdir()
    (source / "pyproject.toml").write_text(PYPROJECT)
    (source / "my_plugin.py").write_text(MY_PLUGIN)
    pip_install(source, site)
    _reread()
    assert "my-sft" in METHODS and "my_plugin" not in sys.modules  # known by its entry point, not imported yet
    recipe = tiny_recipe("[my-sft]")
    assert main(["run", str(recipe)]) == 0
    entry = METHODS.entry("my-sft")
    assert entry.obj.__module__ == "my_plugin" and (entry.family, entry.summary) == ("llm", "SFT from an installed plug-in.")
    rows = {row["row"]: row for row in json.loads((tmp_path / "out" / "leaderboard.json").read_text())["rows"]}
    assert rows["my-sft"]["method"] == "my-sft" and rows["my-sft"]["status"] == "complete"
    assert rows["my-sft"]["metrics"]["pocket-math/accuracy"]["n"] == 12


def test_an_undecorated_object_without_a_family_is_third_party(site):
    write_installed(site, "plain", """
        [distillbench.methods]
        plain-sft = plain_plugin:PlainSFT
        """, {"plain_plugin": """
        from distillbench.methods.llm.sft import SFT

        class PlainSFT(SFT):
            pass
        """})
    assert METHODS.entry("plain-sft").family == "third-party"


def test_an_entry_point_may_name_an_object_its_module_registers(site):
    write_installed(site, "decorated", """
        [distillbench.methods]
        decorated-sft = decorated_plugin:DecoratedSFT
        """, {"decorated_plugin": """
        from distillbench.methods.base import register_method
        from distillbench.methods.llm.sft import SFT

        @register_method("decorated-sft", family="test", paper="P")
        class DecoratedSFT(SFT):
            pass
        """})
    entry = METHODS.entry("decorated-sft")
    assert entry.obj.__name__ == "DecoratedSFT" and (entry.family, entry.paper) == ("test", "P")


def test_an_entry_point_whose_module_registers_another_name_is_an_error(site):
    write_installed(site, "misnamed", """
        [distillbench.methods]
        misnamed-sft = misnamed_plugin:MisnamedSFT
        """, {"misnamed_plugin": """
        from distillbench.methods.base import register_method
        from distillbench.methods.llm.sft import SFT

        @register_method("other-name", family="test")
        class MisnamedSFT(SFT):
            pass
        """})
    try:
        with pytest.raises(RuntimeError, match="misnamed-sft' is listed as misnamed_plugin:MisnamedSFT "
                                               r"\(distribution misnamed\), but that object is registered as 'other-name'"):
            METHODS.get("misnamed-sft")
    finally:
        METHODS.unregister("other-name")


def test_an_entry_point_named_as_a_builtin_is_an_error(site):
    write_installed(site, "clash", """
        [distillbench.methods]
        sft = clash_plugin:MySFT
        """, {"clash_plugin": ""})
    message = r"method 'sft': the entry point clash_plugin:MySFT \(distribution clash\) clashes with the built-in"
    with pytest.raises(UserInputError, match=message):
        METHODS.get("sft")
    with pytest.raises(UserInputError, match=message):
        list(METHODS.entries())
    assert METHODS.get("kd").__name__ == "KD"  # other names still work
