"""What is needed to rerun a row: package versions, git commit, machine, device, seed, hashes."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

# sympy, antlr4 and latex2sympy2_extended decide math-verify's and minerva's verdicts (antlr 4.11 vs 4.13)
PACKAGES = ("distillbench", "torch", "transformers", "accelerate", "safetensors", "tokenizers", "math-verify", "numpy",
            "sympy", "antlr4-python3-runtime", "latex2sympy2_extended")


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the distillbench checkout, with '+dirty' when it has uncommitted changes."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def machine() -> dict[str, object]:
    import os

    import torch

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def run_provenance(recipe_hash: str) -> dict[str, object]:
    return {"recipe_hash": recipe_hash, "git_commit": git_commit(), "packages": package_versions(),
            "machine": machine()}
