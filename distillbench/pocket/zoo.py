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

import functools
import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from distillbench.core.errors import UserInputError
from distillbench.core.files import replace_directory, temporary_name, user_cache_dir
from distillbench.core.jsonl import read_jsonl
from distillbench.core.recipe import Budget
from distillbench.core.registry import POCKET_MODELS
from distillbench.core.train import train
from distillbench.kinds.text_lm.batching import TokenBatching
from distillbench.kinds.text_lm.data import tokenize_preferences, tokenize_records
from distillbench.methods.llm.dpo import DPO
from distillbench.methods.llm.sft import SFT
from distillbench.pocket.math_world import add_noise, generate
from distillbench.pocket.mtbench_world import training_conversations
from distillbench.pocket.preferences import (build_preference_sets, follow_up_tasks, math_tasks, sample_graded,
                                             write_sets)
from distillbench.pocket.tokenizer import build_char_tokenizer

PACKAGED = Path(__file__).parent / "zoo"
MANIFEST = "zoo.json"
# Part of every spec hash. Bump it when the pocket generators, the preference sampling or
# the training loop change what a spec builds, so no cache or shipped copy is reused stale.
WORLD_VERSION = 2
# Part of the hash of specs trained on preference pairs: how a pair becomes tokens. 2: a
# multi-turn prompt keeps its earlier turns (version 1 kept only the last user turn).
PREFERENCE_FORMAT = 2


@dataclass(frozen=True)
class Architecture:
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int


@dataclass(frozen=True)
class ZooSpec:
    """How one zoo entry is made. Kinds:
    * ``model`` trained with `method` ("sft" from scratch on pocket-math train, or "dpo"
      from `init_from` on the pairs of `preference_data`, with `init_from` as reference);
    * ``preferences`` sampled from `init_from` on `train_size` pocket-math train prompts and
      the follow-up turns of `conversations` training chats, and graded.
    """

    name: str
    description: str
    kind: str = "model"
    architecture: Architecture | None = None
    init_from: str | None = None
    method: str = "sft"
    method_params: tuple[tuple[str, float], ...] = ()
    preference_data: str | None = None
    preference_subset: str | None = None  # only the pairs whose id starts with this
    train_size: int = 0
    levels: tuple[int, ...] = (1, 2, 3, 4, 5)
    noise_fraction: float = 0.0
    conversations: int = 0  # two-turn pocket-mtbench-style chats mixed into SFT data (or preference prompts)
    chatty_fraction: float = 0.0  # share of the chats' second answers in the chatty style
    steps: int = 0
    batch_size: int = 32
    gradient_accumulation: int = 1  # length-sorted micro-batches: less padding, the same gradient
    learning_rate: float = 3e-3
    samples: int = 4
    temperature: float = 1.0
    seed: int = 0
    max_length: int = 160

    def parents(self) -> tuple[str, ...]:
        return tuple(p for p in (self.init_from, self.preference_data) if p)

    def spec_hash(self) -> str:
        """Hash of this spec and, recursively, of what it is built from."""
        parents = {p: specs()[p].spec_hash() for p in self.parents()}
        versions = {"world": WORLD_VERSION, **({"preference_format": PREFERENCE_FORMAT} if self.preference_data else {})}
        text = json.dumps({"spec": asdict(self), "parents": parents, **versions}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


_TEACHER = Architecture(64, 3, 4, 256)
_STUDENT = Architecture(48, 2, 4, 192)
_FULL = {
    # A small base model that has seen clean pocket-math but not the chats: 600 steps leave it at
    # 5% with room to grow (on levels 1-2 only it sat at 5% and SFT could not lift it).
    "student-init": ZooSpec("student-init", "student init: Llama, 2 layers, hidden 48, 600 steps of clean pocket-math",
                            architecture=_STUDENT, train_size=4000, steps=600),
    "teacher-sft": ZooSpec("teacher-sft", "SFT teacher: Llama, 3 layers, hidden 64, noisy SFT data",
                           architecture=_TEACHER, train_size=20000, conversations=3000, noise_fraction=0.25,
                           chatty_fraction=0.6, steps=2200, gradient_accumulation=2, max_length=256),
    "math-preference": ZooSpec("math-preference", "preference data: graded samples of teacher-sft",
                               kind="preferences", init_from="teacher-sft", train_size=1000, conversations=800,
                               samples=4, temperature=1.0),
    # Aligned on chat preferences (the follow-up turns), as alignment data is chat data: DPO on
    # the math pairs cost the teacher 13 points of accuracy (a tiny model's alignment tax), and
    # longer or faster DPO on the chat pairs cost it up to 8.
    "teacher-aligned": ZooSpec("teacher-aligned", "DPO-aligned teacher (reference: teacher-sft)",
                               init_from="teacher-sft", method="dpo", method_params=(("beta", 0.1),),
                               preference_data="math-preference", preference_subset="pocket-mtbench-train/",
                               steps=100, batch_size=16, learning_rate=3e-5),
}
_TINY_TEACHER = Architecture(32, 1, 2, 64)
_TINY = {
    "student-init": ZooSpec("student-init", "tiny test student", architecture=Architecture(16, 1, 2, 32),
                            train_size=64, steps=2, batch_size=8),
    "teacher-sft": ZooSpec("teacher-sft", "tiny test teacher", architecture=_TINY_TEACHER, train_size=64,
                           conversations=16, noise_fraction=0.25, chatty_fraction=0.6, steps=4, batch_size=8),
    "math-preference": ZooSpec("math-preference", "tiny preference data", kind="preferences",
                               init_from="teacher-sft", train_size=8, conversations=4, samples=3, temperature=1.0),
    "teacher-aligned": ZooSpec("teacher-aligned", "tiny aligned teacher", init_from="teacher-sft", method="dpo",
                               method_params=(("beta", 0.1),), preference_data="math-preference",
                               preference_subset="pocket-mtbench-train/", steps=2,
                               batch_size=4, learning_rate=1e-3),
}
# Models a recipe can name as pocket:<name>; the rest of the zoo are data sets.
ZOO = tuple(name for name, spec in _FULL.items() if spec.kind == "model")


def specs() -> dict[str, ZooSpec]:
    return _TINY if os.environ.get("DISTILLBENCH_ZOO_SCALE") == "tiny" else _FULL


def cache_root() -> Path:
    return user_cache_dir() / "zoo"


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
    return list(_verify_files(directory, _directory_state(directory)))


def _directory_state(directory: Path) -> tuple:
    """Names, sizes and modification times: what changes when a file is touched."""
    return tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(directory.iterdir()) if f.is_file())


@functools.lru_cache(maxsize=64)
def _verify_files(directory: Path, state: tuple) -> tuple[str, ...]:
    # Every model load resolves through ensure_built; hash each unchanged build only once per process.
    manifest = json.loads((directory / MANIFEST).read_text())
    actual = _file_hashes(directory)
    return tuple(f"{manifest['name']}: {file} hash mismatch" for file, digest in manifest["sha256"].items()
                 if actual.get(file) != digest)


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


for _name in ZOO:  # `pocket:<name>` references resolve here
    POCKET_MODELS.register(_name, family="llm", summary=_FULL[_name].description)(ensure_built)


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
    staging = temporary_name(target)
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging)
    replace_directory(staging, target)


def build(name: str) -> Path:
    """Build `name` from its spec (its parents first, when missing) and publish it with a manifest."""
    import torch

    spec = specs()[name]
    for parent in spec.parents():
        ensure_built(parent)
    target = model_dir(name)
    work = target.with_name(target.name + ".build")
    shutil.rmtree(work, ignore_errors=True)
    started = time.perf_counter()
    output = work / "output"
    if spec.kind == "preferences":
        _build_preferences(spec, output)
    else:
        _build_model(spec, work, output)
    manifest = {"name": name, "spec": asdict(spec), "spec_hash": spec.spec_hash(), "sha256": _file_hashes(output),
                "build_seconds": round(time.perf_counter() - started, 1), "torch": torch.__version__}
    (output / MANIFEST).write_text(json.dumps(manifest, indent=1))
    _publish(output, target)
    shutil.rmtree(work, ignore_errors=True)
    return target


def _build_model(spec: ZooSpec, work: Path, output: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(spec.seed)
    reference = None
    if spec.init_from:
        parent = ensure_built(spec.init_from)
        model = AutoModelForCausalLM.from_pretrained(parent, use_safetensors=True)
        reference = AutoModelForCausalLM.from_pretrained(parent, use_safetensors=True)
        tokenizer = AutoTokenizer.from_pretrained(parent)
    else:
        tokenizer = build_char_tokenizer()
        arch = spec.architecture
        config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=arch.hidden_size,
                             intermediate_size=arch.intermediate_size, num_hidden_layers=arch.num_layers,
                             num_attention_heads=arch.num_heads, num_key_value_heads=arch.num_heads,
                             max_position_embeddings=256, tie_word_embeddings=True,
                             pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                             eos_token_id=tokenizer.eos_token_id)
        model = LlamaForCausalLM(config)
    if spec.method == "dpo":
        method = DPO(**dict(spec.method_params))
        pairs = read_jsonl(ensure_built(spec.preference_data) / "pairs.jsonl", ("prompt", "chosen", "rejected"))
        pairs = [p for p in pairs if p["id"].startswith(spec.preference_subset or "")]
        if not pairs:
            raise RuntimeError(f"zoo {spec.name}: no preference pairs in {spec.preference_data} "
                               f"with ids starting {spec.preference_subset!r}")
        examples = tokenize_preferences(tokenizer, pairs, spec.max_length)
    else:
        method = SFT()
        records = add_noise(generate("train", spec.train_size, seed=spec.seed, levels=spec.levels),
                            spec.noise_fraction, seed=spec.seed)
        records += training_conversations(spec.conversations, seed=spec.seed + 1, noise_fraction=spec.noise_fraction,
                                          chatty_fraction=spec.chatty_fraction)
        examples = tokenize_records(tokenizer, records, spec.max_length)
    budget = Budget(steps=spec.steps, batch_size=spec.batch_size, gradient_accumulation=spec.gradient_accumulation,
                    learning_rate=spec.learning_rate,
                    max_length=spec.max_length, warmup_steps=min(100, spec.steps // 10),
                    checkpoint_every=max(1, spec.steps // 5))
    train(method, model, examples, budget, spec.seed, work / "checkpoint", batching=TokenBatching(tokenizer),
          frozen={"reference": reference} if reference is not None else None, description=f"zoo {spec.name}")
    model.save_pretrained(output, safe_serialization=True)
    tokenizer.save_pretrained(output)


def _build_preferences(spec: ZooSpec, output: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = ensure_built(spec.init_from)
    model = AutoModelForCausalLM.from_pretrained(source, use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(source)
    tasks = math_tasks(generate("train", spec.train_size, seed=spec.seed + 1, levels=spec.levels))
    tasks += follow_up_tasks(spec.conversations, seed=spec.seed + 3)
    graded = sample_graded(model, tokenizer, tasks, spec.samples, spec.temperature, spec.seed)
    write_sets(build_preference_sets(tasks, graded), output)


def export(name: str) -> Path:
    """Copy the cached build of `name` into the package, so fresh clones need not retrain it."""
    _publish(model_dir(name), PACKAGED / name)
    return PACKAGED / name
