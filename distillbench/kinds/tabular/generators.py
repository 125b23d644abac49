"""A fitted tabular generator as a cell saves it: ``generator.json`` (the method's registry name and options,
enough to rebuild the generator's shape) and ``model.safetensors`` (its weights, with the training rows it
draws codes from). Weights are read from safetensors only, never from a pickle."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from distillbench.core.errors import UserInputError
from distillbench.core.registry import METHODS

FORMAT = "distillbench-tabular-generator"
CONFIG, WEIGHTS = "generator.json", "model.safetensors"


@dataclass
class FittedGenerator:
    """A generator and the method (with its options) that fitted it: what a cell saves, and what the
    benchmarks sample from (``sample(count, seed)``)."""

    method: Any
    generator: torch.nn.Module

    def sample(self, count: int, seed: int = 0):
        return self.generator.sample(count, seed)


def method_name(method: Any) -> str:
    """The registry name of a method instance."""
    return next(entry.name for entry in METHODS.entries() if entry.obj is type(method))


def save_generator(fitted: FittedGenerator, directory: Path) -> None:
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    weights = {name: tensor.contiguous() for name, tensor in fitted.generator.state_dict().items()}
    save_file(weights, str(directory / WEIGHTS))
    config = {"format": FORMAT, "method": method_name(fitted.method), "params": dataclasses.asdict(fitted.method)}
    (directory / CONFIG).write_text(json.dumps(config, indent=1) + "\n")


def load_generator(directory: Path) -> FittedGenerator:
    """The generator saved in `directory`: rebuilt by its method from the saved options, weights from safetensors."""
    from safetensors.torch import load_file

    config_path = Path(directory) / CONFIG
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    if config.get("format") != FORMAT:
        raise UserInputError(f"{directory}: not a distillbench tabular generator")
    method = METHODS.get(config["method"])(**config["params"])
    weights = load_file(str(Path(directory) / WEIGHTS))
    generator = method.empty_generator(weights["rows"])
    generator.load_state_dict(weights)
    return FittedGenerator(method, generator.eval())
