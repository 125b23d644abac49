"""Atomic checkpoints: model weights as safetensors, optimizer state loaded with weights_only=True.

Each file is written to a temporary name and renamed into place, so a kill at any
moment leaves either the previous complete checkpoint or the new one. A manifest
of sha256 hashes is written last and verified on load.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from distillbench.core.errors import UserInputError
from distillbench.core.files import temporary_name

MANIFEST = "checkpoint.json"


def _atomic_write(path: Path, write) -> None:
    tmp = temporary_name(path)
    write(tmp)
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _save_weights(model: torch.nn.Module, path: Path) -> None:
    # Tied weights share storage; safetensors wants each tensor once, so every tensor is cloned.
    weights = {k: v.detach().contiguous().cpu().clone() for k, v in model.state_dict().items()}
    _atomic_write(path, lambda p: save_file(weights, str(p)))


def save_checkpoint(directory: Path, model: torch.nn.Module, optimizer, scheduler, state: dict[str, Any],
                    extra_models: dict[str, torch.nn.Module] | None = None) -> None:
    """Save the student, optimizer, scheduler, RNG and `state`; `extra_models` are other models the
    run changes while training (a reference updated by the method), saved beside the student."""
    directory.mkdir(parents=True, exist_ok=True)
    extra_models = extra_models or {}
    _save_weights(model, directory / "model.safetensors")
    for name, extra in extra_models.items():
        _save_weights(extra, directory / f"{name}.safetensors")
    training = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "rng": torch.get_rng_state()}
    if torch.cuda.is_available():  # sampling and dropout on the GPU draw from its own generators
        training["cuda_rng"] = torch.cuda.get_rng_state_all()
    _atomic_write(directory / "training_state.pt", lambda p: torch.save(training, p))
    files = ["model.safetensors", "training_state.pt"] + [f"{name}.safetensors" for name in extra_models]
    manifest = {"state": state, "sha256": {name: _sha256(directory / name) for name in files}}
    _atomic_write(directory / MANIFEST, lambda p: p.write_text(json.dumps(manifest, indent=1)))


def load_checkpoint(directory: Path, model: torch.nn.Module, optimizer, scheduler,
                    extra_models: dict[str, torch.nn.Module] | None = None) -> dict[str, Any] | None:
    """Restore a checkpoint into model/optimizer/scheduler (and `extra_models`); None when there is none."""
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        return None
    manifest = json.loads(manifest_path.read_text())
    for name, expected in manifest["sha256"].items():
        if not (directory / name).is_file() or _sha256(directory / name) != expected:
            raise UserInputError(f"{directory / name}: checkpoint hash mismatch (corrupt or truncated); "
                                 f"delete {directory} to restart this cell")
    model.load_state_dict(load_file(str(directory / "model.safetensors")))
    for name, extra in (extra_models or {}).items():
        extra.load_state_dict(load_file(str(directory / f"{name}.safetensors")))
    training = torch.load(directory / "training_state.pt", weights_only=True)
    optimizer.load_state_dict(training["optimizer"])
    scheduler.load_state_dict(training["scheduler"])
    torch.set_rng_state(training["rng"])
    if "cuda_rng" in training and torch.cuda.is_available() and len(training["cuda_rng"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(training["cuda_rng"])
    return manifest["state"]
