"""Every module imports first, on its own (catches import cycles that the order of tests hides)."""

import importlib
import pkgutil
import sys

import distillbench


def test_each_module_imports_first():
    modules = [m.name for m in pkgutil.walk_packages(distillbench.__path__, "distillbench.")]
    saved = {name: module for name, module in sys.modules.items() if name.startswith("distillbench")}
    failed = []
    try:
        for name in modules:
            for loaded in [n for n in sys.modules if n.startswith("distillbench")]:
                del sys.modules[loaded]  # heavy libraries (torch, transformers) stay loaded
            try:
                importlib.import_module(name)
            except ImportError as exc:
                failed.append(f"{name}: {exc}")
    finally:
        for loaded in [n for n in sys.modules if n.startswith("distillbench")]:
            del sys.modules[loaded]
        sys.modules.update(saved)
    assert not failed, "\n".join(failed)
