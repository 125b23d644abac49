"""The retrieval kind's models and their format: a dual encoder (the student) and a cross-encoder (a teacher),
saved as ``model.safetensors`` + ``config.json``.

* `DualEncoder`: a small CNN embeds the image, a word CNN the caption; the score is the cosine of the two
  embeddings, so a gallery is embedded once (efficient retrieval).
* `CrossEncoder`: every caption token attends over the image's patches (a CNN's 4×4 feature grid) and is
  compared with what it finds there, so the score can bind colours to shapes and relations to objects — and
  must be computed for every (image, caption) pair.

Both read captions as word ids over a vocabulary of `vocabulary_size` words, 0 being padding; the data
(`data.CaptionPairs`) says which vocabulary.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

from distillbench.core.errors import UserInputError
from distillbench.core.files import replace_directory, temporary_name

# config.json does not record the vocabulary's size (the configs saved before it did not, and a saved teacher's
# config enters cell keys): `load_model` reads it from this weight's rows.
WORD_EMBEDDING = "text.words.weight"


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

    def __init__(self, vocabulary_size: int, width: int):
        super().__init__()
        self.words = nn.Embedding(vocabulary_size, width, padding_idx=0)
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

    def __init__(self, vocabulary_size: int, image_widths: tuple[int, ...] = (8, 16, 32), embed_dim: int = 64,
                 word_dim: int = 32):
        super().__init__()
        self.config = {"kind": "dual-encoder", "image_widths": list(image_widths), "embed_dim": embed_dim,
                       "word_dim": word_dim}
        self.trunk, channels = _conv_stages(tuple(image_widths))
        self.image_head = nn.Linear(2 * channels, embed_dim)
        self.text = WordConvolution(vocabulary_size, word_dim)
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

    def __init__(self, vocabulary_size: int, width: int = 32):
        super().__init__()
        self.config = {"kind": "cross-encoder", "width": width}
        self.trunk, channels = _conv_stages((16, 32, 32))  # 32 → 16 → 8; pooled to a 4×4 grid below
        self.patch = nn.Conv2d(channels, width, 1)
        self.patch_positions = nn.Parameter(torch.randn(1, 16, width) * 0.02)
        self.text = WordConvolution(vocabulary_size, width)
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
    state = load_file(str(weights))
    model = builders[config["kind"]](len(state[WORD_EMBEDDING]), **options)
    model.load_state_dict(state)
    return model.eval()
