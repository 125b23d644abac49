"""Text-to-image sampling for the image benchmarks: load a pipeline folder, sample with CFG, count NFE and time.

A pipeline folder is laid out as Stable Diffusion's (``unet/``, ``text_encoder/``,
``tokenizer/``, ``scheduler/``, each loaded with its library's ``from_pretrained``) plus
``t2i.json``: the image size and ``space_to_depth`` (the UNet works on the pixel image
rearranged by ``pixel_unshuffle``, `to_model_space`; the pocket teacher, `distillbench.pocket.t2i_zoo`).
``pocket:t2i-teacher`` names the pocket teacher (a `POCKET_MODELS` entry of family ``text-to-image``,
built into the user cache on first use).

Sampling (`TextToImage.generate`): the training scheduler's config with DDIM (η = 0) or
Euler, both with ``timestep_spacing="trailing"`` so that one step starts from pure noise at
t = 999 (diffusers' default "leading" spacing would start a 1-step sample at t = 0, a
pure-noise image scored as if the model had made it). Classifier-free guidance:
v = v_uncond + w·(v_cond − v_uncond), the unconditional branch on the empty text; NFE per
image is steps × 2 with guidance (w ≠ 1), steps otherwise. The initial noise of image i
depends only on (seed, i), so a prompt set's images do not change with the batch size.

`generate_for_benchmark` writes one PNG per benchmark item and a predictions JSONL (``id``,
``response`` = the PNG's path) that `distillbench score` grades. Command line:
``python -m distillbench.kinds.diffusion.sampling BENCHMARK --model pocket:t2i-teacher --steps 50 --out DIR``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distillbench.core.errors import UserInputError
from distillbench.core.inputs import input_absent
from distillbench.core.models import parse_model_ref, resolve_path, tree_fingerprint
from distillbench.core.recipe import validate_options
from distillbench.core.registry import BENCHMARKS, POCKET_MODELS
from distillbench.core.score_only import parse_dataset_options, score_predictions, write_results
from distillbench.kinds.diffusion.nasa import negative_away

SAMPLERS = ("ddim", "euler")
PIPELINE, MODEL_INDEX = "t2i.json", "model_index.json"  # a pocket pipeline's settings; a diffusers pipeline's index
# The POCKET_MODELS family of the pipelines a pocket world provides (`pocket:<name>`).
POCKET_FAMILY = "text-to-image"


@dataclass(frozen=True)
class SamplingCost:
    nfe: int  # UNet evaluations per image
    seconds_per_image: float  # wall time per image, text encoding included, batched


def resolve(model: str) -> Path:
    """A pipeline folder from a model reference: ``pocket:<name>`` (built on first use), ``hf:<id>@<revision>``
    (its pipeline files fetched into the hub cache: `download_pipeline`) or a local path."""
    ref = parse_model_ref(model)
    if ref.backend == "hf":
        return download_pipeline(ref.name, ref.revision)
    return Path(resolve_path(ref))


# The files of a hub pipeline a run reads: configs, the tokenizer and safetensors weights (no pickles, no
# fp16 or non-EMA variants, no single-file checkpoints).
HUB_FILES = ["model_index.json", "scheduler/*.json", "tokenizer/*", "text_encoder/*.json",
             "text_encoder/model.safetensors", "unet/*.json", "unet/diffusion_pytorch_model.safetensors",
             "vae/*.json", "vae/diffusion_pytorch_model.safetensors"]


def download_pipeline(repo_id: str, revision: str | None) -> Path:
    """The hub cache's folder of a pipeline's files at `revision` (huggingface_hub's snapshot_download)."""
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id, revision=revision, allow_patterns=HUB_FILES))


def pipeline_problem(model: str) -> str | None:
    """Why `model` names no pipeline folder (None when it does), without building or loading one."""
    ref = parse_model_ref(model)
    if ref.backend == "pocket":
        if ref.name in POCKET_MODELS and POCKET_MODELS.entry(ref.name).family == POCKET_FAMILY:
            return None
        known = [f"pocket:{entry.name}" for entry in POCKET_MODELS.entries(POCKET_FAMILY)]
        return f"unknown pocket text-to-image model; known: {', '.join(known)}"
    if ref.backend == "hf":
        return None  # a hub id: its files are fetched by the run that needs them
    if not is_pipeline_folder(Path(model)) and not input_absent(model):
        return f"not a text-to-image pipeline folder (no unet/ with t2i.json or model_index.json in {model})"
    return None


def is_pipeline_folder(directory: Path) -> bool:
    """A pocket pipeline (``t2i.json``) or a diffusers Stable Diffusion folder (``model_index.json``), with its
    ``unet/``."""
    directory = Path(directory)
    return (directory / "unet").is_dir() and any((directory / name).is_file() for name in (PIPELINE, MODEL_INDEX))


@dataclass
class PipelineParts:
    """What a pipeline folder holds: the UNet, the text encoder, its tokenizer, the VAE of a latent pipeline (None
    in pixel space), the training scheduler's config and the sampling settings (``t2i.json``'s, or those a
    Stable Diffusion folder implies: `sd_settings`)."""

    unet: Any
    text_encoder: Any
    tokenizer: Any
    vae: Any
    scheduler_config: dict
    settings: dict


def load_parts(directory: Path) -> PipelineParts:
    """A pipeline folder's parts (`is_pipeline_folder`), each read by its library's ``from_pretrained``."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import AutoTokenizer, CLIPTextModel

    directory = Path(directory)
    unet = UNet2DConditionModel.from_pretrained(directory / "unet")
    tokenizer = AutoTokenizer.from_pretrained(directory / "tokenizer")
    vae = AutoencoderKL.from_pretrained(directory / "vae") if (directory / "vae").is_dir() else None
    settings = (json.loads((directory / PIPELINE).read_text()) if (directory / PIPELINE).is_file()
                else sd_settings(unet, vae, tokenizer))
    return PipelineParts(unet.eval(), CLIPTextModel.from_pretrained(directory / "text_encoder").eval(), tokenizer,
                         None if vae is None else vae.eval(), dict(DDPMScheduler.load_config(directory / "scheduler")),
                         settings)


def sd_settings(unet, vae, tokenizer) -> dict[str, Any]:
    """The sampling settings of a Stable Diffusion folder that has no ``t2i.json``: the image size its UNet and
    VAE imply, SD's 50 steps and guidance 7.5, the tokenizer's context length."""
    scale = 2 ** (len(vae.config.block_out_channels) - 1) if vae is not None else 1
    return {"image_size": unet.config.sample_size * scale, "space_to_depth": 1, "default_steps": 50,
            "default_guidance": 7.5, "context_length": tokenizer.model_max_length}


@torch.no_grad()
def encode_images(images: np.ndarray, settings: dict, vae=None, batch_size: int = 16) -> torch.Tensor:
    """uint8 ``(N, H, W, 3)`` images (at the pipeline's image size) in the UNet's space: the VAE's latent means
    times its scaling factor for a latent pipeline, the rearranged pixels (`to_model_space`) otherwise."""
    pixels = to_model_space(images, 1 if vae is not None else settings["space_to_depth"])
    if vae is None:
        return pixels
    latents = [vae.encode(pixels[first:first + batch_size].to(vae.device, vae.dtype)).latent_dist.mean
               for first in range(0, len(pixels), batch_size)]
    return torch.cat(latents).float().cpu() * vae.config.scaling_factor


@torch.no_grad()
def decode_samples(samples: torch.Tensor, settings: dict, vae=None) -> np.ndarray:
    """The inverse of `encode_images`: uint8 ``(N, H, W, 3)`` images of the UNet's samples."""
    if vae is None:
        return from_model_space(samples, settings["space_to_depth"])
    pixels = vae.decode(samples.to(vae.device, vae.dtype) / vae.config.scaling_factor).sample
    return from_model_space(pixels.float().cpu(), 1)


def to_model_space(images: np.ndarray, factor: int) -> torch.Tensor:
    """uint8 ``(N, H, W, 3)`` → ``(N, 3·f², H/f, W/f)`` in [−1, 1]: the pixels a UNet with ``space_to_depth``
    f works on (``t2i.json``)."""
    pixels = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1
    return torch.nn.functional.pixel_unshuffle(pixels, factor)


def from_model_space(samples: torch.Tensor, factor: int) -> np.ndarray:
    """The inverse of `to_model_space`, rounded to uint8 ``(N, H, W, 3)``."""
    pixels = torch.nn.functional.pixel_shuffle(samples.float(), factor).clamp(-1, 1)
    return ((pixels + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def fingerprint(directory: Path) -> str:
    """sha256 over a pipeline folder's weights and configs (every file but the zoo manifest, whose
    training time differs between identical builds)."""
    return tree_fingerprint(directory)


class TextToImage:
    """A text-to-image pipeline's parts (`PipelineParts`) and its sampler; `load` reads a pipeline folder."""

    def __init__(self, unet, text_encoder, tokenizer, config: dict, scheduler_config: dict, vae=None,
                 device: str = "cpu"):
        self.unet, self.text_encoder, self.tokenizer, self.vae = unet.eval(), text_encoder.eval(), tokenizer, vae
        self.config, self.scheduler_config, self.device = config, dict(scheduler_config), device

    @classmethod
    def load(cls, model: str | Path, device: str = "cpu") -> "TextToImage":
        parts = load_parts(resolve(str(model)))
        return cls(parts.unet, parts.text_encoder, parts.tokenizer, parts.settings, parts.scheduler_config,
                   parts.vae).to(device)

    def to(self, device) -> "TextToImage":
        """The pipeline on `device` (its networks; the initial noise is drawn on the CPU)."""
        for network in (self.unet, self.text_encoder, self.vae):
            if network is not None:
                network.to(device)
        self.device = device
        return self

    def scheduler(self, sampler: str):
        from diffusers import DDIMScheduler, EulerDiscreteScheduler

        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        kind = DDIMScheduler if sampler == "ddim" else EulerDiscreteScheduler
        return kind.from_config(self.scheduler_config, timestep_spacing="trailing")

    def _embed(self, prompts: list[str]) -> torch.Tensor:
        ids = self.tokenizer(prompts, padding="max_length", truncation=True, max_length=self.config["context_length"],
                             return_tensors="pt")["input_ids"].to(self.device)
        return self.text_encoder(ids).last_hidden_state

    def initial_noise(self, count: int, seed: int) -> torch.Tensor:
        """Noise of image i (in the UNet's space) drawn from its own generator seeded by (seed, i)."""
        size = self.unet.config.sample_size
        shape = (self.unet.config.in_channels, size, size)
        return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(seed * 1_000_003 + i))
                            for i in range(count)])

    @torch.no_grad()
    def generate(self, prompts: list[str], steps: int, guidance: float | None = None, sampler: str = "ddim",
                 seed: int = 0, batch_size: int = 64, negatives: list[str] | None = None,
                 nasa_scale: float = 0.0) -> tuple[list[np.ndarray], SamplingCost]:
        """uint8 RGB images, one per prompt, and the sampling cost. With `negatives` (one negative prompt per
        prompt) and `nasa_scale` α > 0, the cross-attention layers steer away from the negatives (SNOOPI's NASA,
        `nasa.negative_away`; the unconditional branch of guidance too)."""
        guidance = self.config["default_guidance"] if guidance is None else guidance
        guided = guidance != 1.0
        noise = self.initial_noise(len(prompts), seed)
        started = time.perf_counter()
        images = []
        for first in range(0, len(prompts), batch_size):
            texts = prompts[first:first + batch_size]
            context = self._embed(texts + [""] * len(texts) if guided else texts)
            steering = contextlib.nullcontext()
            if nasa_scale and negatives is not None:
                negative = self._embed(negatives[first:first + batch_size])
                steering = negative_away(self.unet, torch.cat([negative] * 2) if guided else negative, nasa_scale)
            scheduler = self.scheduler(sampler)
            scheduler.set_timesteps(steps)
            sample = noise[first:first + batch_size].to(self.device) * scheduler.init_noise_sigma
            with steering:
                for timestep in scheduler.timesteps:
                    model_input = scheduler.scale_model_input(torch.cat([sample] * 2) if guided else sample, timestep)
                    output = self.unet(model_input, timestep, encoder_hidden_states=context).sample
                    if guided:
                        conditional, unconditional = output.chunk(2)
                        output = unconditional + guidance * (conditional - unconditional)
                    sample = scheduler.step(output, timestep, sample).prev_sample
            images.extend(decode_samples(sample, self.config, self.vae))
        seconds = time.perf_counter() - started
        return images, SamplingCost(nfe=steps * (2 if guided else 1), seconds_per_image=seconds / max(1, len(prompts)))


def item_prompt(item: dict) -> str:
    """The text an image benchmark's item asks for (GenEval items keep it in their metadata)."""
    return item["prompt"] if "prompt" in item else item["metadata"]["prompt"]


def write_images(items: list[dict], images: list[np.ndarray], folder: Path) -> list[str]:
    """Each item's image as ``<folder>/<item id>.png``; their absolute paths, in item order."""
    from PIL import Image

    paths = []
    for item, image in zip(items, images):
        path = Path(folder) / f"{item['id']}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)
        paths.append(str(path.resolve()))
    return paths


def generate_for_benchmark(pipeline: TextToImage, benchmark, folder: Path, steps: int, guidance: float | None = None,
                           sampler: str = "ddim", seed: int = 0) -> tuple[Path, SamplingCost]:
    """One PNG per item of `benchmark` under `folder`, and ``predictions.jsonl`` (id, response = path)."""
    items = benchmark.items()
    images, cost = pipeline.generate([item_prompt(item) for item in items], steps, guidance, sampler, seed)
    paths = write_images(items, images, Path(folder) / "images")
    predictions = Path(folder) / "predictions.jsonl"
    predictions.write_text("".join(json.dumps({"id": item["id"], "response": path}) + "\n"
                                   for item, path in zip(items, paths)))
    return predictions, cost


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m distillbench.kinds.diffusion.sampling",
                                     description="Generate images for an image benchmark's prompts and score them.")
    parser.add_argument("benchmark", help="a registered image benchmark, e.g. pocket-geneval, pocket-fid")
    parser.add_argument("--model", default="pocket:t2i-teacher", help="pocket:<name> or a pipeline folder")
    parser.add_argument("--steps", type=int, help="sampling steps (default: the pipeline's)")
    parser.add_argument("--guidance", type=float, help="classifier-free guidance scale (default: the pipeline's)")
    parser.add_argument("--sampler", choices=SAMPLERS, default="ddim")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dataset", action="append", default=[], metavar="KEY=VALUE", help="benchmark options")
    parser.add_argument("--out", required=True, type=Path, help="folder for the images, predictions and results.json")
    args = parser.parse_args(argv)
    options = parse_dataset_options(args.dataset)
    benchmark, problems = validate_options(BENCHMARKS.get(args.benchmark), options, args.benchmark)
    if problems:
        raise UserInputError(problems)
    torch.set_num_threads(1)
    pipeline = TextToImage.load(args.model)
    steps = args.steps or pipeline.config["default_steps"]
    predictions, cost = generate_for_benchmark(pipeline, benchmark, args.out, steps, args.guidance, args.sampler,
                                               args.seed)
    results = score_predictions(args.benchmark, predictions, options)
    results["sampling"] = {"model": args.model, "steps": steps, "sampler": args.sampler, "seed": args.seed,
                           "guidance": pipeline.config["default_guidance"] if args.guidance is None else args.guidance,
                           "nfe": cost.nfe, "seconds_per_image": round(cost.seconds_per_image, 4)}
    print(json.dumps({"metrics": results["metrics"], "sampling": results["sampling"]}, indent=1))
    print(f"results: {write_results(results, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
