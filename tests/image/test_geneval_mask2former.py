"""GenEval's real detection path, plumbing only: a tiny randomly initialised transformers Mask2Former
and a tiny open_clip model, saved and loaded from local paths the way real weights would be."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")
transformers = pytest.importorskip("transformers")

from distillbench.benchmarks import geneval  # noqa: E402
from distillbench.pocket import shapes  # noqa: E402

NAMES = ["circle", "square", "triangle"]


def _tiny_mask2former(folder, names=NAMES):
    from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, Mask2FormerImageProcessor, SwinConfig

    backbone = SwinConfig(image_size=64, patch_size=4, embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1],
                          window_size=4, out_features=["stage1", "stage2", "stage3", "stage4"])
    config = Mask2FormerConfig(backbone_config=backbone, feature_size=32, mask_feature_size=32, hidden_dim=32,
                               encoder_feedforward_dim=64, dim_feedforward=64, encoder_layers=1, decoder_layers=2,
                               num_attention_heads=2, num_queries=8, use_pretrained_backbone=False,
                               id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)})
    torch.manual_seed(0)
    Mask2FormerForUniversalSegmentation(config).save_pretrained(folder)
    Mask2FormerImageProcessor(size={"height": 64, "width": 64}).save_pretrained(folder)
    return folder


def _tiny_clip(folder):
    config = {"embed_dim": 16,
              "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
              "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    folder.mkdir()
    (folder / "pocket-tiny-clip.json").write_text(json.dumps(config))
    open_clip.add_model_config(folder / "pocket-tiny-clip.json")
    torch.manual_seed(0)
    model = open_clip.create_model("pocket-tiny-clip", force_quick_gelu=True)
    torch.save(model.state_dict(), folder / "open_clip_model.pt")
    return folder / "open_clip_model.pt"


def test_mask2former_and_clip_from_local_paths(tmp_path, capsys):
    detector = geneval.Mask2FormerDetector(_tiny_mask2former(tmp_path / "mask2former"))
    assert detector.missing_classes(["circle", "dog"]) == ["dog"]
    scene = shapes.generate("test", 1, tags=("color_attr",))[0]
    image = scene.to_pil()
    detections = detector(image)
    assert detections and {d.label for d in detections} <= set(NAMES)
    for d in detections:
        rows, columns = np.nonzero(d.mask)
        assert d.mask.shape == (32, 32) and 0 <= d.score <= 1
        assert d.box == (columns.min(), rows.min(), columns.max() + 1, rows.max() + 1)  # mmdet's mask2bbox

    classifier = geneval.clip_color_classifier(_tiny_clip(tmp_path / "clip"), arch="pocket-tiny-clip")
    colours = classifier(image, detections[:3], "circle")
    assert len(colours) == min(3, len(detections)) and set(colours) <= set(geneval.COLORS)
    record = geneval.score_detections(detections, scene.metadata, image, classifier,
                                      geneval.GenEvalRules(threshold=0.0))
    assert isinstance(record["correct"], bool) and set(json.loads(record["details"])) <= set(NAMES)

    folder = shapes.write_geneval_folder(shapes.evaluation_metadata(per_tag=1), tmp_path / "images", 1)
    outfile = tmp_path / "results.jsonl"
    arguments = [str(folder), "--outfile", str(outfile), "--detector", "mask2former", "--model-path",
                 str(tmp_path / "mask2former"), "--clip-pretrained", str(tmp_path / "clip" / "open_clip_model.pt"),
                 "--clip-model", "pocket-tiny-clip"]
    assert geneval.main(arguments) == 0
    assert len(outfile.read_text().splitlines()) == 6
    protocol = json.loads(outfile.with_suffix(".summary.json").read_text())["protocol"]
    assert protocol["detector"] == "mask2former" and protocol["clip_model"] == "pocket-tiny-clip"
    assert protocol["detector_input_size"] == {"height": 64, "width": 64}  # what small objects depend on
    assert geneval.main([str(folder), "--detector", "mask2former"]) == 2
    assert "--model-path" in capsys.readouterr().err


def test_cocos_mouse_remote_and_keyboard_are_genevals_computer_mouse_tv_remote_and_computer_keyboard(tmp_path):
    # GenEval matches the detector's classes by index to its object_names.txt; transformers' COCO label map
    # names indices 64-66 differently, and those classes could never be found
    detector = geneval.Mask2FormerDetector(_tiny_mask2former(tmp_path / "m", ["mouse", "remote", "keyboard", "tv"]))
    assert sorted(detector.labels.values()) == ["computer keyboard", "computer mouse", "tv", "tv remote"]
    prompts = [{"tag": "two_object", "include": [{"class": "computer mouse", "count": 1},
                                                 {"class": "tv remote", "count": 1}], "prompt": "p"}]
    detector.require(prompts)
    with pytest.raises(ValueError, match=r"no label for GenEval classes \['dog'\]"):
        detector.require(prompts + [{"tag": "single_object", "include": [{"class": "tv", "count": 1}],
                                     "exclude": [{"class": "dog", "count": 1}], "prompt": "q"}])
