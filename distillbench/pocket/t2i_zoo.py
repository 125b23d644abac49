"""The pocket text-to-image teacher: a diffusers UNet, a CLIP text encoder and a scheduler, trained on pocket-shapes.

It is laid out as a Stable Diffusion folder (``unet/``, ``text_encoder/``, ``tokenizer/``,
``scheduler/``, each saved with ``save_pretrained``, weights in safetensors) plus
``t2i.json`` (image size, pixel layout, default steps and guidance) and ``zoo.json`` (the
spec, its hash, the sha256 of every file, training time and loss); it loads with
`distillbench.kinds.diffusion.sampling.TextToImage`.

* **Pixels, rearranged.** There is no VAE: the UNet works on the 32×32 RGB image in [−1, 1]
  rearranged by ``pixel_unshuffle`` into 16×16×12 (each 2×2 patch's 12 values as channels),
  the pixel-space analogue of SD's latent that makes every convolution 4× cheaper on CPU.
* **UNet.** ``UNet2DConditionModel`` with three levels (16×16, 8×8, 4×4), cross-attention to
  the text at 8×8, 4×4 and in the middle block.
* **Text.** A tiny ``CLIPTextModel`` over the pocket-shapes word tokenizer
  (`distillbench.pocket.shapes_text`), trained jointly with the UNet (SD keeps its encoder
  frozen; ours has nothing pretrained to keep). Each scene is shown with its caption or its
  GenEval prompt (half each), and with the empty text 10% of the time, for classifier-free
  guidance.
* **Objective.** DDPM (diffusers ``DDPMScheduler``), 1,000 steps, cosine schedule
  (``squaredcos_cap_v2``), v-prediction, plain MSE; AdamW with warm-up and cosine decay;
  an EMA of the weights (diffusers ``EMAModel``) is what is saved.

Built by ``python -m distillbench.pocket.t2i_zoo`` into the user cache (named by the spec's
hash; `model_dir` builds it on first use and verifies it after), deterministic for a spec on
one CPU thread. ``DISTILLBENCH_ZOO_SCALE=tiny`` selects a tiny spec that trains in seconds (tests).

Measured (this spec: 1.69M-parameter UNet, 0.10M text encoder): one step of 32 images costs about
1.05 CPU-seconds on one core; the 3,000 steps took 3,147 s (one thread, beside another job), final
loss 0.046. The 400 steps first tried left the samples noise-covered (pocket GenEval 0 at any step
count, pocket-FID 2252 at 50 steps). At 3,000 steps the samples are coloured blobs in the right
colours and places on a slightly speckled background, not crisp shapes: the pocket image leaderboard
(`leaderboards/pocket-image.md`) has the teacher at 50 steps clearly above itself at 1–2 steps on
every metric (GenEval 0.069 against 0.012 and 0.000, paired p = 0.0014 after Holm; pocket-FID 358
against 649 and 1035), but low on GenEval in absolute terms (single objects 0 of 12: their shape is
not recognised), so the room a distilled sampler can gain is on colour, FID and CLIP score more
than on shape.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from distillbench.core.registry import POCKET_DATA, POCKET_MODELS
from distillbench.kinds.diffusion.sampling import POCKET_FAMILY, to_model_space
from distillbench.pocket import builds, shapes_text
from distillbench.pocket.shapes import generate
from distillbench.pocket.zoo import cache_root

MANIFEST, PIPELINE = "zoo.json", "t2i.json"
# Part of every spec hash: bump when the training data or the loop change what a spec builds.
FORMAT_VERSION = 1


@dataclass(frozen=True)
class T2ISpec:
    name: str
    # UNet (on the pixel_unshuffle'd image) and text encoder
    channels: tuple[int, ...] = (32, 64, 64)
    attention_head_dim: int = 8
    text_hidden: int = 64
    text_layers: int = 2
    text_heads: int = 4
    # data and training
    image_size: int = 32
    space_to_depth: int = 2
    train_scenes: int = 6000
    steps: int = 3000
    batch_size: int = 32
    learning_rate: float = 1e-3
    warmup_steps: int = 30
    ema_decay: float = 0.99
    prompt_fraction: float = 0.5  # the GenEval prompt instead of the caption
    uncond_fraction: float = 0.1  # the empty text (classifier-free guidance)
    # sampling defaults recorded in t2i.json
    default_steps: int = 50
    default_guidance: float = 3.0
    seed: int = 0
    format_version: int = FORMAT_VERSION

    def spec_hash(self) -> str:
        return builds.spec_hash(self)


# Calibrated on the dev prompts (docs/pocket-worlds.md, "The calibrated text-to-image teacher"): 16×16
# pixels with no rearranging (the 32×32 image rearranged to 16×16×12 drew blobs), 20,000 scenes, batches of 64;
# 4,200 steps is what fits the 60 CPU-minute build budget on one thread.
FULL_SPECS = {"t2i-teacher": T2ISpec("t2i-teacher", image_size=16, space_to_depth=1, train_scenes=20000, steps=4200,
                                     batch_size=64, default_guidance=1.5)}
TINY_SPECS = {"t2i-teacher": T2ISpec("t2i-teacher", channels=(16, 16), attention_head_dim=8, text_hidden=16,
                                     text_layers=1, text_heads=2, image_size=16, space_to_depth=1, train_scenes=64,
                                     steps=3, batch_size=8, warmup_steps=1, default_steps=2)}


def specs() -> dict[str, T2ISpec]:
    return TINY_SPECS if os.environ.get("DISTILLBENCH_ZOO_SCALE") == "tiny" else FULL_SPECS


def build_text_encoder(spec: T2ISpec, tokenizer):
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=spec.text_hidden, intermediate_size=4 * spec.text_hidden,
                            num_hidden_layers=spec.text_layers, num_attention_heads=spec.text_heads,
                            max_position_embeddings=shapes_text.CONTEXT_LENGTH, pad_token_id=tokenizer.pad_token_id,
                            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    return CLIPTextModel(config)


def build_unet(spec: T2ISpec):
    from diffusers import UNet2DConditionModel

    levels = len(spec.channels)
    channels = 3 * spec.space_to_depth**2
    return UNet2DConditionModel(
        sample_size=spec.image_size // spec.space_to_depth, in_channels=channels, out_channels=channels,
        block_out_channels=spec.channels, layers_per_block=1, norm_num_groups=8,
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (levels - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (levels - 1) + ("UpBlock2D",),
        cross_attention_dim=spec.text_hidden, attention_head_dim=spec.attention_head_dim)


def training_scheduler():
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction",
                         clip_sample=True, clip_sample_range=1.0)


def texts_of(scenes, prompt_fraction: float, generator: torch.Generator) -> list[str]:
    """Each scene's text: its GenEval prompt (a `prompt_fraction` share, drawn from `generator`) or its caption."""
    use_prompt = torch.rand(len(scenes), generator=generator) < prompt_fraction
    return [scene.metadata["prompt"] if chosen else scene.caption for scene, chosen in zip(scenes, use_prompt)]


@POCKET_DATA.register("pocket:shapes-scenes", family="text-to-image", fingerprint=lambda source: source,
                      summary="pocket-shapes training scenes: texts (GenEval prompt or caption, half each, as the "
                              "pocket text-to-image teacher was trained) and their rendered images")
def shapes_scenes(size: int, seed: int, image_size: int) -> tuple[list[str], np.ndarray]:
    """(texts, uint8 images (size, image_size, image_size, 3)) of `size` pocket-shapes training scenes."""
    scenes = generate("train", size, seed=seed, image_size=image_size)
    texts = texts_of(scenes, 0.5, torch.Generator().manual_seed(seed))
    return texts, np.stack([scene.render() for scene in scenes])


def train(spec: T2ISpec, log=print):
    """(unet, text_encoder, tokenizer, report): `spec` trained from scratch; the weights are the EMA's."""
    from diffusers.training_utils import EMAModel

    started = time.perf_counter()
    torch.manual_seed(spec.seed)
    tokenizer = shapes_text.build_tokenizer()
    unet, text_encoder = build_unet(spec), build_text_encoder(spec, tokenizer)
    scheduler = training_scheduler()
    scenes = generate("train", spec.train_scenes, seed=spec.seed, image_size=spec.image_size)
    images = to_model_space(np.stack([s.render() for s in scenes]), spec.space_to_depth)
    captions = shapes_text.token_ids(tokenizer, [s.caption for s in scenes])
    prompts = shapes_text.token_ids(tokenizer, [s.metadata["prompt"] for s in scenes])
    empty = shapes_text.token_ids(tokenizer, [""])[0]
    parameters = [*unet.parameters(), *text_encoder.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=spec.learning_rate, weight_decay=0.01)

    def schedule(step: int) -> float:
        if step < spec.warmup_steps:
            return (step + 1) / spec.warmup_steps
        return 0.5 * (1 + math.cos(math.pi * (step - spec.warmup_steps) / max(1, spec.steps - spec.warmup_steps)))

    learning_rate = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    ema = EMAModel(parameters, decay=spec.ema_decay)
    generator = torch.Generator().manual_seed(spec.seed)
    losses = []
    for step in range(spec.steps):
        batch = torch.randint(len(scenes), (spec.batch_size,), generator=generator)
        choice = torch.rand(spec.batch_size, generator=generator)
        ids = torch.where((choice < spec.prompt_fraction)[:, None], prompts[batch], captions[batch])
        ids[torch.rand(spec.batch_size, generator=generator) < spec.uncond_fraction] = empty
        clean = images[batch]
        noise = torch.randn(clean.shape, generator=generator)
        timesteps = torch.randint(scheduler.config.num_train_timesteps, (spec.batch_size,), generator=generator)
        noisy = scheduler.add_noise(clean, noise, timesteps)
        prediction = unet(noisy, timesteps, encoder_hidden_states=text_encoder(ids).last_hidden_state).sample
        loss = torch.nn.functional.mse_loss(prediction, scheduler.get_velocity(clean, noise, timesteps))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        learning_rate.step()
        ema.step(parameters)
        losses.append(float(loss.detach()))
        if log and (step + 1) % 50 == 0:
            log(f"{spec.name}: step {step + 1}/{spec.steps}, loss {np.mean(losses[-50:]):.4f}, "
                f"{time.perf_counter() - started:.0f} s")
    ema.copy_to(parameters)
    unet.eval(), text_encoder.eval()
    tail = losses[-min(100, len(losses)):]
    report = {"train_seconds": round(time.perf_counter() - started, 1), "final_loss": round(float(np.mean(tail)), 4),
              "unet_parameters": sum(p.numel() for p in unet.parameters()),
              "text_encoder_parameters": sum(p.numel() for p in text_encoder.parameters())}
    return unet, text_encoder, tokenizer, report


# --- saving, loading, verifying -----------------------------------------------------------------
def save(unet, text_encoder, tokenizer, spec: T2ISpec, report: dict, directory: Path) -> Path:
    """Write the pipeline's parts and the manifest into `directory` atomically (staging, then rename)."""

    def write(staging: Path) -> None:
        unet.save_pretrained(staging / "unet", safe_serialization=True)
        text_encoder.save_pretrained(staging / "text_encoder", safe_serialization=True)
        tokenizer.save_pretrained(staging / "tokenizer")
        training_scheduler().save_pretrained(staging / "scheduler")
        pipeline = {"image_size": spec.image_size, "space_to_depth": spec.space_to_depth,
                    "default_steps": spec.default_steps, "default_guidance": spec.default_guidance,
                    "context_length": shapes_text.CONTEXT_LENGTH}
        (staging / PIPELINE).write_text(json.dumps(pipeline, indent=1) + "\n")

    return builds.publish(directory, write, MANIFEST, {
        "name": spec.name, "spec": asdict(spec), "spec_hash": spec.spec_hash(),
        "rebuild": "python -m distillbench.pocket.t2i_zoo", **report})


def verify(directory: Path) -> list[str]:
    """Problems with a build (missing manifest, a file whose sha256 differs); empty when sound."""
    return builds.verify(directory, MANIFEST)


def cache_directory(spec: T2ISpec) -> Path:
    return cache_root() / f"{spec.name}-{spec.spec_hash()}"


def model_dir(name: str = "t2i-teacher") -> Path:
    """The user-cache build of `name` (trained when missing or failing verification)."""
    known = specs()
    if name not in known:
        raise ValueError(f"unknown pocket text-to-image model {name!r}; known: {', '.join(known)}")
    return builds.cached(cache_directory(known[name]), MANIFEST, lambda target: _build(name, target, log=None))


for _name in FULL_SPECS:  # `pocket:<name>` references resolve here
    POCKET_MODELS.register(_name, family=POCKET_FAMILY, summary="pocket text-to-image teacher (diffusers UNet, CLIP "
                           "text encoder, DDPM scheduler)")(model_dir)


def _build(name: str, target: Path, log=print) -> dict:
    spec = specs()[name]
    unet, text_encoder, tokenizer, report = train(spec, log=log)
    save(unet, text_encoder, tokenizer, spec, report, target)
    return report


def main(argv: list[str] | None = None) -> int:
    return builds.command_line(argv, module="distillbench.pocket.t2i_zoo",
                               description="Train the pocket text-to-image teacher into the user cache.",
                               build=_build, cache_directory=lambda name: cache_directory(specs()[name]),
                               names=list(FULL_SPECS))


if __name__ == "__main__":
    raise SystemExit(main())
