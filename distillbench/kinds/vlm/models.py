"""Vision-language models through transformers' own classes, and batched greedy generation with images.

A VLM here is what `AutoModelForImageTextToText` loads (LLaVA: a CLIP or SigLIP vision tower, a
projector and a Llama-family language model) with its `AutoProcessor` (an image processor and a
tokenizer, which expands each image placeholder into the vision tower's number of image tokens).
As for language models (`models.load_causal_lm`), a reference is ``hf:<id>[@revision]`` or a local
directory written by ``save_pretrained``; weights are read from safetensors only and
``trust_remote_code`` stays off unless asked for.

`generate_vlm` renders each request with the processor's chat template (the tokenizer's when the
processor has none), pads on the left, sorts requests by prompt length so a batch wastes little
padding, and decodes greedily: a request's reply does not depend on the batch it falls in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from distillbench.core.errors import UserInputError
from distillbench.core.models import load_pretrained, pad_on_the_left
from distillbench.core.progress import progress

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass(frozen=True)
class VisionRequest:
    """One prompt: its images (PIL, in the order they are shown) and the user's text without placeholders."""

    images: tuple
    text: str


def load_vlm(text: str, *, trust_remote_code: bool = False, dtype: torch.dtype = torch.float32):
    """(model, processor) for a model reference, ready for generation (the tokenizer pads on the left)."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model, processor = load_pretrained(text, AutoModelForImageTextToText, AutoProcessor, "a vision-language model",
                                       trust_remote_code=trust_remote_code, dtype=dtype)
    tokenizer = getattr(processor, "tokenizer", None)
    if tokenizer is None or getattr(processor, "image_processor", None) is None:
        raise UserInputError(f"{text}: its processor lacks a tokenizer or an image processor")
    pad_on_the_left(tokenizer)
    return model.eval(), processor


def load_image(path: str | Path):
    """An RGB PIL image from a file; a missing or unreadable file raises UserInputError naming it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except FileNotFoundError:
        raise UserInputError(f"{path}: image not found") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise UserInputError(f"{path}: cannot read the image ({exc})") from None


def video_frames(path: str | Path, count: int) -> list:
    """`count` frames sampled uniformly (the middle of `count` equal segments) from a video file (with
    PyAV installed) or from a folder of its frame images, sorted by name: `path` itself or, when
    the video file is absent, the folder of that name without its suffix (``clip.mp4`` → ``clip/``)."""
    path = Path(path)
    folder = path if path.is_dir() else path.with_suffix("")
    if not path.is_file() and folder.is_dir():
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise UserInputError(f"{folder}: no frame images ({', '.join(IMAGE_SUFFIXES)})")
        return [load_image(files[i]) for i in _uniform(len(files), count)]
    if not path.is_file():
        raise UserInputError(f"{path}: video not found (a video file, or a folder {folder.name}/ of its frames)")
    try:
        import av
    except ImportError:
        raise UserInputError(f"{path}: decoding video files needs PyAV (pip install av); or extract the frames "
                             f"into a folder {path.with_suffix('')}/") from None
    with av.open(str(path)) as container:
        frames = [frame.to_image().convert("RGB") for frame in container.decode(video=0)]
    if not frames:
        raise UserInputError(f"{path}: no video frames")
    return [frames[i] for i in _uniform(len(frames), count)]


def _uniform(total: int, count: int) -> list[int]:
    return [min(total - 1, int((2 * k + 1) * total / (2 * count))) for k in range(count)]


def render_prompt(processor, request: VisionRequest) -> str:
    """The request as text for the processor: one image placeholder per image, then the user's text,
    through the processor's chat template with content parts (LLaVA's), or else, when the processor
    has none or its template is a text-only one that does not place the images, the tokenizer's."""
    if getattr(processor, "chat_template", None):
        content = [{"type": "image"} for _ in request.images] + [{"type": "text", "text": request.text}]
        text = processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True,
                                             tokenize=False)
        if text.count(processor.image_token) == len(request.images) and request.text in text:
            return text
    placeholders = "".join(f"{processor.image_token}\n" for _ in request.images)
    return processor.tokenizer.apply_chat_template([{"role": "user", "content": placeholders + request.text}],
                                                   add_generation_prompt=True, tokenize=False)


@torch.no_grad()
def generate_vlm(model, processor, requests: Sequence[VisionRequest], *, max_new_tokens: int, batch_size: int,
                 description: str = "generate") -> list[str]:
    """One greedy reply per request, in input order."""
    tokenizer = processor.tokenizer
    prompts = [render_prompt(processor, request) for request in requests]
    lengths = [len(tokenizer(prompt, add_special_tokens=False)["input_ids"]) for prompt in prompts]
    order = sorted(range(len(prompts)), key=lambda i: (lengths[i], i))
    outputs: list[str] = [""] * len(prompts)
    model.eval()
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    with progress(total=len(prompts), description=description) as bar:
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            texts = [prompts[i] for i in chunk]
            images = [image for i in chunk for image in requests[i].images]
            # A chat template that writes the bos token itself must not get a second one from the tokenizer.
            bos = tokenizer.bos_token
            add_special_tokens = not (bos and all(text.startswith(bos) for text in texts))
            batch = processor(images=images or None, text=texts, padding=True, padding_side="left",
                              return_tensors="pt", add_special_tokens=add_special_tokens)
            batch = {key: value.to(device, dtype=dtype if value.is_floating_point() else value.dtype)
                     for key, value in batch.items()}
            generated = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                       pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
            replies = tokenizer.batch_decode(generated[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
            for index, reply in zip(chunk, replies):
                outputs[index] = reply.strip()
            bar.advance(len(chunk))
    return outputs
