"""A character-level tokenizer for the pocket worlds, as a real `PreTrainedTokenizerFast`.

It is saved and loaded with `save_pretrained` / `from_pretrained` and carries a
chat template, so the harness treats pocket models exactly like hub models.
"""

from __future__ import annotations

import string

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
ROLE_TOKENS = ["<|user|>", "<|assistant|>"]

# Turns are delimited by role tokens; an assistant turn ends with the eos token.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'user' %}<|user|>{{ message['content'] }}"
    "{% elif message['role'] == 'assistant' %}<|assistant|>{{ message['content'] }}{{ eos_token }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def build_char_tokenizer() -> PreTrainedTokenizerFast:
    # `tokenizers` has no character-level model, so we build one from a WordLevel
    # vocabulary of single characters and a pre-tokenizer that isolates each one.
    characters = sorted(set(string.printable) - set("\t\r\x0b\x0c"))
    specials = list(SPECIAL_TOKENS.values()) + ROLE_TOKENS
    vocab = {token: index for index, token in enumerate(specials + characters)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=SPECIAL_TOKENS["unk_token"]))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("(?m)."), behavior="isolated")
    core.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, **SPECIAL_TOKENS, additional_special_tokens=ROLE_TOKENS)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.padding_side = "left"  # generation pads on the left
    return tokenizer
