"""harness.vlm: a LLaVA saved and loaded the real way, batched greedy generation with images."""

import pytest
import torch

from distillbench.core.errors import UserInputError
from distillbench.kinds.vlm.models import VisionRequest, generate_vlm, load_image, load_vlm, render_prompt, video_frames

QUESTIONS = ["Is there a cat in the image?", "Colour?", "What is in the upper left corner of this picture?",
             "How many squares are there?", "Is it day?"]


def test_save_and_load_round_trip(tiny_llava):
    from transformers import LlavaForConditionalGeneration

    model, processor = load_vlm(str(tiny_llava))
    assert isinstance(model, LlavaForConditionalGeneration) and not model.training
    assert type(processor).__name__ == "LlavaProcessor" and processor.tokenizer.padding_side == "left"
    assert processor.image_processor.crop_size == {"height": 28, "width": 28}
    assert model.config.vision_config.model_type == "clip_vision_model" and model.config.text_config.model_type == "llama"
    # The weights on disk are the ones in memory: a second load is bitwise equal.
    again, _ = load_vlm(str(tiny_llava))
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name
    assert sorted(p.name for p in tiny_llava.glob("*.safetensors")) == ["model.safetensors"]


def test_weights_other_than_safetensors_are_refused(tiny_llava, tmp_path):
    import shutil

    unsafe = tmp_path / "unsafe"
    shutil.copytree(tiny_llava, unsafe)
    (unsafe / "model.safetensors").rename(unsafe / "pytorch_model.bin")
    with pytest.raises(UserInputError, match="cannot load a vision-language model.*model.safetensors"):
        load_vlm(str(unsafe))
    with pytest.raises(UserInputError, match="model directory not found"):
        load_vlm(str(tmp_path / "absent"))


def test_images_reach_the_model(tiny_llava, tmp_path, image_file):
    model, processor = load_vlm(str(tiny_llava))
    images = [load_image(image_file(tmp_path / f"{seed}.png", seed)) for seed in range(3)]
    prompt = render_prompt(processor, VisionRequest((images[0],), QUESTIONS[0]))
    assert prompt == f"<s><|user|><image>\n{QUESTIONS[0]}<|assistant|>"  # the processor's LLaVA-style template
    processor.chat_template = processor.tokenizer.chat_template  # a text-only template: the images go first
    assert render_prompt(processor, VisionRequest(tuple(images[:2]), "Q")) == "<s><|user|><image>\n<image>\nQ<|assistant|>"
    logits = []
    for image in images:
        batch = processor(images=[image], text=[prompt], return_tensors="pt", add_special_tokens=False)
        assert int((batch["input_ids"] == model.config.image_token_index).sum()) == 16  # expanded placeholders
        with torch.no_grad():
            logits.append(model(**batch).logits[0, -1])
    assert not torch.allclose(logits[0], logits[1]) and not torch.allclose(logits[1], logits[2])


def test_batched_greedy_generation_does_not_depend_on_the_batch(tiny_llava, tmp_path, image_file):
    model, processor = load_vlm(str(tiny_llava))
    # Images of different content and sizes, prompts of different lengths (so the batch is left-padded).
    requests = [VisionRequest((load_image(image_file(tmp_path / f"{i}.png", i, (24 + 9 * i, 40 - 3 * i))),), q)
                for i, q in enumerate(QUESTIONS)]
    alone = generate_vlm(model, processor, requests, max_new_tokens=6, batch_size=1)
    together = generate_vlm(model, processor, requests, max_new_tokens=6, batch_size=len(requests))
    pairs = generate_vlm(model, processor, requests[::-1], max_new_tokens=6, batch_size=2)[::-1]
    assert alone == together == pairs
    assert len(alone) == len(requests) and all(isinstance(reply, str) for reply in alone)
    # Two images in one prompt (video frames): both placeholders are expanded and answered.
    frames = VisionRequest(tuple(requests[0].images + requests[1].images), "What changes?")
    assert len(generate_vlm(model, processor, [frames, requests[2]], max_new_tokens=4, batch_size=2)) == 2


def test_video_frames_from_a_folder_of_frames(tmp_path, image_file):
    for index in range(10):
        image_file(tmp_path / "clip" / f"{index:03d}.jpg", index)
    frames = video_frames(tmp_path / "clip.mp4", 4)  # the file is absent: its frame folder is read
    assert len(frames) == 4 and all(frame.mode == "RGB" for frame in frames)
    assert [f.tobytes() for f in frames] == [load_image(tmp_path / "clip" / f"{i:03d}.jpg").tobytes()
                                             for i in (1, 3, 6, 8)]
    with pytest.raises(UserInputError, match="video not found"):
        video_frames(tmp_path / "other.mp4", 4)
    with pytest.raises(UserInputError, match="image not found"):
        load_image(tmp_path / "missing.png")
