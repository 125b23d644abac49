"""Publishing and checking pocket model builds (VLM zoo, text-to-image teacher, pocket CLIP).

A build is written into a private staging folder next to its destination, gets a manifest with
the sha256 of every file, and replaces the destination in one rename, so an interrupted build
never leaves a half-written model where a loader would find it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


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
