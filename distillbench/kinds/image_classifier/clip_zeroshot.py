"""CLIP's zero-shot classifier as an ordinary distillbench classifier (the teacher of DHO-style distillation).

Radford et al. 2021 (arXiv:2103.00020) classify an image by the cosine similarity of its embedding to
the text embedding of every class's prompts, scaled by the model's logit scale:

    z_c = s · ⟨f(x)/‖f(x)‖, t_c⟩,   t_c = normalise(mean over the class's prompts p of g(p)/‖g(p)‖)

(the mean over several prompts is CLIP's prompt ensembling). That is a linear layer without bias on
the normalised image embedding, whose rows are s · t_c. So the classifier here is open_clip's image
tower followed by that layer (named ``head``): it saves, loads and serves teacher logits like any
other classifier, and its penultimate features are the normalised image embeddings.

``classifier.json`` names architecture ``open-clip-zeroshot`` with option ``clip_config`` (open_clip's
model config: ``embed_dim``, ``vision_cfg``, ``text_cfg``); the weights are the image tower's
(``visual.*``, open_clip's key names) and ``head.weight``. Build one with `zero_shot_classifier`.
The images must arrive normalised the way the CLIP model was trained (the caller checks).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from distillbench.kinds.image_classifier.classifiers import ClassifierSpec, ImageClassifier, register_architecture
from distillbench.core.errors import UserInputError

ARCHITECTURE = "open-clip-zeroshot"


class CLIPZeroShot(nn.Module):
    """open_clip's image tower and a bias-free linear head over the L2-normalised image embedding."""

    def __init__(self, num_classes: int, clip_config: dict[str, Any] | None = None):
        super().__init__()
        if clip_config is None:
            raise UserInputError(f"{ARCHITECTURE} is built from a trained CLIP model (see "
                                 "distillbench.kinds.image_classifier.clip_zeroshot.zero_shot_classifier), not from scratch")
        from open_clip.model import CLIP

        # open_clip builds towers only as parts of a CLIP; the text tower is dropped straight away.
        self.visual = CLIP(**clip_config).visual
        self.head = nn.Linear(int(clip_config["embed_dim"]), num_classes, bias=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(nn.functional.normalize(self.visual(images), dim=-1))


register_architecture(ARCHITECTURE, head="head", summary="CLIP zero-shot classifier: open_clip image tower + "
                      "class text embeddings as the head (built from a CLIP model, not trained)",
                      paper="Radford et al. 2021, arXiv:2103.00020")(CLIPZeroShot)


def class_text_embeddings(clip_model, token_ids_of, class_prompts: list[list[str]]) -> torch.Tensor:
    """[C, D]: per class, the renormalised mean of its prompts' normalised text embeddings.

    `token_ids_of(prompts)` gives the tokenizer's ids as the CLIP model takes them."""
    rows = []
    with torch.no_grad():
        for prompts in class_prompts:
            if not prompts:
                raise ValueError("every class needs at least one prompt")
            embeddings = clip_model.encode_text(token_ids_of(prompts), normalize=True)
            rows.append(nn.functional.normalize(embeddings.mean(0), dim=0))
    return torch.stack(rows)


def zero_shot_classifier(clip_model, clip_config: dict[str, Any], token_ids_of,
                         class_prompts: list[list[str]]) -> ImageClassifier:
    """The zero-shot classifier of `clip_model` (an open_clip ``CLIP`` built from `clip_config`) over the
    classes whose prompts `class_prompts` lists, with the model's own logit scale."""
    spec = ClassifierSpec(ARCHITECTURE, len(class_prompts), options={"clip_config": clip_config})
    network = CLIPZeroShot(len(class_prompts), clip_config)
    network.visual.load_state_dict(clip_model.visual.state_dict())
    scale = min(float(clip_model.logit_scale.detach().exp()), 100.0)  # CLIP clips its learned scale at 100
    with torch.no_grad():
        network.head.weight.copy_(scale * class_text_embeddings(clip_model, token_ids_of, class_prompts))
    return ImageClassifier(network.eval(), spec, "head")
