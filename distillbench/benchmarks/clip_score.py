"""CLIP score through open_clip: ``clip-score`` (a real open_clip model from a local checkpoint); its pocket
instance ``pocket-clip-score`` is in `distillbench.pocket.benchmarks.pocket_images`.

Per item: the cosine between the L2-normalised CLIP embeddings of the generated image and of its
prompt, reported under one of three conventions (`convention`, recorded in the protocol):

* ``torchmetrics``: 100·cos per image; torchmetrics' ``CLIPScore`` reports max(mean, 0), the
  clamp applied *after* averaging (``compute``), so the row's mean equals it whenever it is
  positive (per-item values stay unclamped so that rows can be compared item by item);
* ``cosine``: the raw cosine, as DMD2, GigaGAN and SiD-LSG report it (≈0.30 on COCO);
* ``clip-s``: Hessel et al.'s CLIP-S, 2.5·max(cos, 0) per image.

`prefix` is prepended to every prompt (DMD2/GigaGAN use "A photo depicts "). Real models come
from ``open_clip.create_model_and_transforms(model, pretrained=<local file>)`` with the model's
own preprocessing (resize, centre crop, normalisation) and tokenizer; OpenAI's weights need the
QuickGELU variant of the model name (the default ``ViT-L-14-quickgelu``; open_clip #771): with a
local file as ``pretrained`` open_clip cannot tell, and plain ``ViT-L-14`` runs them with GELU.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from distillbench.benchmarks.base import Benchmark, ItemScore, register_benchmark
from distillbench.benchmarks.image_metrics import GeneratedImageOutputs, load_image, local_input_problems

Convention = Literal["torchmetrics", "cosine", "clip-s"]
CONVENTIONS = {"torchmetrics": "100*cos per image; torchmetrics reports max(mean, 0)",
               "cosine": "raw cosine (DMD2, GigaGAN, SiD-LSG)", "clip-s": "2.5*max(cos, 0) per image (Hessel et al.)"}


def clip_scores(image_features: torch.Tensor, text_features: torch.Tensor, convention: str) -> torch.Tensor:
    """Per-pair scores of (unnormalised) embeddings under `convention`."""
    cosine = torch.nn.functional.cosine_similarity(image_features.double(), text_features.double(), dim=-1)
    if convention == "torchmetrics":
        return 100 * cosine
    if convention == "cosine":
        return cosine
    if convention == "clip-s":
        return 2.5 * cosine.clamp(min=0)
    raise ValueError(f"convention must be one of {sorted(CONVENTIONS)}, got {convention!r}")


class OpenClipEmbedder:
    """Image and text embeddings of an open_clip model, with its own preprocessing and tokenizer."""

    def __init__(self, model_name: str, pretrained: str, device: str = "cpu"):
        import open_clip

        self.model, _, self.preprocess = open_clip.create_model_and_transforms(model_name, pretrained=pretrained,
                                                                               device=device)
        self.model.eval()
        self.tokenizer = open_clip.get_tokenizer(model_name)
        self.device = device

    @torch.no_grad()
    def images(self, images) -> torch.Tensor:
        from PIL import Image

        batch = torch.stack([self.preprocess(Image.fromarray(image)) for image in images]).to(self.device)
        return self.model.encode_image(batch).float().cpu()

    @torch.no_grad()
    def texts(self, texts: list[str]) -> torch.Tensor:
        return self.model.encode_text(self.tokenizer(texts).to(self.device)).float().cpu()


@functools.lru_cache(maxsize=4)
def _embedder(model: str, pretrained: str, device: str) -> OpenClipEmbedder:
    return OpenClipEmbedder(model, pretrained, device)


class _ScoredByClip(GeneratedImageOutputs):
    """Per-item CLIP score shared by the two benchmarks (the fields live on each class)."""

    def score(self, item, output):
        self.image_path(item, output)
        embedder = self._embedder()
        text = self.prefix + item["prompt"]
        value = float(clip_scores(embedder.images([load_image(output)]), embedder.texts([text]), self.convention)[0])
        return ItemScore({"clip_score": value}, f"{self.convention} CLIP score of {text!r}")

    def _protocol(self, **model):
        return {"metric": "clip_score", "convention": self.convention, "formula": CONVENTIONS[self.convention],
                "prefix": self.prefix, "library": "open_clip", "open_clip_version": _version("open_clip_torch"),
                "samples": len(self.items()), "scorer_version": self.scorer_version, **model}


def _version(package: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


@register_benchmark("clip-score", family="image", paper="Radford et al. 2021, arXiv:2103.00020; Hessel et al. 2021, "
                    "arXiv:2104.08718", summary="CLIP score of generated images against their prompts (JSONL id, "
                                                "prompt); an open_clip model from a local checkpoint",
                    aliases=("clipscore",))
@dataclass(frozen=True)
class ClipScore(_ScoredByClip, Benchmark):
    prompts: str
    pretrained: str  # an open_clip checkpoint file
    # open_clip model name; torchmetrics' default is OpenAI's ViT-L/14, whose weights need QuickGELU: a file
    # given as `pretrained` skips open_clip's tag config, so plain "ViT-L-14" would run them with GELU
    model: str = "ViT-L-14-quickgelu"
    convention: Convention = "torchmetrics"
    prefix: str = ""
    device: str = "cpu"

    def check(self):
        return local_input_problems("prompts", self.prompts) + local_input_problems("pretrained", self.pretrained)

    def items(self):
        records = [json.loads(line) for line in Path(self.prompts).read_text().splitlines() if line.strip()]
        return [{"id": str(record["id"]), "prompt": record["prompt"]} for record in records]

    def _embedder(self):
        return _embedder(self.model, self.pretrained, self.device)

    def protocol(self):
        digest = hashlib.sha256(Path(self.pretrained).read_bytes()).hexdigest()[:16]
        return self._protocol(model=self.model, weights_sha256=digest, preprocessing="open_clip's own transforms")
