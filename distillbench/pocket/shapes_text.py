"""The pocket-shapes word tokenizer, shared by the pocket CLIP and the text-to-image teacher.

Every caption and GenEval prompt of pocket-shapes is built from about forty words (GenEval's
templates over three shapes, ten colours, counts and four relations), so a word-level
vocabulary gives 5–20 tokens a text, where the character tokenizer of the pocket LMs gives
60–90: a tiny text tower learns words, not spelling. It is a real `PreTrainedTokenizerFast`
(saved with `save_pretrained`); the end token has the largest id because open_clip's text
tower pools at the argmax of the token ids (CLIP's convention).
"""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from distillbench.pocket.shapes import COLORS, NUMBERS, POSITIONS, SHAPES, make_plural

CONTEXT_LENGTH = 24  # the longest caption (four shapes with colours) is 20 tokens with its start and end
PAD, UNKNOWN, START, END = "<pad>", "<unk>", "<start>", "<end>"


def vocabulary() -> list[str]:
    """The words of every pocket-shapes caption and prompt, in a fixed order."""
    words = ["a", "an", "photo", "of", "and", ","]
    words += list(SHAPES) + [make_plural(s) for s in SHAPES] + list(COLORS) + list(NUMBERS)
    words += [word for relation in POSITIONS for word in relation.split()]
    return list(dict.fromkeys(words))


def build_tokenizer() -> PreTrainedTokenizerFast:
    """Word-level: pad 0, unknown 1, the words, then start and end (the largest id)."""
    tokens = [PAD, UNKNOWN, *vocabulary(), START, END]
    core = Tokenizer(models.WordLevel(vocab={t: i for i, t in enumerate(tokens)}, unk_token=UNKNOWN))
    core.pre_tokenizer = pre_tokenizers.Whitespace()  # words, and the comma on its own
    core.post_processor = processors.TemplateProcessing(single=f"{START} $A {END}",
                                                        special_tokens=[(START, len(tokens) - 2), (END, len(tokens) - 1)])
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token=PAD, unk_token=UNKNOWN, bos_token=START,
                                   eos_token=END, model_max_length=CONTEXT_LENGTH)


def token_ids(tokenizer, texts: list[str], length: int = CONTEXT_LENGTH) -> torch.Tensor:
    """``(len(texts), length)`` token ids, padded (and truncated) on the right."""
    return tokenizer(list(texts), padding="max_length", truncation=True, max_length=length,
                     return_tensors="pt")["input_ids"]
