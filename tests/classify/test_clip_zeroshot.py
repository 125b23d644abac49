"""CLIP zero-shot classifiers: logits against open_clip's own embeddings, save/load, the pocket teachers."""

import pytest
import torch

from distillbench.kinds.image_classifier.classifiers import load_classifier, load_directory, save_atomic
from distillbench.kinds.image_classifier.clip_zeroshot import zero_shot_classifier
from distillbench.core.errors import UserInputError
from distillbench.pocket import shapes_clip_zeroshot
from distillbench.pocket.shapes import COLORS, SHAPES
from distillbench.pocket.shapes_classifiers import TASKS, WARM, pocket_dataset

TINY_CLIP = {"embed_dim": 8,
             "vision_cfg": {"image_size": 16, "patch_size": 8, "width": 16, "layers": 1, "head_width": 8},
             "text_cfg": {"context_length": 6, "vocab_size": 20, "width": 16, "heads": 2, "layers": 1}}


def _tiny_clip():
    from open_clip.model import CLIP

    torch.manual_seed(0)
    model = CLIP(**TINY_CLIP).eval()
    with torch.no_grad():
        model.logit_scale.fill_(2.0)  # exp(2) ≈ 7.4: a scale other than the default, to see that it is used
    return model


def _token_ids(prompts):
    # A stand-in tokenizer: a prompt's characters, folded into the tiny vocabulary.
    return torch.tensor([[ord(c) % 19 + 1 for c in prompt[:6].ljust(6)] for prompt in prompts])


PROMPTS = [["ab", "cd", "efg"], ["hij"], ["kl", "mn"]]


def _naive_logits(model, images):
    """CLIP's recipe written out: per class, the renormalised mean of its prompts' unit embeddings."""
    image = model.encode_image(images)
    image = image / image.norm(dim=-1, keepdim=True)
    rows = []
    for prompts in PROMPTS:
        text = model.encode_text(_token_ids(prompts))
        mean = (text / text.norm(dim=-1, keepdim=True)).mean(0)
        rows.append(mean / mean.norm())
    return model.logit_scale.exp() * image @ torch.stack(rows).T


def test_logits_equal_clips_scaled_cosine_with_the_prompt_ensembles():
    model = _tiny_clip()
    images = torch.randn(5, 3, 16, 16)
    classifier = zero_shot_classifier(model, TINY_CLIP, _token_ids, PROMPTS)
    with torch.no_grad():
        torch.testing.assert_close(classifier(images), _naive_logits(model, images), rtol=1e-5, atol=1e-5)
        logits, features = classifier.forward_features(images)
    assert classifier.num_classes == 3 and features.shape == (5, 8)
    torch.testing.assert_close(features.norm(dim=1), torch.ones(5))  # the features are unit image embeddings


def test_it_saves_and_loads_as_any_classifier(tmp_path):
    model = _tiny_clip()
    images = torch.randn(3, 3, 16, 16)
    classifier = zero_shot_classifier(model, TINY_CLIP, _token_ids, PROMPTS)
    loaded = load_directory(save_atomic(classifier, tmp_path / "zero-shot"))
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), classifier(images))


def test_a_zero_shot_classifier_cannot_start_from_scratch():
    with pytest.raises(UserInputError, match="built from a trained CLIP"):
        load_classifier("arch:open-clip-zeroshot", num_classes=3)


def test_pocket_prompts_cover_each_caption_once_per_task():
    assert [p[0] for p in shapes_clip_zeroshot.class_prompts("many")][:2] == ["a photo of a red circle",
                                                                           "a photo of an orange circle"]
    shape = shapes_clip_zeroshot.class_prompts("shape")
    assert len(shape) == len(SHAPES) and all(len(p) == len(COLORS) for p in shape)
    cool, warm = shapes_clip_zeroshot.class_prompts("binary")
    assert len(cool) + len(warm) == len(COLORS) * len(SHAPES) and not set(cool) & set(warm)
    assert all(any(f" {color} " in p for color in WARM) for p in warm)
    with pytest.raises(ValueError):
        shapes_clip_zeroshot.class_prompts("colour")


def test_the_pocket_zero_shot_teacher_loads_by_name_and_sees_colour():
    teacher = load_classifier("pocket:shapes-clip-zeroshot-binary")
    assert teacher.spec.architecture == "open-clip-zeroshot" and teacher.num_classes == len(TASKS["binary"])
    assert teacher.spec.extra["prompts_version"] == shapes_clip_zeroshot.PROMPTS_VERSION
    data = pocket_dataset("pocket:shapes-binary", "test", 200)
    with torch.no_grad():
        accuracy = float((teacher(data.batch(range(200))).argmax(1) == data.labels).float().mean())
    # The pocket CLIP tells colours apart (true over wrong-colour captions: 1.0), so warm vs cool of the
    # largest shape is well above chance even though the prompts name one shape and scenes hold several.
    assert accuracy > 0.7
