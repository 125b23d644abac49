"""The pocket model zoo: real `transformers` checkpoints (Llama architecture, safetensors,
character tokenizer with a chat template), built deterministically into the user cache.

Each model is described by a `ZooSpec`; its build directory is named after the
spec's hash, so changing a spec never reuses a stale model. Every build writes a
manifest of sha256 hashes that `verify` checks. Small trained weights are also
shipped inside the package (``distillbench/pocket/zoo/``), built by exactly
``distillbench zoo build --force --export``; a missing cache entry whose spec hash
matches a shipped copy is installed from it instead of being retrained.

``DISTILLBENCH_ZOO_SCALE=tiny`` selects tiny specs that build in seconds (tests).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from distillbench.harness.errors import UserInputError

PACKAGED = Path(__file__).parent / "zoo"
MANIFEST = "zoo.json"


@dataclass(frozen=True)
class ZooSpec:
    name: str
    description: str
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    # Training on pocket-math train: examples, steps, batch size, peak learning rate, seed.
    train_size: int
    steps: int
    batch_size: int
    learning_rate: float
    seed: int = 0
    levels: tuple[int, ...] = (1, 2, 3, 4, 5)
    max_length: int = 160

    def spec_hash(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


_FULL = {
    "teacher-sft": ZooSpec("teacher-sft", "SFT teacher: Llama, 3 layers, hidden 96", 96, 3, 4, 384,
                           train_size=20000, steps=1500, batch_size=32, learning_rate=3e-3),
    "student-init": ZooSpec("student-init", "student init: Llama, 2 layers, hidden 48, trained on levels 1-2 only",
                            48, 2, 4, 192, train_size=4000, steps=300, batch_size=32, learning_rate=3e-3,
                            levels=(1, 2)),
}
_TINY = {
    "teacher-sft": ZooSpec("teacher-sft", "tiny test teacher", 32, 1, 2, 64, train_size=64, steps=4, batch_size=8,
                           learning_rate=3e-3),
    "student-init": ZooSpec("student-init", "tiny test student", 16, 1, 2, 32, train_size=64, steps=2, batch_size=8,
                            learning_rate=3e-3),
}
ZOO = tuple(_FULL)


def specs() -> dict[str, ZooSpec]:
    return _TINY if os.environ.get("DISTILLBENCH_ZOO_SCALE") == "tiny" else _FULL


def cache_root() -> Path:
    root = os.environ.get("DISTILLBENCH_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "distillbench"
    return Path(root) / "zoo"


def model_dir(name: str) -> Path:
    spec = specs()[name]
    return cache_root() / f"{name}-{spec.spec_hash()}"


def _file_hashes(directory: Path) -> dict[str, str]:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(directory.iterdir())
            if f.is_file() and f.name != MANIFEST}


def verify(name: str) -> list[str]:
    """Problems with the cached build of `name` (empty when it is complete and intact)."""
    directory = model_dir(name)
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        return [f"{name}: not built ({directory})"]
    manifest = json.loads(manifest_path.read_text())
    actual = _file_hashes(directory)
    return [f"{name}: {file} hash mismatch" for file, digest in manifest["sha256"].items() if actual.get(file) != digest]


def ensure_built(name: str) -> Path:
    """The directory of a verified build of `name`, building or installing it when missing."""
    if name not in specs():
        raise UserInputError(f"unknown pocket model {name!r}; known: {', '.join(specs())}")
    directory = model_dir(name)
    if (directory / MANIFEST).is_file():
        problems = verify(name)
        if problems:
            raise UserInputError(problems[0] + f"; run 'distillbench zoo build --force {name}'")
        return directory
    if not _install_packaged(name):
        build(name)
    return directory


def _install_packaged(name: str) -> bool:
    source = PACKAGED / name
    if not (source / MANIFEST).is_file():
        return False
    if json.loads((source / MANIFEST).read_text())["spec_hash"] != specs()[name].spec_hash():
        return False
    _publish(source, model_dir(name))
    return not verify(name)


def _publish(source: Path, target: Path) -> None:
    """Copy a finished build into place atomically (a kill leaves no half-built model)."""
    staging = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)


def build(name: str) -> Path:
    """Train `name` from its spec and save it with save_pretrained, plus a manifest."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from distillbench.harness.data import tokenize_records
    from distillbench.harness.recipe import Budget
    from distillbench.harness.train import train
    from distillbench.methods.llm.sft import SFT
    from distillbench.pocket.math_world import generate
    from distillbench.pocket.tokenizer import build_char_tokenizer

    spec = specs()[name]
    target = model_dir(name)
    work = target.with_name(target.name + ".build")
    shutil.rmtree(work, ignore_errors=True)
    torch.manual_seed(spec.seed)
    tokenizer = build_char_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=spec.hidden_size, intermediate_size=spec.intermediate_size,
                         num_hidden_layers=spec.num_layers, num_attention_heads=spec.num_heads,
                         num_key_value_heads=spec.num_heads, max_position_embeddings=256, tie_word_embeddings=True,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    model = LlamaForCausalLM(config)
    records = generate("train", spec.train_size, seed=spec.seed, levels=spec.levels)
    examples = tokenize_records(tokenizer, records, spec.max_length)
    budget = Budget(steps=spec.steps, batch_size=spec.batch_size, learning_rate=spec.learning_rate,
                    max_length=spec.max_length, warmup_steps=min(100, spec.steps // 10),
                    checkpoint_every=max(1, spec.steps // 5))
    started = time.perf_counter()
    train(SFT(), model, tokenizer, examples, budget, spec.seed, work / "checkpoint", description=f"zoo {name}")
    output = work / "model"
    model.save_pretrained(output, safe_serialization=True)
    tokenizer.save_pretrained(output)
    manifest = {"name": name, "spec": asdict(spec), "spec_hash": spec.spec_hash(), "sha256": _file_hashes(output),
                "build_seconds": round(time.perf_counter() - started, 1), "torch": torch.__version__}
    (output / MANIFEST).write_text(json.dumps(manifest, indent=1))
    _publish(output, target)
    shutil.rmtree(work, ignore_errors=True)
    return target


def export(name: str) -> Path:
    """Copy the cached build of `name` into the package, so fresh clones need not retrain it."""
    _publish(model_dir(name), PACKAGED / name)
    return PACKAGED / name
