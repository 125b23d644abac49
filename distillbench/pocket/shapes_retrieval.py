"""pocket-shapes image–caption retrieval: caption tokens, image–caption pairs, a dual-encoder student and a
cross-encoder teacher (``pocket:shapes-cross-encoder``).

Captions are pocket-shapes' own (`Scene.caption`: every shape with its colour, left to right, or a
position relation), tokenised by words over a fixed vocabulary. Many scenes share a caption (the caption
does not say where the shapes are), which the retrieval benchmark and the losses treat as equivalent
pairs, never as negatives of each other.

* `DualEncoder` (the student): a small CNN embeds the image, a word CNN the caption; the
  score is the cosine of the two embeddings, so a gallery is embedded once (efficient retrieval).
* `CrossEncoder` (the teacher): every caption token attends over the image's patches (a CNN's 4×4
  feature grid) and is compared with what it finds there, so the score can bind colours to shapes and
  relations to objects — and must be computed for every (image, caption) pair.

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
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

from distillbench.core.errors import UserInputError
from distillbench.core.files import replace_directory, temporary_name
from distillbench.pocket.shapes import COLORS, SHAPES, WORLD_VERSION, generate
from distillbench.pocket.zoo import cache_root

RELATIONS = ("left", "right", "above", "below")
VOCABULARY = ("<pad>", "a", "an", "photo", "of", "and", ",", *RELATIONS, *COLORS, *SHAPES)
TOKEN_IDS = {word: index for index, word in enumerate(VOCABULARY)}
MAX_TOKENS = 20  # "a photo of" + four "a <colour> <shape>" + separators is 18
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
TEACHER_NAME = "shapes-cross-encoder"
TEACHER_REF = f"pocket:{TEACHER_NAME}"
# Part of every retrieval data fingerprint; bump when captions, tokens or scene selection change.
RETRIEVAL_VERSION = f"retrieval1-world{WORLD_VERSION}"


def tokenize(caption: str) -> list[int]:
    """Word ids of a pocket caption, padded with 0 to MAX_TOKENS."""
    words = caption.replace(",", " ,").split()
    unknown = [w for w in words if w not in TOKEN_IDS]
    if unknown or len(words) > MAX_TOKENS:
        raise ValueError(f"not a pocket-shapes caption: {caption!r}")
    return [TOKEN_IDS[w] for w in words] + [0] * (MAX_TOKENS - len(words))


@dataclass(frozen=True, eq=False)
class CaptionPairs:
    """Scenes as (image, caption) pairs: uint8 images [N, 3, H, W], captions, tokens [N, L], ids."""

    split: str
    images: torch.Tensor
    captions: tuple[str, ...]
    tokens: torch.Tensor
    ids: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.captions)

    def image_batch(self, indices) -> torch.Tensor:
        images = self.images[torch.as_tensor(list(indices), dtype=torch.long)].float() / 255.0
        return (images - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)

    def same_caption(self, indices) -> torch.Tensor:
        """[B, B] True where two pairs of the batch have the same caption (the diagonal included)."""
        captions = [self.captions[i] for i in indices]
        return torch.tensor([[a == b for b in captions] for a in captions])


@lru_cache(maxsize=8)
def caption_pairs(split: str, size: int, seed: int = 0) -> CaptionPairs:
    scenes = generate(split, size, seed=seed)
    images = torch.from_numpy(np.stack([s.render() for s in scenes])).permute(0, 3, 1, 2).contiguous()
    captions = tuple(s.caption for s in scenes)
    tokens = torch.tensor([tokenize(c) for c in captions], dtype=torch.long)
    return CaptionPairs(split, images, captions, tokens, tuple(f"retrieval/{s.digest[:12]}" for s in scenes))


# --- models ----------------------------------------------------------------------------------------------
def _conv_stages(widths: tuple[int, ...]) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    channels = 3
    for index, width in enumerate(widths):
        if index:
            layers.append(nn.MaxPool2d(2))
        layers += [nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        channels = width
    return nn.Sequential(*layers), channels


class WordConvolution(nn.Module):
    """Contextual token states of a caption: word embeddings through two 1-D convolutions (kernel 3, so
    each state sees five words: enough to bind "a red circle"); far cheaper than a recurrent net on CPU."""

    def __init__(self, width: int):
        super().__init__()
        self.words = nn.Embedding(len(VOCABULARY), width, padding_idx=0)
        self.layers = nn.Sequential(nn.Conv1d(width, width, 3, padding=1), nn.ReLU(),
                                    nn.Conv1d(width, width, 3, padding=1), nn.ReLU())

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """[B, L, W] states; padding positions are zero."""
        states = self.layers(self.words(tokens).transpose(1, 2)).transpose(1, 2)
        return states * (tokens != 0).unsqueeze(-1)


def masked_mean_max(states: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """[B, 2W]: the mean and the max of token states over the non-padding positions."""
    mask = (tokens != 0).unsqueeze(-1)
    mean = (states * mask).sum(1) / mask.sum(1).clamp(min=1)
    return torch.cat([mean, states.masked_fill(~mask, float("-inf")).amax(1)], dim=-1)


class DualEncoder(nn.Module):
    """Image CNN and caption word-CNN embedding into one space; scores are cosines."""

    def __init__(self, image_widths: tuple[int, ...] = (8, 16, 32), embed_dim: int = 64, word_dim: int = 32):
        super().__init__()
        self.config = {"kind": "dual-encoder", "image_widths": list(image_widths), "embed_dim": embed_dim,
                       "word_dim": word_dim}
        self.trunk, channels = _conv_stages(tuple(image_widths))
        self.image_head = nn.Linear(2 * channels, embed_dim)
        self.text = WordConvolution(word_dim)
        self.text_head = nn.Linear(2 * word_dim, embed_dim)

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        maps = self.trunk(images)
        pooled = torch.cat([maps.mean(dim=(2, 3)), maps.amax(dim=(2, 3))], dim=1)
        return F.normalize(self.image_head(pooled), dim=1)

    def encode_texts(self, tokens: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_head(masked_mean_max(self.text(tokens), tokens)), dim=1)

    def similarities(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """[B_images, B_texts] cosine scores."""
        return self.encode_images(images) @ self.encode_texts(tokens).T

    @torch.no_grad()
    def score_matrix(self, images: torch.Tensor, tokens: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        image_embeddings = torch.cat([self.encode_images(images[i:i + batch_size])
                                      for i in range(0, len(images), batch_size)])
        text_embeddings = torch.cat([self.encode_texts(tokens[i:i + batch_size])
                                     for i in range(0, len(tokens), batch_size)])
        return image_embeddings @ text_embeddings.T


class CrossEncoder(nn.Module):
    """Caption tokens attend to image patches, pair by pair: a late-fusion cross-encoder.

    The image becomes a 4×4 grid of patch features (with positions) and the caption a sequence of
    contextual token states (`WordConvolution`); for each (image, caption) pair every token attends
    over that image's patches, an MLP compares the token with what it found there, and the score is a
    linear read-out of the mean and max over tokens. The score is not a dot product of separate
    embeddings, so it can check that *this* colour sits on *that* shape — and it must run per pair."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.config = {"kind": "cross-encoder", "width": width}
        self.trunk, channels = _conv_stages((16, 32, 32))  # 32 → 16 → 8; pooled to a 4×4 grid below
        self.patch = nn.Conv2d(channels, width, 1)
        self.patch_positions = nn.Parameter(torch.randn(1, 16, width) * 0.02)
        self.text = WordConvolution(width)
        self.query, self.key, self.value = (nn.Linear(width, width) for _ in range(3))
        self.compare = nn.Sequential(nn.Linear(3 * width, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU())
        self.head = nn.Linear(2 * width, 1)

    def image_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """[B, 16, W] patch features of each image (computed once per image)."""
        grid = self.patch(F.adaptive_avg_pool2d(self.trunk(images), 4))
        return grid.flatten(2).transpose(1, 2) + self.patch_positions

    def text_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """[B, L, W] contextual token states of each caption (computed once per caption)."""
        return self.text(tokens)

    def pair_scores(self, patches: torch.Tensor, texts: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """[P] scores of P pairs: patches [P, 16, W], text states [P, L, W], token ids [P, L] (for the mask)."""
        attention = (self.query(texts) @ self.key(patches).transpose(1, 2)) / texts.shape[-1] ** 0.5
        found = attention.softmax(-1) @ self.value(patches)  # [P, L, W]: what each token finds in the image
        compared = self.compare(torch.cat([texts, found, texts * found], dim=-1))
        return self.head(masked_mean_max(compared, tokens)).squeeze(-1)

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Scores of the aligned pairs (images[i], tokens[i])."""
        return self.pair_scores(self.image_tokens(images), self.text_tokens(tokens), tokens)

    def score_matrix(self, images: torch.Tensor, tokens: torch.Tensor, batch_size: int = 8192) -> torch.Tensor:
        """[N_images, N_texts]: every image with every caption (the cost a cross-encoder pays)."""
        with torch.no_grad():
            patches, texts = self.image_tokens(images), self.text_tokens(tokens)
            rows, columns = torch.meshgrid(torch.arange(len(images)), torch.arange(len(tokens)), indexing="ij")
            rows, columns = rows.flatten(), columns.flatten()
            scores = torch.cat([self.pair_scores(patches[rows[i:i + batch_size]], texts[columns[i:i + batch_size]],
                                                 tokens[columns[i:i + batch_size]])
                                for i in range(0, len(rows), batch_size)])
        return scores.view(len(images), len(tokens))


# --- saving and loading ---------------------------------------------------------------------------------
def save_model(model: nn.Module, directory: Path, extra: dict | None = None) -> Path:
    staging = temporary_name(directory)
    staging.mkdir(parents=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(staging / "model.safetensors"))
    digest = hashlib.sha256((staging / "model.safetensors").read_bytes()).hexdigest()
    (staging / "config.json").write_text(json.dumps({**model.config, "weights_sha256": digest,
                                                     "extra": extra or {}}, indent=1) + "\n")
    replace_directory(staging, directory)
    return directory


def read_config(directory: Path) -> dict:
    """The config.json `save_model` wrote: the architecture, the weights' sha256 and the build report."""
    try:
        return json.loads((directory / "config.json").read_text())
    except FileNotFoundError:
        raise UserInputError(f"{directory}: no config.json (not a retrieval model)") from None


def load_model(directory: str | Path) -> nn.Module:
    """A dual or cross encoder saved by `save_model` (weights from safetensors, checked against their sha256)."""
    directory = Path(directory)
    config = read_config(directory)
    weights = directory / "model.safetensors"
    if hashlib.sha256(weights.read_bytes()).hexdigest() != config.get("weights_sha256"):
        raise UserInputError(f"{weights}: sha256 does not match config.json")
    options = {k: v for k, v in config.items() if k not in ("kind", "weights_sha256", "extra")}
    builders = {"dual-encoder": DualEncoder, "cross-encoder": CrossEncoder}
    if config.get("kind") not in builders:
        raise UserInputError(f"{directory}: unknown retrieval model kind {config.get('kind')!r}")
    if "image_widths" in options:
        options["image_widths"] = tuple(options["image_widths"])
    model = builders[config["kind"]](**options)
    model.load_state_dict(load_file(str(weights)))
    return model.eval()


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
    model = CrossEncoder()
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


def ensure_teacher() -> Path:
    """The cached cross-encoder for the current spec, trained when missing."""
    spec = teacher_spec()
    directory = cache_root() / f"{TEACHER_NAME}-{spec.spec_hash()}"
    if not (directory / "config.json").is_file():
        model, report = train_teacher(spec)
        save_model(model, directory, report)
    return directory


def load_retrieval_model(ref: str) -> nn.Module:
    """``pocket:shapes-cross-encoder`` or a directory saved by `save_model`."""
    return load_model(ensure_teacher() if ref == TEACHER_REF else ref)
