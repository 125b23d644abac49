"""The pocket CLIP: open_clip's ``CLIP`` class with a tiny config, trained contrastively on pocket-shapes captions.

It plays the role of the CLIP model in CLIP score at pocket scale. The model is
``open_clip.model.CLIP`` built from ``open_clip_config.json`` (open_clip's own config format:
``embed_dim``, ``vision_cfg``, ``text_cfg``): a ViT over 32×32 images in 4×4 patches and a
causal text transformer over the pocket-shapes word tokenizer (`shapes_text`, 24 tokens,
pooled at the end token, the largest id, as CLIP pools), both 2 layers of width 48; weights
in ``open_clip_model.safetensors``, loaded by ``open_clip.load_checkpoint``.

Training: CLIP's symmetric InfoNCE with a learnable temperature, on (image, caption) pairs of
train-split scenes (AdamW, warm-up and cosine decay, one CPU thread). config.json records the
held-out figures `evaluate` measures on test scenes: image→caption retrieval accuracy in a batch
of 100, and how often the true caption outscores the same caption with one colour swapped for a
colour absent from the scene.

A copy trained by exactly ``python -m distillbench.pocket.shapes_clip --export`` ships in
``distillbench/pocket/shapes_zoo/clip/`` and is used while its spec hash matches; otherwise
the model is trained into the user cache.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from distillbench.pocket import builds, shapes_text
from distillbench.pocket.shapes import COLORS, generate
from distillbench.pocket.zoo import cache_root

PACKAGED = Path(__file__).parent / "shapes_zoo" / "clip"
WEIGHTS, MODEL_CONFIG, CONFIG = "open_clip_model.safetensors", "open_clip_config.json", "config.json"
# Images as the ViT sees them: [0, 1] pixels normalised per channel (the scenes' grey is 0.5).
IMAGE_MEAN, IMAGE_STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


@dataclass(frozen=True)
class ClipSpec:
    image_size: int = 32
    patch_size: int = 4
    width: int = 48
    layers: int = 2
    embed_dim: int = 32
    train_scenes: int = 4000
    steps: int = 500
    batch_size: int = 128
    learning_rate: float = 2e-3
    warmup_steps: int = 25
    seed: int = 0
    world_version: int = 1  # shapes.WORLD_VERSION when trained

    def spec_hash(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]

    def open_clip_config(self) -> dict:
        tokenizer = shapes_text.build_tokenizer()
        return {"embed_dim": self.embed_dim,
                "vision_cfg": {"image_size": self.image_size, "patch_size": self.patch_size, "width": self.width,
                               "layers": self.layers, "head_width": self.width // 2, "mlp_ratio": 2.0},
                "text_cfg": {"context_length": shapes_text.CONTEXT_LENGTH, "vocab_size": len(tokenizer),
                             "width": self.width, "heads": 2, "layers": self.layers, "mlp_ratio": 2.0,
                             "pad_id": tokenizer.pad_token_id, "pool_type": "argmax"}}


def build(config: dict):
    from open_clip.model import CLIP

    return CLIP(**config)


def image_tensor(images) -> torch.Tensor:
    """uint8 ``(N, H, W, 3)`` (or a list of such arrays) → the normalised ``(N, 3, H, W)`` the ViT takes."""
    array = np.stack([np.asarray(image, dtype=np.uint8)[..., :3] for image in images])
    pixels = torch.from_numpy(array).permute(0, 3, 1, 2).float() / 255.0
    return (pixels - torch.tensor(IMAGE_MEAN)[:, None, None]) / torch.tensor(IMAGE_STD)[:, None, None]


def wrong_color_caption(scene, rng: random.Random) -> str:
    """The scene's caption with one shape's colour replaced by a colour absent from the scene."""
    shape = rng.choice(scene.shapes)
    absent = [c for c in COLORS if c not in {s.color for s in scene.shapes}]
    recoloured = tuple(s if s is not shape else type(s)(s.kind, rng.choice(absent), s.x, s.y, s.side)
                       for s in scene.shapes)
    return type(scene)(recoloured, scene.metadata, scene.image_size).caption


def embed_images(model, images) -> torch.Tensor:
    """L2-normalised image embeddings of uint8 RGB images."""
    with torch.no_grad():
        return model.encode_image(image_tensor(images), normalize=True)


def embed_texts(model, tokenizer, texts) -> torch.Tensor:
    """L2-normalised text embeddings."""
    with torch.no_grad():
        return model.encode_text(shapes_text.token_ids(tokenizer, texts), normalize=True)


def evaluate(model, tokenizer, seed: int = 0, scenes: int = 500) -> dict:
    """Held-out figures on test scenes: retrieval in batches of 100 and true vs wrong-colour captions."""
    held_out = generate("test", scenes, seed=seed)
    rng = random.Random(f"pocket-clip/wrong-colour/{seed}")
    image_features = embed_images(model, [s.render() for s in held_out])
    text_features = embed_texts(model, tokenizer, [s.caption for s in held_out])
    wrong_features = embed_texts(model, tokenizer, [wrong_color_caption(s, rng) for s in held_out])
    true_scores = (image_features * text_features).sum(-1)
    wrong_scores = (image_features * wrong_features).sum(-1)
    retrieved = [((image_features[i:i + 100] @ text_features[i:i + 100].T).argmax(-1) == torch.arange(
        len(image_features[i:i + 100]))).float() for i in range(0, scenes, 100)]
    return {"test_retrieval_at_100": round(float(torch.cat(retrieved).mean()), 4),
            "test_true_over_wrong_colour": round(float((true_scores > wrong_scores).float().mean()), 4),
            "test_mean_cosine": round(float(true_scores.mean()), 4)}


def train(spec: ClipSpec = ClipSpec(), log=print):
    """(model, tokenizer, report): the pocket CLIP trained from scratch on train-split captions."""
    started = time.perf_counter()
    torch.manual_seed(spec.seed)
    tokenizer = shapes_text.build_tokenizer()
    model = build(spec.open_clip_config())
    scenes = generate("train", spec.train_scenes, seed=spec.seed, image_size=spec.image_size)
    images = image_tensor([s.render() for s in scenes])
    texts = shapes_text.token_ids(tokenizer, [s.caption for s in scenes])
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.learning_rate, weight_decay=0.1)

    def schedule(step: int) -> float:
        if step < spec.warmup_steps:
            return (step + 1) / spec.warmup_steps
        return 0.5 * (1 + math.cos(math.pi * (step - spec.warmup_steps) / max(1, spec.steps - spec.warmup_steps)))

    learning_rate = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    generator = torch.Generator().manual_seed(spec.seed)
    losses = []
    for step in range(spec.steps):
        batch = torch.randperm(len(scenes), generator=generator)[:spec.batch_size]
        image_features = model.encode_image(images[batch], normalize=True)
        text_features = model.encode_text(texts[batch], normalize=True)
        logits = model.logit_scale.exp().clamp(max=100) * image_features @ text_features.T
        targets = torch.arange(len(batch))
        loss = (torch.nn.functional.cross_entropy(logits, targets)
                + torch.nn.functional.cross_entropy(logits.T, targets)) / 2
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        learning_rate.step()
        losses.append(float(loss.detach()))
        if log and (step + 1) % 100 == 0:
            log(f"pocket CLIP: step {step + 1}/{spec.steps}, loss {np.mean(losses[-100:]):.4f}, "
                f"{time.perf_counter() - started:.0f} s")
    model.eval()
    report = {"train_seconds": round(time.perf_counter() - started, 1),
              "final_train_loss": round(float(np.mean(losses[-50:])), 4),
              "parameters": sum(p.numel() for p in model.parameters()), **evaluate(model, tokenizer, spec.seed)}
    return model, tokenizer, report


def save(model, tokenizer, spec: ClipSpec, report: dict, directory: Path) -> Path:
    """Weights (safetensors), open_clip config, tokenizer and config.json into `directory`, atomically."""
    from safetensors.torch import save_file

    def write(staging: Path) -> None:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(staging / WEIGHTS))
        (staging / MODEL_CONFIG).write_text(json.dumps(spec.open_clip_config(), indent=1) + "\n")
        tokenizer.save_pretrained(staging / "tokenizer")
        config = {"name": "pocket-shapes-clip", "spec": asdict(spec), "spec_hash": spec.spec_hash(),
                  "image_mean": IMAGE_MEAN, "image_std": IMAGE_STD,
                  "weights_sha256": hashlib.sha256((staging / WEIGHTS).read_bytes()).hexdigest(), **report}
        (staging / CONFIG).write_text(json.dumps(config, indent=1) + "\n")

    return builds.publish(directory, write)


def load(directory: str | Path):
    """(model, tokenizer, config) of a saved pocket CLIP, after checking the weights' sha256."""
    import open_clip
    from transformers import PreTrainedTokenizerFast

    directory = Path(directory)
    config = json.loads((directory / CONFIG).read_text())
    digest = hashlib.sha256((directory / WEIGHTS).read_bytes()).hexdigest()
    if digest != config["weights_sha256"]:
        raise ValueError(f"{directory / WEIGHTS}: sha256 {digest[:12]} does not match its config")
    model = build(json.loads((directory / MODEL_CONFIG).read_text()))
    open_clip.load_checkpoint(model, str(directory / WEIGHTS))
    return model.eval(), PreTrainedTokenizerFast.from_pretrained(directory / "tokenizer"), config


def cache_directory(spec: ClipSpec = ClipSpec()) -> Path:
    return cache_root() / f"shapes-clip-{spec.spec_hash()}"


def default_directory(spec: ClipSpec = ClipSpec()) -> Path:
    """The shipped copy when its spec matches, else the user-cache build (trained when missing)."""
    if (PACKAGED / CONFIG).is_file() and json.loads((PACKAGED / CONFIG).read_text())["spec_hash"] == spec.spec_hash():
        return PACKAGED
    directory = cache_directory(spec)
    if not (directory / CONFIG).is_file():
        model, tokenizer, report = train(spec, log=None)
        save(model, tokenizer, spec, report, directory)
    return directory


def _build(_name: None, target: Path) -> dict:
    model, tokenizer, report = train(ClipSpec())
    save(model, tokenizer, ClipSpec(), report, target)
    return report


def main(argv: list[str] | None = None) -> int:
    return builds.command_line(argv, module="distillbench.pocket.shapes_clip",
                               description="Train the pocket CLIP (CLIP score on pocket-shapes).", build=_build,
                               cache_directory=lambda _name: cache_directory(), packaged=PACKAGED)


if __name__ == "__main__":
    raise SystemExit(main())
