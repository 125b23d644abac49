"""The pocket VLM zoo: a teacher and a much smaller student init, real LLaVA checkpoints trained on pocket-shapes.

Each model is a `transformers` ``LlavaForConditionalGeneration`` (a CLIP vision tower, LLaVA's
two-layer GELU projector, a Llama language model) saved with ``save_pretrained`` (safetensors)
beside a real ``LlavaProcessor``: a ``CLIPImageProcessor`` built in code (32×32, CLIP's mean and
std) and the pocket character tokenizer (`distillbench.pocket.tokenizer`) extended with an
``<image>`` token and a LLaVA-style chat template whose image parts become placeholders. It loads
with `distillbench.kinds.vlm.models.load_vlm` (``AutoModelForImageTextToText`` + ``AutoProcessor``)
like any hub VLM.

Both are trained from scratch in two stages, as LLaVA is built on a trained CLIP:

1. the vision tower alone (`pretrain_vision`): linear probes on its last layer learn, per patch,
   which (colour, shape) object covers it, and on the class token, which objects the image holds
   and how many of each shape (the class token is kept as an image token: "full" strategy);
2. the whole LLaVA, vision tower frozen, on train-split conversations of the pocket-shapes VLM
   world (`shapes_vlm.training_conversations`: captions, VQA with the annotators' most common
   answer, existence questions with random, popular and adversarial absent objects, yes/no
   questions on 4-frame clips), loss on the assistant turns only (AdamW, linear warm-up, cosine
   decay, batches of similar length, one CPU thread).

The teacher has the larger tower and language model and trains longer; the student init (about a
quarter of the parameters) gets a briefly trained tower and a short second stage, so it leans on
the world's object priors: it answers fewer questions right and hallucinates more (calibration in
``leaderboards/pocket-vlm.md``).

Copies trained by exactly ``python -m distillbench.pocket.vlm_zoo --export`` ship in
``distillbench/pocket/vlm_zoo/<name>/`` (with ``zoo.json``: the spec, its hash, the sha256 of
every file, training time and final loss) and are used while their spec hash matches; otherwise
`model_dir` trains the model into the user cache. ``DISTILLBENCH_ZOO_SCALE=tiny`` selects tiny
specs that train in seconds (tests).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from distillbench.pocket import builds, shapes_vlm
from distillbench.pocket.shapes import MAX_COUNT, SHAPES, Shape, render, shape_mask
from distillbench.pocket.tokenizer import ROLE_TOKENS, build_char_tokenizer
from distillbench.pocket.zoo import cache_root

PACKAGED = Path(__file__).parent / "vlm_zoo"
MANIFEST = "zoo.json"
IMAGE_TOKEN = "<image>"
# Part of every spec hash: bump when the world's training conversations or the loop change what a spec builds.
FORMAT_VERSION = 1

# LLaVA-style: a user turn's content is a list of parts; each image part becomes one placeholder line.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'user' %}<|user|>{% else %}<|assistant|>{% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>\n"
    "{% else %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{% if message['role'] != 'user' %}{{ eos_token }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@dataclass(frozen=True)
class VLMSpec:
    name: str
    description: str
    # CLIP vision tower
    vision_hidden: int
    vision_layers: int
    vision_heads: int
    patch_size: int
    # Llama language model
    text_hidden: int
    text_layers: int
    text_heads: int
    text_intermediate: int
    # stage 1: the vision tower alone, on which objects each patch shows
    vision_steps: int
    # stage 2: the whole LLaVA (the vision tower frozen when `freeze_vision`) on conversations
    images: int  # train-split image conversations
    videos: int  # train-split clip conversations
    steps: int
    freeze_vision: bool = True
    vision_images: int = 4000
    vision_batch_size: int = 64
    vision_learning_rate: float = 3e-3
    batch_size: int = 32
    learning_rate: float = 2e-3
    warmup_steps: int = 30
    weight_decay: float = 0.01
    seed: int = 0
    image_size: int = shapes_vlm.IMAGE_SIZE
    format_version: int = FORMAT_VERSION

    def spec_hash(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]

    @property
    def image_tokens(self) -> int:
        """Patches, plus CLIP's class token, which the "full" feature strategy keeps."""
        return (self.image_size // self.patch_size) ** 2 + 1


FULL_SPECS = {
    "teacher": VLMSpec("teacher", "pocket VLM teacher: LLaVA, CLIP 2 layers × 64 (patch 8), Llama 3 layers × 64",
                       vision_hidden=64, vision_layers=2, vision_heads=4, patch_size=8,
                       text_hidden=64, text_layers=3, text_heads=4, text_intermediate=256,
                       vision_steps=1500, vision_images=20000, images=6000, videos=800, steps=1400, batch_size=16),
    "student-init": VLMSpec("student-init", "pocket VLM student init: LLaVA, CLIP 1 layer × 32 (patch 8), "
                            "Llama 2 layers × 48", vision_hidden=32, vision_layers=1, vision_heads=2, patch_size=8,
                            text_hidden=48, text_layers=2, text_heads=4, text_intermediate=128,
                            vision_steps=150, vision_images=4000, images=2000, videos=200, steps=600, batch_size=16),
}
TINY_SPECS = {
    name: replace(spec, description=spec.description + " (tiny test scale)", vision_hidden=16, vision_layers=1,
                  vision_heads=2, text_hidden=16, text_layers=1, text_heads=2, text_intermediate=32, vision_steps=2,
                  vision_images=16, vision_batch_size=8, images=24, videos=8, steps=3, batch_size=8, warmup_steps=1)
    for name, spec in FULL_SPECS.items()
}


def specs() -> dict[str, VLMSpec]:
    return TINY_SPECS if os.environ.get("DISTILLBENCH_ZOO_SCALE") == "tiny" else FULL_SPECS


# --- processor and model -----------------------------------------------------------------------
def build_processor(spec: VLMSpec):
    """A LlavaProcessor: CLIP image processor (the world's size, CLIP's mean and std) and the pocket
    character tokenizer with an ``<image>`` token and the LLaVA-style chat template."""
    from transformers import CLIPImageProcessor, LlavaProcessor

    tokenizer = build_char_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": [*ROLE_TOKENS, IMAGE_TOKEN]})
    image_processor = CLIPImageProcessor(size={"shortest_edge": spec.image_size},
                                         crop_size={"height": spec.image_size, "width": spec.image_size})
    # CLIP adds a class token and the "full" strategy keeps it: (size / patch)^2 + 1 image tokens per image.
    return LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=spec.patch_size,
                          vision_feature_select_strategy="full", num_additional_image_tokens=1,
                          chat_template=CHAT_TEMPLATE)


def build_model(spec: VLMSpec, processor):
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    tokenizer = processor.tokenizer
    vision = CLIPVisionConfig(hidden_size=spec.vision_hidden, intermediate_size=4 * spec.vision_hidden,
                              num_hidden_layers=spec.vision_layers, num_attention_heads=spec.vision_heads,
                              image_size=spec.image_size, patch_size=spec.patch_size, projection_dim=spec.vision_hidden)
    text = LlamaConfig(vocab_size=len(tokenizer), hidden_size=spec.text_hidden, intermediate_size=spec.text_intermediate,
                       num_hidden_layers=spec.text_layers, num_attention_heads=spec.text_heads,
                       num_key_value_heads=spec.text_heads, max_position_embeddings=1024,
                       pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                       eos_token_id=tokenizer.eos_token_id)
    # The last vision layer feeds the projector (with one or two layers, LLaVA's −2 would skip most of the
    # tower), class token included ("full"): stage 1 trains it to summarise the whole image.
    config = LlavaConfig(vision_config=vision, text_config=text,
                         image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
                         image_seq_length=spec.image_tokens, vision_feature_select_strategy="full",
                         vision_feature_layer=-1)
    torch.manual_seed(spec.seed)
    model = LlavaForConditionalGeneration(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model


# --- data --------------------------------------------------------------------------------------
def messages(conversation: shapes_vlm.Conversation) -> list[dict]:
    """The conversation as chat messages, the frames as image parts of the first user turn."""
    result = []
    for index, (user, assistant) in enumerate(conversation.turns):
        parts = [{"type": "image"} for _ in conversation.frames] if index == 0 else []
        result.append({"role": "user", "content": parts + [{"type": "text", "text": user}]})
        result.append({"role": "assistant", "content": [{"type": "text", "text": assistant}]})
    return result


def pixel_values(frames, processor) -> torch.Tensor:
    """The image processor's output for pocket frames, computed directly: at the world's size
    CLIPImageProcessor's resize and centre crop leave the pixels as they are, so it is a rescale to
    [0, 1] and CLIP's normalisation (a test holds the two equal)."""
    import numpy as np

    image_processor = processor.image_processor
    mean = torch.tensor(image_processor.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(image_processor.image_std).view(1, 3, 1, 1)
    pixels = np.stack([render([Shape(*shape) for shape in frame], shapes_vlm.IMAGE_SIZE) for frame in frames])
    return (torch.from_numpy(pixels).permute(0, 3, 1, 2).float() * image_processor.rescale_factor - mean) / std


def encode(conversation: shapes_vlm.Conversation, processor) -> dict:
    """input_ids, labels (the assistant replies and their eos; −100 elsewhere) and pixel_values, as the
    processor makes them (the chat template rendered, each ``<image>`` expanded to the image tokens)."""
    text = processor.apply_chat_template(messages(conversation), tokenize=False)
    side = processor.image_processor.crop_size["height"] // processor.patch_size
    tokens = side * side + processor.num_additional_image_tokens - (processor.vision_feature_select_strategy == "default")
    text = text.replace(IMAGE_TOKEN, IMAGE_TOKEN * tokens)
    tokenizer = processor.tokenizer
    input_ids = torch.tensor(tokenizer(text, add_special_tokens=False)["input_ids"])
    assistant, eos = tokenizer.convert_tokens_to_ids("<|assistant|>"), tokenizer.eos_token_id
    labels, inside = torch.full_like(input_ids, -100), False
    for position, token in enumerate(input_ids.tolist()):
        if inside:
            labels[position] = token
            inside = token != eos
        elif token == assistant:
            inside = True
    return {"input_ids": input_ids, "labels": labels, "pixel_values": pixel_values(conversation.frames, processor)}


def collate(examples: list[dict], pad_id: int) -> dict:
    length = max(len(e["input_ids"]) for e in examples)
    input_ids = torch.full((len(examples), length), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), length), -100, dtype=torch.long)
    attention = torch.zeros((len(examples), length), dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example["input_ids"])
        input_ids[row, :n], labels[row, :n], attention[row, :n] = example["input_ids"], example["labels"], 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention,
            "pixel_values": torch.cat([e["pixel_values"] for e in examples])}


# --- training ----------------------------------------------------------------------------------
def patch_objects(frame: list[list], patch_size: int, image_size: int = shapes_vlm.IMAGE_SIZE) -> torch.Tensor:
    """[patches] (row-major): for each patch, the index in `OBJECTS` of the object covering most of its
    pixels, or ``len(OBJECTS)`` where no object touches it."""
    grid = image_size // patch_size
    coverage = torch.zeros(len(shapes_vlm.OBJECTS) + 1, grid * grid)
    coverage[-1] = 0.5  # background wins only where no object has a pixel
    for kind, color, x, y, side in frame:
        mask = torch.zeros(image_size, image_size)
        mask[y:y + side, x:x + side] = torch.from_numpy(shape_mask(kind, side).astype("float32"))
        pixels = mask.view(grid, patch_size, grid, patch_size).sum(dim=(1, 3)).flatten()
        index = shapes_vlm.OBJECTS.index((color, kind))
        coverage[index] = torch.maximum(coverage[index], pixels)
    return coverage.argmax(dim=0)


def scene_targets(frame: list[list]) -> tuple[torch.Tensor, torch.Tensor]:
    """(presence [30], counts [3]): which objects the image shows, and how many of each shape."""
    presence = torch.zeros(len(shapes_vlm.OBJECTS))
    counts = torch.zeros(len(SHAPES), dtype=torch.long)
    for kind, color, *_ in frame:
        presence[shapes_vlm.OBJECTS.index((color, kind))] = 1
        counts[SHAPES.index(kind)] += 1
    return presence, counts


def pretrain_vision(model, processor, spec: VLMSpec, log=print) -> float:
    """Stage 1, the vision tower alone (as LLaVA starts from a trained CLIP), on `vision_images` train
    scenes: linear probes on its last layer learn, per patch, which object covers most of it (or none),
    and on the class token, which objects the image shows and how many of each shape there are
    (cross-entropy over the 31 patch classes and over counts 0–4, binary cross-entropy summed over
    the 30 objects). Returns the final loss; the probes are discarded."""
    if spec.vision_steps == 0:
        return float("nan")
    vision = model.model.vision_tower
    patch_probe = torch.nn.Linear(spec.vision_hidden, len(shapes_vlm.OBJECTS) + 1)
    presence_probe = torch.nn.Linear(spec.vision_hidden, len(shapes_vlm.OBJECTS))
    count_probe = torch.nn.Linear(spec.vision_hidden, len(SHAPES) * (MAX_COUNT + 1))
    probes = [patch_probe, presence_probe, count_probe]
    frames = [shapes_vlm.payload(scene.shapes) for scene in shapes_vlm.scenes("train", spec.vision_images, spec.seed + 2)]
    images = pixel_values(frames, processor)
    patch_targets = torch.stack([patch_objects(frame, spec.patch_size, spec.image_size) for frame in frames])
    presence_targets, count_targets = (torch.stack(t) for t in zip(*(scene_targets(frame) for frame in frames)))
    optimizer = torch.optim.AdamW([*vision.parameters(), *(p for probe in probes for p in probe.parameters())],
                                  lr=spec.vision_learning_rate)
    generator = torch.Generator().manual_seed(spec.seed)
    vision.train()
    losses = []
    bce, ce = torch.nn.functional.binary_cross_entropy_with_logits, torch.nn.functional.cross_entropy
    for step in range(spec.vision_steps):
        batch = torch.randint(len(frames), (spec.vision_batch_size,), generator=generator)
        hidden = vision(pixel_values=images[batch]).last_hidden_state
        counts = count_probe(hidden[:, 0]).view(-1, MAX_COUNT + 1)
        patches = patch_probe(hidden[:, 1:]).flatten(0, 1)
        # Presence summed over the 30 objects: a mean over them leaves a present object almost no gradient.
        presence = bce(presence_probe(hidden[:, 0]), presence_targets[batch], reduction="sum") / len(batch)
        loss = ce(patches, patch_targets[batch].flatten()) + presence + ce(counts, count_targets[batch].flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        if log and (step + 1) % 200 == 0:
            log(f"{spec.name} vision: step {step + 1}/{spec.vision_steps}, loss {sum(losses[-200:]) / 200:.4f}")
    tail = losses[-min(50, len(losses)):]
    return sum(tail) / len(tail)


def length_grouped_batches(lengths: list[int], batch_size: int, rng: random.Random, window: int = 16) -> list[list[int]]:
    """One epoch of batches: shuffled, then sorted by length within windows of `window` batches, so a
    batch pads little (a clip's four frames make it twice an image's length); the batch order is shuffled."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches = []
    for start in range(0, len(order), batch_size * window):
        group = sorted(order[start:start + batch_size * window], key=lambda i: lengths[i])
        batches += [group[i:i + batch_size] for i in range(0, len(group), batch_size)]
    rng.shuffle(batches)
    return batches


def train(spec: VLMSpec, log=print):
    """(model, processor, report): `spec` trained from scratch, the vision tower first, then the whole
    LLaVA on its train-split conversations."""
    started = time.perf_counter()
    processor = build_processor(spec)
    model = build_model(spec, processor)
    vision_loss = pretrain_vision(model, processor, spec, log)
    vision_seconds = time.perf_counter() - started
    conversations = shapes_vlm.training_conversations(spec.images, spec.videos, seed=spec.seed)
    examples = [encode(c, processor) for c in conversations]
    model.train()
    if spec.freeze_vision:
        model.model.vision_tower.requires_grad_(False)
        model.model.vision_tower.eval()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in trainable if p.ndim >= 2 and "embed" not in n]
    no_decay = [p for n, p in trainable if not (p.ndim >= 2 and "embed" not in n)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": spec.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=spec.learning_rate)

    def schedule(step: int) -> float:
        if step < spec.warmup_steps:
            return (step + 1) / spec.warmup_steps
        progress = (step - spec.warmup_steps) / max(1, spec.steps - spec.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    rng = random.Random(f"pocket-vlm-zoo/{spec.name}/{spec.seed}")
    batches: list[list[int]] = []
    losses = []
    for step in range(spec.steps):
        if not batches:
            batches = length_grouped_batches([len(e["input_ids"]) for e in examples], spec.batch_size, rng)
        batch = collate([examples[i] for i in batches.pop()], processor.tokenizer.pad_token_id)
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.detach()))
        if log and (step + 1) % 50 == 0:
            log(f"{spec.name}: step {step + 1}/{spec.steps}, loss {sum(losses[-50:]) / len(losses[-50:]):.4f}, "
                f"{time.perf_counter() - started:.0f} s")
    model.eval()
    tail = losses[-min(50, len(losses)):]
    report = {"train_seconds": round(time.perf_counter() - started, 1),
              "vision_seconds": round(vision_seconds, 1), "vision_final_loss": round(vision_loss, 4),
              "final_loss": round(sum(tail) / len(tail), 4),
              "parameters": sum(p.numel() for p in model.parameters()), "conversations": len(examples)}
    return model, processor, report


# --- saving, loading, verifying -----------------------------------------------------------------
def save(model, processor, spec: VLMSpec, report: dict, directory: Path) -> Path:
    """Write the model, its processor and the manifest into `directory` atomically (staging, then rename)."""

    def write(staging: Path) -> None:
        model.save_pretrained(staging, safe_serialization=True)
        processor.save_pretrained(staging)

    return builds.publish(directory, write, MANIFEST, {
        "name": spec.name, "spec": asdict(spec), "spec_hash": spec.spec_hash(),
        "rebuild": "python -m distillbench.pocket.vlm_zoo --export", **report})


def verify(directory: Path) -> list[str]:
    """Problems with a build (missing manifest, a file whose sha256 differs); empty when sound."""
    return builds.verify(directory, MANIFEST)


def cache_directory(spec: VLMSpec) -> Path:
    return cache_root() / f"vlm-{spec.name}-{spec.spec_hash()}"


def model_dir(name: str) -> Path:
    """The shipped copy of `name` when its spec hash matches, else the user-cache build (trained when missing)."""
    known = specs()
    if name not in known:
        raise ValueError(f"unknown pocket VLM {name!r}; known: {', '.join(known)}")
    spec = known[name]
    packaged = PACKAGED / name
    if (packaged / MANIFEST).is_file() and json.loads((packaged / MANIFEST).read_text())["spec_hash"] == spec.spec_hash():
        problems = verify(packaged)
        if problems:
            raise ValueError(problems[0])
        return packaged
    directory = cache_directory(spec)
    if verify(directory):
        model, processor, report = train(spec, log=None)
        save(model, processor, spec, report, directory)
    return directory


def _build(name: str, target: Path) -> dict:
    spec = specs()[name]
    model, processor, report = train(spec)
    save(model, processor, spec, report, target)
    return report


def main(argv: list[str] | None = None) -> int:
    return builds.command_line(argv, module="distillbench.pocket.vlm_zoo",
                               description="Train the pocket VLM zoo (LLaVA teacher and student init).",
                               build=_build, cache_directory=lambda name: cache_directory(specs()[name]),
                               names=list(FULL_SPECS), packaged=PACKAGED)


if __name__ == "__main__":
    raise SystemExit(main())
