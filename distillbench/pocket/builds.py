"""Publishing, checking and building pocket models from the command line (VLM zoo, text-to-image
teacher, pocket CLIP, feature network, shapes classifiers).

A build is written into a private staging folder next to its destination, gets a manifest with
the sha256 of every file, and replaces the destination in one rename, so an interrupted build
never leaves a half-written model where a loader would find it. `command_line` is every build
module's ``python -m`` command.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch


def file_hashes(directory: Path, manifest: str) -> dict[str, str]:
    """sha256 of every file under `directory` (by relative path), the manifest itself left out."""
    return {f.relative_to(directory).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(Path(directory).rglob("*")) if f.is_file() and f.name != manifest}


def publish(directory: Path, write: Callable[[Path], None], manifest: str | None = None,
            fields: dict[str, Any] | None = None) -> Path:
    """`write(staging)` fills a staging folder; with `manifest`, `fields` plus the files' sha256 are
    written to that file; then the staging folder atomically becomes `directory`."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    write(staging)
    if manifest is not None:
        content = {**(fields or {}), "sha256": file_hashes(staging, manifest)}
        (staging / manifest).write_text(json.dumps(content, indent=1) + "\n")
    for path in staging.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    staging.chmod(0o755)  # mkdtemp makes it private
    shutil.rmtree(directory, ignore_errors=True)
    os.replace(staging, directory)
    return directory


def spec_hash(spec: Any) -> str:
    """A build spec dataclass's content hash (12 hex digits), the suffix of its cache folder."""
    return hashlib.sha256(json.dumps(dataclasses.asdict(spec), sort_keys=True).encode()).hexdigest()[:12]


def cached(directory: Path, manifest: str, build: Callable[[Path], Any]) -> Path:
    """`directory`, built first by `build(directory)` when it is missing or fails verification."""
    if verify(directory, manifest):
        build(directory)
    return directory


def verify(directory: Path, manifest: str) -> list[str]:
    """Problems with a build (no manifest, a file whose sha256 differs, a file the manifest does not
    list); empty when sound."""
    directory = Path(directory)
    if not (directory / manifest).is_file():
        return [f"{directory}: no {manifest}"]
    recorded = json.loads((directory / manifest).read_text())["sha256"]
    found = file_hashes(directory, manifest)
    return [f"{directory / name}: sha256 mismatch" for name, digest in recorded.items()
            if found.get(name) != digest] + [f"{directory / name}: not in the manifest" for name in found
                                            if name not in recorded]


def command_line(argv: Sequence[str] | None, *, module: str, description: str,
                 build: Callable[[str | None, Path], dict], cache_directory: Callable[[str | None], Path],
                 names: Sequence[str] = (), packaged: Path | None = None, output: bool = True) -> int:
    """``python -m <module>``: train each of `names` (all by default) with `build(name, target)`, which
    returns its report, into `cache_directory(name)`, the ``--output`` folder or, where the module ships
    copies (`packaged`), with ``--export`` into them. A module of one model has no names (name None)."""
    parser = _parser(module, description, names, packaged, output)
    args = parser.parse_args(argv)
    unknown = [name for name in getattr(args, "names", ()) if name not in names]
    if unknown:
        parser.error(f"not built here: {', '.join(unknown)} (known: {', '.join(names)})")
    torch.set_num_threads(1)  # deterministic, and measured: two threads on two shared cores train slower
    for name in getattr(args, "names", None) or names or [None]:
        target = _target(args, name, packaged, cache_directory)
        report = build(name, target)
        print(json.dumps({**({"name": name} if name else {}), "directory": str(target), **report}, indent=1))
    return 0


def _parser(module: str, description: str, names: Sequence[str], packaged: Path | None,
            output: bool) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=description)
    copies, each = ("copies", "/<name>") if names else ("copy", "")
    if names:
        parser.add_argument("names", nargs="*", help=f"default: all of {', '.join(names)}")
    if packaged is not None:
        parser.add_argument("--export", action="store_true", help=f"write the shipped {copies} ({packaged}{each})")
    if output:
        parser.add_argument("--output", type=Path, help=f"write <output>{each} instead")
    return parser


def _target(args: argparse.Namespace, name: str | None, packaged: Path | None,
            cache_directory: Callable[[str | None], Path]) -> Path:
    folder = packaged if getattr(args, "export", False) else getattr(args, "output", None)
    if folder is None:
        return cache_directory(name)
    return folder / name if name else folder
