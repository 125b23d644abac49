"""CLIP score: the conventions against torchmetrics' formula, the pocket CLIP's colour sense, score-only grading."""

import json
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from distillbench.benchmarks.clip_score import clip_scores
from distillbench.core.score_only import score_predictions
from distillbench.pocket import shapes_clip
from distillbench.pocket.shapes import generate


def _embeddings(seed=0, count=32, dim=12, alignment=0.5):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(count, dim, generator=generator)
    texts = images * alignment + torch.randn(count, dim, generator=generator)
    return images, texts


def _torchmetrics_scores(image_features, text_features):
    """torchmetrics' own update step on these embeddings: a stand-in model returns them as its features."""
    from torchmetrics.functional.multimodal.clip_score import _clip_score_update

    model = SimpleNamespace(to=lambda device: model, config=SimpleNamespace(),
                            get_image_features=lambda pixels: image_features,
                            get_text_features=lambda ids, mask: text_features)
    processor = lambda text=None, images=None, **kwargs: (  # noqa: E731
        {"pixel_values": torch.zeros(len(images), 3, 2, 2)} if images is not None
        else {"input_ids": torch.zeros(len(text), 3, dtype=torch.long), "attention_mask": torch.ones(len(text), 3)})
    images = [torch.zeros(3, 2, 2) for _ in range(len(image_features))]
    texts = [f"caption {i}" for i in range(len(text_features))]
    scores, count = _clip_score_update(images, texts, model, processor)
    return scores, count


def test_torchmetrics_convention_matches_torchmetrics_on_the_same_embeddings():
    image_features, text_features = _embeddings()
    ours = clip_scores(image_features, text_features, "torchmetrics")
    theirs, count = _torchmetrics_scores(image_features, text_features)
    assert count == len(ours)
    torch.testing.assert_close(ours, theirs.double(), rtol=1e-5, atol=1e-4)
    # torchmetrics' corpus value is max(mean, 0), clamped after averaging: our row mean when it is positive
    corpus = torch.max(theirs.sum(0) / count, torch.zeros(()))
    assert ours.mean() > 0 and float(ours.mean()) == pytest.approx(float(corpus), rel=1e-5)


def test_the_other_conventions():
    image_features, text_features = _embeddings(seed=1, alignment=0.1)
    cosine = torch.nn.functional.cosine_similarity(image_features, text_features).double()
    assert (cosine < 0).any()  # the clamp of CLIP-S acts per image
    torch.testing.assert_close(clip_scores(image_features, text_features, "cosine"), cosine, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(clip_scores(image_features, text_features, "clip-s"), 2.5 * cosine.clamp(min=0),
                               rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError):
        clip_scores(image_features, text_features, "hessel")


@pytest.fixture(scope="module")
def pocket_clip():
    model, tokenizer, config = shapes_clip.load(shapes_clip.default_directory())
    return model, tokenizer, config


def test_pocket_clip_is_open_clip_and_small(pocket_clip):
    from open_clip.model import CLIP

    model, _, config = pocket_clip
    assert isinstance(model, CLIP) and config["parameters"] < 150_000


def test_pocket_clip_prefers_the_true_caption_to_a_wrong_colour(pocket_clip):
    """On 200 test scenes, the true caption outscores the same caption with one colour swapped for an absent one.
    The shipped model does so on all 500 held-out scenes of its config.json; 0.95 leaves room for another draw
    (a model blind to colour would be near 0.5)."""
    model, tokenizer, config = pocket_clip
    scenes = generate("test", 200, seed=7)
    rng = random.Random(7)
    images = shapes_clip.embed_images(model, [s.render() for s in scenes])
    true = (images * shapes_clip.embed_texts(model, tokenizer, [s.caption for s in scenes])).sum(-1)
    wrong = (images * shapes_clip.embed_texts(model, tokenizer, [shapes_clip.wrong_color_caption(s, rng)
                                                                  for s in scenes])).sum(-1)
    assert float((true > wrong).float().mean()) >= 0.95


def test_pocket_clip_score_through_score_only(tmp_path):
    """Each scene's own image scores higher against its caption than another scene's image does."""
    scenes = generate("test", 12, seed=0)
    rows = {}
    for name, images in (("matched", [s.render() for s in scenes]),
                         ("shuffled", [s.render() for s in scenes[1:] + scenes[:1]])):
        lines = []
        for index, image in enumerate(images):
            path = tmp_path / f"{name}-{index:05}.png"
            Image.fromarray(image).save(path)
            lines.append(json.dumps({"id": f"{index:05}", "response": str(path)}))
        (tmp_path / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
        rows[name] = score_predictions("pocket-clip-score", tmp_path / f"{name}.jsonl", {"samples": 12})
    matched, shuffled = (rows[name]["metrics"]["clip_score"] for name in ("matched", "shuffled"))
    assert matched["mean"] > shuffled["mean"] and matched["n"] == 12
    assert rows["matched"]["protocol"]["convention"] == "torchmetrics"
    cosine = score_predictions("pocket-clip-score", tmp_path / "matched.jsonl", {"samples": 12, "convention": "cosine"})
    assert cosine["metrics"]["clip_score"]["mean"] == pytest.approx(matched["mean"] / 100, rel=1e-9)


def test_clip_score_through_open_clip_from_a_local_checkpoint(tmp_path, pocket_clip):
    """The real-model path: open_clip.create_model_and_transforms with a local checkpoint of a registered config."""
    import open_clip

    config = json.loads((shapes_clip.default_directory() / shapes_clip.MODEL_CONFIG).read_text())
    config["text_cfg"].update(vocab_size=49408, context_length=77, pool_type="argmax")  # open_clip's own tokenizer
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "distillbench-test-clip.json").write_text(json.dumps(config))
    open_clip.add_model_config(tmp_path / "configs")
    torch.manual_seed(0)
    model = open_clip.create_model("distillbench-test-clip")
    checkpoint = tmp_path / "weights.pt"
    torch.save(model.state_dict(), checkpoint)
    image = tmp_path / "image.png"
    Image.fromarray(np.asarray(generate("test", 1)[0].render())).save(image)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"id": "a", "prompt": "a photo of a circle"}) + "\n")
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text(json.dumps({"id": "a", "response": str(image)}) + "\n")
    options = {"prompts": str(prompts), "pretrained": str(checkpoint), "model": "distillbench-test-clip",
               "convention": "cosine", "prefix": "A photo depicts "}
    results = score_predictions("clip-score", predictions, options)
    value = results["metrics"]["clip_score"]["mean"]
    with torch.no_grad():
        _, _, preprocess = open_clip.create_model_and_transforms("distillbench-test-clip", pretrained=str(checkpoint))
        expected = torch.nn.functional.cosine_similarity(
            model.encode_image(preprocess(Image.open(image)).unsqueeze(0)),
            model.encode_text(open_clip.get_tokenizer("distillbench-test-clip")(["A photo depicts a photo of a circle"])))
    assert value == pytest.approx(float(expected), abs=1e-5)
    assert results["protocol"]["prefix"] == "A photo depicts " and results["protocol"]["model"] == "distillbench-test-clip"


def test_the_default_model_runs_openais_vit_l_14_weights_with_quickgelu():
    # with a local checkpoint open_clip cannot infer QuickGELU; plain "ViT-L-14" ran OpenAI's weights with GELU
    import dataclasses

    import open_clip

    from distillbench.benchmarks.clip_score import ClipScore

    default = {f.name: f.default for f in dataclasses.fields(ClipScore)}["model"]
    config = open_clip.get_model_config(default)
    assert config["quick_gelu"] is True and config["vision_cfg"]["width"] == 1024 and config["embed_dim"] == 768
