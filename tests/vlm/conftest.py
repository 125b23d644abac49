"""A tiny randomly initialised LLaVA (CLIP vision tower, projector, Llama language model) with a real
processor (CLIP image processor + the pocket character tokenizer), built offline and saved the real way.

Unlike the pocket VLM zoo (class token kept, last layer), it uses LLaVA-1.5's own feature settings
("default" strategy, layer -2), so the harness is tested on the configuration real checkpoints have."""

from pathlib import Path

import numpy as np
import pytest

from distillbench.pocket.vlm_zoo import CHAT_TEMPLATE, IMAGE_TOKEN

IMAGE_SIZE, PATCH = 28, 7


def build_tiny_llava(directory: Path, seed: int = 0) -> Path:
    import torch
    from transformers import (CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor)

    from distillbench.pocket.tokenizer import ROLE_TOKENS, build_char_tokenizer

    tokenizer = build_char_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": [*ROLE_TOKENS, IMAGE_TOKEN]})
    image_processor = CLIPImageProcessor(size={"shortest_edge": IMAGE_SIZE},
                                         crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    # CLIP adds a CLS token; the "default" strategy drops it: (28 / 7)^2 = 16 image tokens per image.
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=PATCH,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               chat_template=CHAT_TEMPLATE)
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                              image_size=IMAGE_SIZE, patch_size=PATCH, projection_dim=32)
    text = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                       pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                       eos_token_id=tokenizer.eos_token_id)
    config = LlavaConfig(vision_config=vision, text_config=text,
                         image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
                         image_seq_length=(IMAGE_SIZE // PATCH) ** 2, vision_feature_select_strategy="default",
                         vision_feature_layer=-2)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def make_image(path: Path, seed: int, size: tuple[int, int] = (40, 32)) -> Path:
    """A random RGB picture (different seeds, different content), saved as a file."""
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture(scope="session")
def tiny_llava(tmp_path_factory) -> Path:
    return build_tiny_llava(tmp_path_factory.mktemp("tiny-llava"))


@pytest.fixture
def image_file():
    """make_image(path, seed, size) as a fixture."""
    return make_image
