"""The real-scale Stable Diffusion 1.5 recipes (recipes/papers/sd15-*.yaml) end to end on a tiny random pipeline of
SD1.5's architectures (UNet2DConditionModel, AutoencoderKL, CLIPTextModel and CLIPTokenizer, ε-prediction on the
scaled-linear schedule): each trains its method with the paper's settings, saves a pipeline that diffusers'
``DiffusionPipeline.from_pretrained`` loads unchanged (VAE included), and is scored at the recipe's steps."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from distillbench.cli.main import main
from distillbench.pocket import t2i_zoo

REPO = Path(__file__).resolve().parents[2]
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def tiny_clip_tokenizer(folder: Path):
    """A CLIPTokenizer over single letters (no merges): CLIP's tokenizer class and files, built offline."""
    from transformers import CLIPTokenizer

    tokens = ["<|startoftext|>", "<|endoftext|>", *LETTERS, *(letter + "</w>" for letter in LETTERS)]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({token: index for index, token in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=16)


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory) -> Path:
    """A tiny random Stable Diffusion folder (16 px images, 8×8×4 latents), written by diffusers' save_pretrained."""
    from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    root = tmp_path_factory.mktemp("sd")
    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
                                block_out_channels=(32, 64), norm_num_groups=8, cross_attention_dim=32,
                                attention_head_dim=8, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))
    vae = AutoencoderKL(block_out_channels=(16, 32), latent_channels=4, norm_num_groups=8, sample_size=16,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2)
    tokenizer = tiny_clip_tokenizer(root / "vocab")
    text_encoder = CLIPTextModel(CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                                num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=16,
                                                bos_token_id=0, eos_token_id=1, pad_token_id=1))
    scheduler = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                              prediction_type="epsilon", clip_sample=False, steps_offset=1)
    folder = root / "pipeline"
    StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                            safety_checker=None, feature_extractor=None,
                            requires_safety_checker=False).save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="module")
def tiny_pool(tmp_path_factory) -> Path:
    """A {prompt, image} JSONL of 8 pocket scenes at 24 px (so the reader crops and resizes them to 16)."""
    folder = tmp_path_factory.mktemp("pool")
    texts, images = t2i_zoo.shapes_scenes(8, seed=0, image_size=24)
    for index, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{index}.png")
    (folder / "pool.jsonl").write_text("".join(json.dumps({"prompt": text, "image": f"{index}.png"}) + "\n"
                                               for index, text in enumerate(texts)))
    return folder / "pool.jsonl"


def tiny_run(recipe_name: str, teacher: Path, pool: Path, tmp_path: Path) -> dict:
    """The paper recipe with its method and sampling settings, on the tiny pipeline: two steps of two prompts,
    its benchmarks' steps and guidance on the pocket CLIP score (the real FID and CLIP score need COCO files)."""
    recipe = yaml.safe_load((REPO / "recipes" / "papers" / recipe_name).read_text())
    sampling = [{key: entry[key] for key in ("steps", "guidance")} for entry in recipe["benchmarks"]]
    unique = [dict(pair) for pair in dict.fromkeys(tuple(entry.items()) for entry in sampling)]
    recipe.update(teacher=str(teacher), student=str(teacher), output_dir=str(tmp_path / "out"),
                  data={**recipe["data"], "source": str(pool), "prompts": 8},
                  budget={**recipe["budget"], "steps": 2, "batch_size": 2, "warmup_steps": 0,
                          "checkpoint_every": 1},
                  benchmarks=[{"name": "pocket-clip-score", "samples": 2, **entry} for entry in unique])
    path = tmp_path / recipe_name
    path.write_text(yaml.safe_dump(recipe))
    assert main(["run", str(path)]) == 0
    return json.loads((tmp_path / "out" / "leaderboard.json").read_text())


@pytest.mark.parametrize("recipe_name", ["sd15-dmd2.yaml", "sd15-sid-lsg.yaml", "sd15-lcm.yaml"])
def test_the_sd15_recipes_run_end_to_end_on_a_tiny_random_sd_pipeline(recipe_name, tiny_sd, tiny_pool, tmp_path):
    from diffusers import AutoencoderKL, DiffusionPipeline, StableDiffusionPipeline

    board = tiny_run(recipe_name, tiny_sd, tiny_pool, tmp_path)
    method = next(row for row in board["rows"] if row["kind"] == "method")
    assert method["status"] == "complete" and method["cost"]["steps"] == 2
    assert all(name.startswith("pocket-clip-score") for name in method["metrics"])
    folder = next(path for path in (tmp_path / "out" / "cells").iterdir()
                  if path.is_dir() and not path.name.startswith("teacher"))  # not the cells' lock files
    pipeline = DiffusionPipeline.from_pretrained(str(folder / "model"))  # unchanged: a latent pipeline has its VAE
    assert isinstance(pipeline, StableDiffusionPipeline) and isinstance(pipeline.vae, AutoencoderKL)
    image = pipeline("a red circle", num_inference_steps=1, guidance_scale=1.0, output_type="np",
                     generator=torch.Generator().manual_seed(0)).images
    assert image.shape == (1, 16, 16, 3) and np.isfinite(image).all()
    teacher = DiffusionPipeline.from_pretrained(str(tiny_sd))
    assert any(not torch.equal(a, b) for a, b in zip(pipeline.unet.parameters(), teacher.unet.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(pipeline.vae.parameters(), teacher.vae.parameters()))


def test_the_prompt_pool_file_is_cropped_resized_and_encoded_by_the_vae(tiny_sd, tiny_pool):
    from distillbench.kinds.diffusion.images import load_image_pipeline
    from distillbench.kinds.diffusion.kind import read_prompt_images

    texts, images = read_prompt_images(tiny_pool, 5, 16)
    assert len(texts) == 5 and images.shape == (5, 16, 16, 3) and images.dtype == np.uint8
    model, pipeline = load_image_pipeline(tiny_sd)
    assert pipeline.settings["image_size"] == 16 and pipeline.settings["context_length"] == 16
    latents = pipeline.to_model_space(images)
    assert latents.shape == (5, 4, 8, 8)
    pixels = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        expected = pipeline.vae.encode(pixels).latent_dist.mean * pipeline.vae.config.scaling_factor
    assert torch.allclose(latents, expected, atol=1e-5)


def test_a_pool_files_content_enters_the_cell_key(tiny_sd, tiny_pool, tmp_path):
    import shutil

    from distillbench.core.recipe import load_recipe
    from distillbench.kinds.diffusion.kind import Diffusion

    pool = Path(shutil.copytree(tiny_pool.parent, tmp_path / "pool")) / tiny_pool.name  # a copy: it is edited below
    recipe_path = tmp_path / "r.yaml"
    raw = yaml.safe_load((REPO / "recipes" / "papers" / "sd15-lcm.yaml").read_text())
    raw.update(teacher=str(tiny_sd), student=str(tiny_sd), data={**raw["data"], "source": str(pool)},
               benchmarks=[{"name": "pocket-clip-score", "samples": 2}])
    recipe_path.write_text(yaml.safe_dump(raw))
    kind = Diffusion(load_recipe(recipe_path), tmp_path)
    before = kind.data_key(None)["source_hash"]
    image = pool.parent / "0.png"
    Image.fromarray(np.zeros((24, 24, 3), dtype=np.uint8)).save(image)  # one image of the pool changes
    assert kind.data_key(None)["source_hash"] != before
