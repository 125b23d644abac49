"""Model references and backends.

A model reference is one of
  * ``pocket:<name>``  a model a pocket world provides (`POCKET_MODELS`: the pocket LM zoo, the pocket-shapes
    classifiers), built into the user cache on demand,
  * ``hf:<id>[@revision]`` a hub model (works where the hub is reachable or cached),
  * ``arch:<architecture>`` a freshly initialised network of a registered architecture (`ARCHITECTURES`),
  * a local path to a directory saved with ``save_pretrained`` (or a classifier directory).
Each kind loads its own models from a reference (language models: `distillbench.kinds.text_lm.models`);
this module resolves references, checks their weights and fingerprints them. Weights are read from
safetensors only.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distillbench.core.errors import UserInputError
from distillbench.core.inputs import absent_allowed
from distillbench.core.registry import ARCHITECTURES, MODEL_BACKENDS, POCKET_MODELS, Registry

_HF_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


@dataclass(frozen=True)
class ModelRef:
    backend: str  # "pocket" | "hf" | "arch" | "local"
    name: str
    revision: str | None = None

    def __str__(self) -> str:
        prefix = {"pocket": "pocket:", "hf": "hf:", "arch": "arch:", "local": ""}[self.backend]
        return prefix + self.name + (f"@{self.revision}" if self.revision else "")


def parse_model_ref(text: str) -> ModelRef:
    if text.startswith("pocket:"):
        return ModelRef("pocket", text.removeprefix("pocket:"))
    if text.startswith("hf:"):
        name, _, revision = text.removeprefix("hf:").partition("@")
        return ModelRef("hf", name, revision or None)
    if text.startswith("arch:"):
        return ModelRef("arch", text.removeprefix("arch:"))
    return ModelRef("local", text)


def validate_model_ref(text: str) -> None:
    """Raise ValueError (a one-line message) when `text` cannot name a model."""
    ref = parse_model_ref(text)
    if ref.backend == "pocket":
        _check_known(ref.name, POCKET_MODELS, "pocket:")
    elif ref.backend == "arch":
        _check_known(ref.name, ARCHITECTURES, "arch:")
    elif ref.backend == "hf":
        if not _HF_ID.match(ref.name):
            raise ValueError(f"not a hub model id: {ref.name!r}")
    elif not Path(ref.name).is_dir() and not absent_allowed(ref.name):
        raise ValueError(f"model directory not found: {ref.name} (use pocket:<name>, hf:<id>[@rev] or a local path)")


def _check_known(name: str, registry: Registry, prefix: str) -> None:
    """Raise ValueError when `registry` lacks `name`; only then are all its plug-ins imported, to list them."""
    if name not in registry:
        known = registry.names()
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean '{prefix}{close[0]}'?" if close else f"; known: {', '.join(known)}"
        raise ValueError(f"unknown {registry.kind} {name!r}{hint}")


def resolve_path(ref: ModelRef) -> str:
    """What `from_pretrained` receives: a local directory or a hub id."""
    return MODEL_BACKENDS.get(ref.backend)(ref)


@MODEL_BACKENDS.register("pocket", summary="pocket zoo model, built into the user cache when missing")
def _pocket_backend(ref: ModelRef) -> str:
    return str(POCKET_MODELS.get(ref.name)(ref.name))


@MODEL_BACKENDS.register("hf", summary="Hugging Face hub id, optionally @revision")
def _hf_backend(ref: ModelRef) -> str:
    return ref.name


@MODEL_BACKENDS.register("local", summary="a directory written by save_pretrained")
def _local_backend(ref: ModelRef) -> str:
    if not Path(ref.name).is_dir():
        raise UserInputError(f"{ref.name}: model directory not found")
    return ref.name


def check_weights(directory: Path) -> None:
    """Open every safetensors file's header, so corrupt or truncated weights fail before a run starts."""
    from safetensors import SafetensorError, safe_open

    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise UserInputError(f"{directory}: no *.safetensors weights (other formats are not loaded, for safety)")
    for file in files:
        try:
            with safe_open(str(file), framework="pt") as handle:
                handle.keys()
        except (SafetensorError, OSError) as exc:
            raise UserInputError(f"{file}: cannot read weights ({str(exc).splitlines()[0]})") from None


# What a model folder's behaviour depends on besides its weights: the architecture config, the
# tokenizer (vocabularies, merges, sentencepiece models), the chat template and generation defaults.
# Other files (READMEs, logs, optimizer state, the zoo's build manifest with its build time, a
# Trainer's state) do not change it.
DEFINING_FILES = ("*.safetensors", "*.json", "*.jinja", "*.txt", "*.model")
NOT_DEFINING = frozenset({"zoo.json", "trainer_state.json"})


def defining_files(directory: Path) -> list[Path]:
    """The top-level files of a model folder that determine what it computes, sorted by name."""
    files = {file for pattern in DEFINING_FILES for file in directory.glob(pattern) if file.is_file()}
    return sorted((file for file in files if file.name not in NOT_DEFINING), key=lambda file: file.name)


def tree_fingerprint(directory: Path, ignore: tuple[str, ...] = ("zoo.json",)) -> str:
    """sha256 over every file of a model folder tree (a pipeline's or a point model's sub-folders), by relative
    path; `ignore` leaves out files that differ between identical builds (a zoo manifest's training time)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(directory).rglob("*") if p.is_file() and p.name not in ignore):
        digest.update(str(path.relative_to(directory)).encode() + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def fingerprint(text: str) -> str:
    """Identity of a model: a hash of its weights, config, tokenizer and chat template files, or hub
    id@revision. An edited chat template or tokenizer changes what a model is scored on, so it
    changes the key of every cell that uses the model."""
    ref = parse_model_ref(text)
    if ref.backend == "hf":
        return f"{ref.name}@{ref.revision or 'main'}"
    if ref.backend == "arch":  # no weights: the architecture's code and the cell's seed make them
        return f"arch:{ref.name}"
    directory = Path(resolve_path(ref))
    check_weights(directory)
    digest = hashlib.sha256()
    for file in defining_files(directory):
        digest.update(file.name.encode())
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()[:16]


def load_pretrained(text: str, model_class: Any, processor_class: Any, what: str, *, trust_remote_code: bool,
                    dtype: Any) -> tuple[Any, Any]:
    """(model, processor) of a model reference through a transformers auto class pair's `from_pretrained`
    (weights from safetensors only, at the reference's revision); a failure is one line naming `what`."""
    ref = parse_model_ref(text)
    location = resolve_path(ref)
    common = {"revision": ref.revision, "trust_remote_code": trust_remote_code}
    try:
        processor = processor_class.from_pretrained(location, **common)
        model = model_class.from_pretrained(location, dtype=dtype, use_safetensors=True, **common)
    except (OSError, ValueError) as exc:
        raise UserInputError(f"{text}: cannot load {what} ({str(exc).splitlines()[0]})") from None
    return model, processor


def pad_on_the_left(tokenizer: Any) -> None:
    """Batched generation continues every prompt from its last token: pad on the left, with EOS where the
    tokenizer has no pad token."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
