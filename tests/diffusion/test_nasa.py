"""NASA (SNOOPI's negative prompts through cross-attention): the processor against a naive per-head attention,
values and gradients; the method row that trains nothing; and pocket-negative's scoring."""

import json
import math

import numpy as np
import pytest
import torch
import yaml
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from PIL import Image

from distillbench.cli.main import main
from distillbench.core.registry import BENCHMARKS
from distillbench.kinds.diffusion.nasa import NegativeAwayAttnProcessor
from distillbench.pocket.shapes import Scene, Shape


def naive_attention(attn, hidden, context):
    """softmax(Q Kᵀ/√d) V head by head, written out."""
    query, key, value = attn.to_q(hidden), attn.to_k(context), attn.to_v(context)
    heads, width = attn.heads, query.shape[-1] // attn.heads
    outputs = []
    for head in range(heads):
        part = slice(head * width, (head + 1) * width)
        weights = torch.softmax(query[..., part] @ key[..., part].transpose(-1, -2) / math.sqrt(width), dim=-1)
        outputs.append(weights @ value[..., part])
    return torch.cat(outputs, dim=-1)


def naive_nasa(attn, hidden, positive, negative, scale):
    """The paper's eq. 7–9: (Z₊ − α Z₋) through the output projection (its bias once)."""
    steered = naive_attention(attn, hidden, positive) - scale * naive_attention(attn, hidden, negative)
    return attn.to_out[0](steered)


@pytest.fixture
def layer():
    torch.manual_seed(0)
    return Attention(query_dim=16, cross_attention_dim=8, heads=2, dim_head=8).eval()


def test_nasa_equals_the_naive_formula_in_values_and_gradients(layer):
    generator = torch.Generator().manual_seed(1)
    hidden = torch.randn(3, 5, 16, generator=generator, requires_grad=True)
    positive, negative = torch.randn(3, 4, 8, generator=generator), torch.randn(3, 4, 8, generator=generator)
    steered = NegativeAwayAttnProcessor(negative, 0.7)(layer, hidden, positive)
    expected = naive_nasa(layer, hidden, positive, negative, 0.7)
    assert torch.allclose(steered, expected, atol=1e-5)
    weights = torch.randn(steered.shape, generator=generator)
    (ours,) = torch.autograd.grad((steered * weights).sum(), hidden)
    (naive,) = torch.autograd.grad((expected * weights).sum(), hidden)
    assert torch.allclose(ours, naive, atol=1e-5)


def test_nasa_at_scale_zero_is_the_layers_own_attention_and_a_4d_input_round_trips(layer):
    generator = torch.Generator().manual_seed(2)
    hidden = torch.randn(2, 6, 16, generator=generator)
    positive, negative = torch.randn(2, 4, 8, generator=generator), torch.randn(2, 4, 8, generator=generator)
    own = AttnProcessor2_0()(layer, hidden, positive)
    assert torch.allclose(NegativeAwayAttnProcessor(negative, 0.0)(layer, hidden, positive), own, atol=1e-6)
    image = torch.randn(2, 16, 2, 3, generator=generator)  # (batch, channels, height, width), as a UNet's blocks
    flat = image.flatten(2).transpose(1, 2)
    steered = NegativeAwayAttnProcessor(negative, 0.5)(layer, image, positive)
    assert steered.shape == image.shape
    assert torch.allclose(steered.flatten(2).transpose(1, 2), naive_nasa(layer, flat, positive, negative, 0.5),
                          atol=1e-5)
    with pytest.raises(ValueError, match="cross-attention"):
        NegativeAwayAttnProcessor(negative, 0.5)(layer, hidden)  # self-attention: not steered


def write_scene(path, shapes):
    Image.fromarray(Scene(tuple(shapes), {}, 32).render()).save(path)
    return str(path)


def test_pocket_negative_scores_presence_and_avoidance_per_image(tmp_path):
    benchmark = BENCHMARKS.get("pocket-negative")(samples_per_pair=1)
    items = {item["id"]: item for item in benchmark.items()}
    assert len(items) == 30 and items["circle-red/0"]["negative"] == "red"
    red_circle = write_scene(tmp_path / "a.png", [Shape("circle", "red", 16, 16, 10)])
    blue_circle = write_scene(tmp_path / "b.png", [Shape("circle", "blue", 16, 16, 10)])
    red_square_and_blue_circle = write_scene(tmp_path / "c.png", [Shape("square", "red", 8, 8, 6),
                                                                 Shape("circle", "blue", 24, 24, 6)])
    blank = write_scene(tmp_path / "d.png", [])
    scores = {name: benchmark.score(items["circle-red/0"], path).values for name, path in (
        ("red circle", red_circle), ("blue circle", blue_circle), ("both", red_square_and_blue_circle),
        ("blank", blank))}
    assert scores["red circle"] == {"correct": 0.0, "present": 1.0, "avoided": 0.0}
    assert scores["blue circle"] == {"correct": 1.0, "present": 1.0, "avoided": 1.0}
    assert scores["both"] == {"correct": 0.0, "present": 1.0, "avoided": 0.0}  # any object in the colour counts
    assert scores["blank"] == {"correct": 0.0, "present": 0.0, "avoided": 1.0}


def test_a_nasa_row_trains_nothing_and_steers_only_items_with_a_negative_prompt(tiny_t2i_teacher, tmp_path):
    recipe = {"name": "tiny-nasa", "kind": "diffusion", "teacher": str(tiny_t2i_teacher),
              "student": str(tiny_t2i_teacher), "data": {"source": "pocket:shapes-scenes", "prompts": 16},
              "budget": {"steps": 2, "batch_size": 2, "learning_rate": 1e-4, "checkpoint_every": 1}, "seeds": [0],
              "methods": [{"name": "dmd2", "generator_every": 1}, {"name": "nasa", "scale": 1.0,
                                                                   "starts_from": "dmd2"}],
              "benchmarks": [{"name": "pocket-negative", "samples_per_pair": 1, "steps": 1, "guidance": 1.0},
                             {"name": "pocket-geneval", "per_tag": 1, "samples_per_prompt": 1, "steps": 1,
                              "guidance": 1.0}],
              "output_dir": str(tmp_path / "out")}
    path = tmp_path / "nasa.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main(["run", str(path)]) == 0
    rows = {row["row"]: row for row in json.loads((tmp_path / "out" / "leaderboard.json").read_text())["rows"]}
    steered, start = rows["nasa[scale=1.0,starts_from=dmd2]"], rows["dmd2[generator_every=1]"]
    assert steered["cost"]["steps"] == 0 and steered["cost"]["teacher_forwards"] == 0
    folder = next((tmp_path / "out" / "cells").glob("nasa*")) / "model"
    assert json.loads((folder / "t2i.json").read_text())["nasa_scale"] == 1.0
    geneval = "pocket-geneval/correct"  # listed once: named plainly
    assert steered["metrics"][geneval] == start["metrics"][geneval]  # no negative prompt: the same images

    def images(row_folder):
        folders = sorted((tmp_path / "out" / "cells").glob(f"{row_folder}*/images-*"))
        return [np.asarray(Image.open(p)) for f in folders for p in sorted(f.glob("*-*/*.png"))]

    assert any(not np.array_equal(a, b) for a, b in zip(images("nasa"), images("dmd2")))  # steered
