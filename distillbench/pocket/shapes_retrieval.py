"""pocket-shapes image–caption retrieval: the captions' vocabulary, the image–caption pairs of generated
scenes (``pocket:shapes-captions``) and the cross-encoder teacher (``pocket:shapes-cross-encoder``); the models
and the pairs' schema are the retrieval kind's (`distillbench.kinds.retrieval`).

Captions are pocket-shapes' own (`Scene.caption`: every shape with its colour, left to right, or a
position relation), tokenised by words over a fixed vocabulary. Many scenes share a caption (the caption
does not say where the shapes are).

The teacher is trained here (listwise cross-entropy both ways over the in-batch score matrix, plus, for
each image, perturbed copies of its caption: a colour or shape changed, two colours swapped, a relation
flipped), cached in the zoo
cache by the hash of its spec, and saved as ``model.safetensors`` + ``config.json``. Everything is
deterministic from the spec's seed; ``DISTILLBENCH_ZOO_SCALE=tiny`` selects a spec that trains in seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from distillbench.core.registry import POCKET_DATA, POCKET_MODELS
from distillbench.kinds.retrieval.data import CAPTION_PAIRS, CaptionPairs
from distillbench.kinds.retrieval.models import CrossEncoder, save_model
from distillbench.pocket.shapes import COLORS, SHAPES, WORLD_VERSION, generate
from distillbench.pocket.zoo import cache_root

RELATIONS = ("left", "right", "above", "below")
VOCABULARY = ("<pad>", "a", "an", "photo", "of", "and", ",", *RELATIONS, *COLORS, *SHAPES)
TOKEN_IDS = {word: index for index, word in enumerate(VOCABULARY)}
MAX_TOKENS = 20  # "a photo of" + four "a <colour> <shape>" + separators is 18
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
TEACHER_NAME = "shapes-cross-encoder"
PAIRS_SOURCE = "pocket:shapes-captions"
# Part of every retrieval data fingerprint; bump when captions, tokens or scene selection change.
RETRIEVAL_VERSION = f"retrieval1-world{WORLD_VERSION}"


def tokenize(caption: str) -> list[int]:
    """Word ids of a pocket caption, padded with 0 to MAX_TOKENS."""
    words = caption.replace(",", " ,").split()
    unknown = [w for w in words if w not in TOKEN_IDS]
    if unknown or len(words) > MAX_TOKENS:
        raise ValueError(f"not a pocket-shapes caption: {caption!r}")
    return [TOKEN_IDS[w] for w in words] + [0] * (MAX_TOKENS - len(words))


@lru_cache(maxsize=8)
def caption_pairs(split: str, size: int, seed: int = 0) -> CaptionPairs:
    scenes = generate(split, size, seed=seed)
    images = torch.from_numpy(np.stack([s.render() for s in scenes])).permute(0, 3, 1, 2).contiguous()
    captions = tuple(s.caption for s in scenes)
    tokens = torch.tensor([tokenize(c) for c in captions], dtype=torch.long)
    return CaptionPairs(split, images, captions, tokens, tuple(f"retrieval/{s.digest[:12]}" for s in scenes),
                        VOCABULARY, MEAN, STD)


def _version(source: str) -> str:
    return RETRIEVAL_VERSION


POCKET_DATA.register(PAIRS_SOURCE, family=CAPTION_PAIRS, fingerprint=_version,
                     summary="pocket-shapes scenes with their captions")(caption_pairs)


# --- the teacher -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TeacherSpec:
    train_size: int = 4000
    steps: int = 600
    batch_size: int = 32
    learning_rate: float = 2e-3
    perturbed_negatives: int = 4
    seed: int = 0
    version: str = RETRIEVAL_VERSION

    def spec_hash(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


def teacher_spec() -> TeacherSpec:
    if os.environ.get("DISTILLBENCH_ZOO_SCALE") == "tiny":
        return TeacherSpec(train_size=64, steps=3, batch_size=8)
    return TeacherSpec()


def perturbed(tokens: list[int], rng: random.Random) -> list[int] | None:
    """A caption that no longer describes the scene: one colour or shape changed, two colours swapped, or
    the relation flipped; None when the chosen edit changes nothing."""
    colours = [i for i, t in enumerate(tokens) if VOCABULARY[t] in COLORS]
    shapes = [i for i, t in enumerate(tokens) if VOCABULARY[t] in SHAPES]
    relations = [i for i, t in enumerate(tokens) if VOCABULARY[t] in RELATIONS]
    edit = rng.choice(["colour", "shape", "swap"] + (["relation"] * 2 if relations else []))
    changed = list(tokens)
    if edit == "colour" and colours:
        changed[rng.choice(colours)] = TOKEN_IDS[rng.choice(COLORS)]
    elif edit == "shape" and shapes:
        changed[rng.choice(shapes)] = TOKEN_IDS[rng.choice(SHAPES)]
    elif edit == "swap" and len(colours) > 1:
        a, b = rng.sample(colours, 2)
        changed[a], changed[b] = changed[b], changed[a]
    elif edit == "relation":
        changed[relations[0]] = TOKEN_IDS[rng.choice([r for r in RELATIONS if TOKEN_IDS[r] != tokens[relations[0]]])]
    # Articles are left as they are ("a orange"), so the article never gives the edit away... nor the answer.
    return None if changed == tokens else changed


def _perturbations(pairs: CaptionPairs, indices: list[int], rng: random.Random, count: int) -> torch.Tensor:
    """[B, count, L]: distinct perturbed copies of each pair's caption (hard negatives for its image)."""
    rows = []
    for i in indices:
        own = pairs.tokens[i].tolist()
        edits: list[list[int]] = []
        for _ in range(20 * count):
            candidate = perturbed(own, rng)
            if candidate is not None and candidate not in edits:
                edits.append(candidate)
            if len(edits) == count:
                break
        while len(edits) < count:  # a caption with few possible edits: repeat them (the same negative twice)
            edits.append(edits[len(edits) % len(edits)] if edits else own)
        rows.append(edits)
    return torch.tensor(rows)


def teacher_loss(model: CrossEncoder, pairs: CaptionPairs, indices: list[int], edits: torch.Tensor) -> torch.Tensor:
    """Listwise cross-entropy both ways over the in-batch score matrix (captions shared by two pairs are
    not negatives), with each image's perturbed captions as extra negatives on the image→text side."""
    count = len(indices)
    tokens = pairs.tokens[indices]
    patches, texts = model.image_tokens(pairs.image_batch(indices)), model.text_tokens(tokens)
    rows, columns = (grid.flatten() for grid in torch.meshgrid(torch.arange(count), torch.arange(count), indexing="ij"))
    matrix = model.pair_scores(patches[rows], texts[columns], tokens[columns]).view(count, count)
    shared = pairs.same_caption(indices) & ~torch.eye(count, dtype=torch.bool)
    matrix = matrix.masked_fill(shared, float("-inf"))
    flat = edits.flatten(0, 1)
    edited = model.pair_scores(patches.repeat_interleave(edits.shape[1], 0), model.text_tokens(flat), flat)
    targets = torch.arange(count)
    image_to_text = F.cross_entropy(torch.cat([matrix, edited.view(count, -1)], dim=1), targets)
    return (image_to_text + F.cross_entropy(matrix.T, targets)) / 2


def train_teacher(spec: TeacherSpec) -> tuple[CrossEncoder, dict]:
    torch.manual_seed(spec.seed)
    rng = random.Random(spec.seed)
    pairs = caption_pairs("train", spec.train_size, spec.seed)
    model = CrossEncoder(len(VOCABULARY))
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.learning_rate, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, spec.learning_rate, total_steps=spec.steps,
                                                   pct_start=0.1)
    model.train()
    started = time.perf_counter()
    for step in range(spec.steps):
        indices = rng.sample(range(len(pairs)), spec.batch_size)
        loss = teacher_loss(model, pairs, indices, _perturbations(pairs, indices, rng, spec.perturbed_negatives))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    return model.eval(), {"spec": asdict(spec), "spec_hash": spec.spec_hash(), "final_loss": round(loss.item(), 4),
                          "build_seconds": round(time.perf_counter() - started, 1), "torch": torch.__version__}


@POCKET_MODELS.register(TEACHER_NAME, family="retrieval", summary="pocket-shapes cross-encoder (image patches × "
                        "caption words), the retrieval teacher")
def ensure_teacher(name: str = TEACHER_NAME) -> Path:
    """The cached cross-encoder for the current spec, trained when missing."""
    spec = teacher_spec()
    directory = cache_root() / f"{name}-{spec.spec_hash()}"
    if not (directory / "config.json").is_file():
        model, report = train_teacher(spec)
        save_model(model, directory, report)
    return directory
