"""GenEval's CLIP colour step: masked crops over #999, three templates per colour, zero-shot argmax."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from distillbench.benchmarks.geneval import COLORS, ClipColorClassifier, Detection, score_detections  # noqa: E402
from distillbench.pocket import shapes  # noqa: E402
from distillbench.pocket.shapes_detector import detect  # noqa: E402


class ColourWordModel:
    """A stand-in CLIP whose text embedding is the one-hot colour word of a prompt and whose image
    embedding is the nearest palette colour of the crop's non-#999 pixels: zero-shot over
    GenEval's templates must then name each object's colour."""

    texts: list[str] = []

    def eval(self):
        return self

    @staticmethod
    def tokenizer(texts):
        ColourWordModel.texts.extend(texts)
        return torch.tensor([[next(i for i, c in enumerate(COLORS) if f" {c}" in t)] for t in texts])

    @staticmethod
    def preprocess(crop):
        pixels = np.asarray(crop, dtype=np.float64).reshape(-1, 3)
        pixels = pixels[(pixels != 153).any(1)]
        return torch.tensor(pixels.mean(0))

    def encode_text(self, tokens):
        return torch.nn.functional.one_hot(tokens[:, 0], len(COLORS)).double() * 3.0

    def encode_image(self, batch):
        palette = torch.tensor([shapes.PALETTE[c] for c in COLORS], dtype=torch.float64)
        nearest = torch.cdist(batch, palette).argmin(1)
        return torch.nn.functional.one_hot(nearest, len(COLORS)).double() + 0.01


def _scene_and_objects():
    scene = shapes.Scene((shapes.Shape("circle", "orange", 2, 2, 9), shapes.Shape("circle", "blue", 16, 16, 10),
                          shapes.Shape("square", "brown", 18, 2, 6)), {"tag": "colors", "include": [], "prompt": ""})
    image = scene.to_pil()
    objects = [Detection(d.shape, d.box, d.confidence, d.mask) for d in detect(scene.render())]  # colours withheld
    return image, objects


def test_zero_shot_colours_from_masked_crops_with_genevals_templates():
    image, objects = _scene_and_objects()
    classifier = ClipColorClassifier(ColourWordModel(), ColourWordModel.preprocess, ColourWordModel.tokenizer)
    circles = [o for o in objects if o.label == "circle"]
    ColourWordModel.texts.clear()
    assert sorted(classifier(image, circles, "circle")) == ["blue", "orange"]
    assert ColourWordModel.texts[:3] == ["a photo of a red circle", "a photo of a red-colored circle",
                                         "a photo of a red object"]
    assert len(ColourWordModel.texts) == 3 * len(COLORS)
    classifier(image, circles, "circle")
    assert len(ColourWordModel.texts) == 3 * len(COLORS)  # the classifier of a class name is built once
    # the crop is the box, with everything outside the mask painted #999
    crop = np.asarray(classifier.crops(image, [circles[0]])[0])
    assert crop.shape[:2] == (int(circles[0].box[3] - circles[0].box[1]), int(circles[0].box[2] - circles[0].box[0]))
    assert (crop[0, 0] == 153).all()
    metadata = {"tag": "colors", "include": [{"class": "square", "count": 1, "color": "brown"}], "prompt": ""}
    assert score_detections(objects, metadata, image, classifier)["correct"]
    metadata["include"][0]["color"] = "red"
    assert score_detections(objects, metadata, image, classifier)["reason"] == \
        "expected red square>=1, found 0 red; and 1 brown"


def test_a_tiny_random_open_clip_model_runs_through_the_colour_step():
    open_clip = pytest.importorskip("open_clip")
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    torch.manual_seed(0)
    model = CLIP(embed_dim=16, vision_cfg=CLIPVisionCfg(layers=1, width=32, head_width=16, patch_size=8, image_size=32),
                 text_cfg=CLIPTextCfg(context_length=77, vocab_size=49408, width=32, heads=2, layers=1))
    classifier = ClipColorClassifier(model, open_clip.image_transform(32, is_train=False),
                                     open_clip.get_tokenizer("ViT-B-32"), batch_size=2)
    image, objects = _scene_and_objects()
    colours = classifier(image, objects, "circle")
    assert len(colours) == 3 and set(colours) <= set(COLORS)
    assert classifier(image, objects, "circle") == colours
