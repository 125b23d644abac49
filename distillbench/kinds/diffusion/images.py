"""Image students of the diffusion kind: a text-to-image pipeline (UNet, text encoder, tokenizer, scheduler)
distilled by the same methods as the point models.

The methods call a student as they call a point model, ``model(sample, timestep, prompt)`` → its output at
``sample`` (v or ε, as the scheduler's ``prediction_type`` says), the prompt None for the empty text.
`PromptedUNet` gives a ``UNet2DConditionModel`` that call: the prompt is a row of token ids, encoded by the
pipeline's text encoder, which stays frozen (SD's distillations train the UNet alone). Its ``features`` (the
mid block's output, averaged over space) are what a GAN head reads, as DMD2's head sits on the UNet's
bottleneck.

A student is saved as a Stable Diffusion pipeline folder, written by diffusers' own ``save_pretrained``
(``model_index.json``, ``unet/``, ``text_encoder/``, ``tokenizer/``, ``scheduler/``), plus ``t2i.json`` (image
size, pixel layout, default steps and guidance), the layout `kinds.diffusion.sampling` reads. A pocket
pipeline works in pixel space and has no VAE: ``DiffusionPipeline.from_pretrained(folder, vae=None)`` loads
it (diffusers wants the missing VAE named), and ``output_type="latent"`` returns the image in [−1, 1].
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from distillbench.kinds.diffusion.sampling import PIPELINE, encode_images, load_parts

@dataclass
class ImagePipeline:
    """What an image pipeline folder holds besides the UNet and text encoder: its tokenizer, its training
    schedule's config and ``t2i.json`` (``image_size``, ``space_to_depth``, ``default_steps``,
    ``default_guidance``, ``context_length``)."""

    tokenizer: Any
    scheduler_config: dict
    settings: dict
    vae: Any = None  # a latent pipeline's autoencoder (Stable Diffusion's); None in pixel space

    def prompt_ids(self, prompts: list[str]) -> torch.Tensor:
        """(len(prompts), context_length) token ids, padded on the right, as the pipeline encodes them."""
        return self.tokenizer(list(prompts), padding="max_length", truncation=True,
                              max_length=self.settings["context_length"], return_tensors="pt")["input_ids"]

    def to_model_space(self, images: np.ndarray) -> torch.Tensor:
        """uint8 (N, H, W, 3) images in the UNet's space (`sampling.encode_images`: pixels or VAE latents)."""
        return encode_images(images, self.settings, self.vae)


class PromptedUNet(nn.Module):
    """A UNet conditioned on a frozen text encoder, called as the diffusion methods call a point model."""

    def __init__(self, unet: nn.Module, text_encoder: nn.Module, empty_ids: torch.Tensor):
        super().__init__()
        self.unet, self.text_encoder = unet, text_encoder.requires_grad_(False).eval()
        self.register_buffer("empty_ids", torch.as_tensor(empty_ids).view(1, -1), persistent=False)
        # what the methods read of a point model's config: the width of `features` (a GAN head's input)
        self.config = _Config(hidden=unet.config.block_out_channels[-1])

    def step_model(self, index: int, guidance: float) -> tuple["PromptedUNet", float]:
        return self, guidance

    def __deepcopy__(self, memo: dict) -> "PromptedUNet":
        """A copy (a critic, an EMA target) with its own UNet and text encoder, sharing the pipeline's other parts
        (tokenizer, VAE: frozen, and SD's VAE alone is 84M parameters)."""
        if hasattr(self, "pipeline"):
            memo[id(self.pipeline)] = self.pipeline
        clone = self.__class__.__new__(self.__class__)
        memo[id(self)] = clone
        clone.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return clone

    def _context(self, prompt_ids: torch.Tensor | None, count: int) -> torch.Tensor:
        ids = self.empty_ids.expand(count, -1) if prompt_ids is None else prompt_ids
        with torch.no_grad():
            return self.text_encoder(ids.to(self.empty_ids.device)).last_hidden_state

    def forward(self, sample: torch.Tensor, timestep, prompt_ids: torch.Tensor | None = None) -> torch.Tensor:
        timestep = torch.as_tensor(timestep, device=sample.device).expand(sample.shape[0])
        return self.unet(sample, timestep, encoder_hidden_states=self._context(prompt_ids, len(sample))).sample

    def features(self, sample: torch.Tensor, timestep, prompt_ids: torch.Tensor | None = None) -> torch.Tensor:
        """The mid block's output averaged over space, (n, the last block's channels)."""
        captured = []
        hook = self.unet.mid_block.register_forward_hook(lambda module, inputs, output: captured.append(output))
        try:
            self(sample, timestep, prompt_ids)
        finally:
            hook.remove()
        return captured[0].mean(dim=(2, 3))


@dataclass(frozen=True)
class _Config:
    hidden: int


def load_image_pipeline(directory: Path) -> tuple[PromptedUNet, ImagePipeline]:
    """(the prompted UNet, its pipeline's other parts) of a pipeline folder (`sampling.load_parts`)."""
    parts = load_parts(directory)
    pipeline = ImagePipeline(parts.tokenizer, parts.scheduler_config, parts.settings, parts.vae)
    model = PromptedUNet(parts.unet, parts.text_encoder, pipeline.prompt_ids([""])[0])
    model.pipeline = pipeline  # what scoring samples it with (`Diffusion.device_model`)
    return model.eval(), pipeline


def save_image_pipeline(model: PromptedUNet, pipeline: ImagePipeline, directory: Path) -> None:
    """A Stable Diffusion pipeline folder written by diffusers' own ``save_pretrained`` (the scheduler as DDIM
    with trailing timesteps, so that 1 step starts from pure noise), plus ``t2i.json`` (the teacher's sampling
    defaults: a board names each column's steps and guidance)."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    def scheduler():
        return DDIMScheduler.from_config(pipeline.scheduler_config, timestep_spacing="trailing")

    StableDiffusionPipeline(vae=pipeline.vae, text_encoder=model.text_encoder, tokenizer=pipeline.tokenizer,
                            unet=model.unet, scheduler=scheduler(), safety_checker=None, feature_extractor=None,
                            requires_safety_checker=False).save_pretrained(directory, safe_serialization=True)
    # StableDiffusionPipeline rewrites an SD1-style scheduler config it is given (clip_sample to False, steps_offset
    # to 1); the training schedule is saved as it is, so the student samples as it was trained and scored
    scheduler().save_pretrained(Path(directory) / "scheduler")
    (Path(directory) / PIPELINE).write_text(json.dumps(pipeline.settings, indent=1) + "\n")
