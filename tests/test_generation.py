"""Batched generation: left padding whatever the tokenizer is configured with."""

from distillbench.kinds.text_lm.generation import generate_responses
from distillbench.kinds.text_lm.models import load_causal_lm


def test_batched_replies_equal_one_by_one_replies_whatever_the_padding_side():
    model, tokenizer = load_causal_lm("pocket:teacher-sft")
    conversations = [[{"role": "user", "content": "Compute 2+2."}],
                     [{"role": "user", "content": "Which is larger, 195 or 189? Think step by step."}]]
    alone = [generate_responses(model, tokenizer, [c], max_new_tokens=8, batch_size=1)[0] for c in conversations]
    for side in ("left", "right"):
        tokenizer.padding_side = side
        assert generate_responses(model, tokenizer, conversations, max_new_tokens=8, batch_size=2) == alone
