"""MCTS-DPO's step-level pairs: steps cut at sentence ends, labels on the step only, pairs only
where the candidates' Monte Carlo values differ."""

import distillbench.kinds.text_lm.math_grading as math_grading
from distillbench.kinds.text_lm.models import load_causal_lm
from distillbench.methods.llm.mcts_dpo import MCTSDPO, first_step, is_final
from distillbench.pocket.math_world import generate


def test_a_step_ends_at_the_first_sentence_end():
    assert first_step("8+3=11. 11*2=22. \\boxed{22}") == "8+3=11. "
    assert first_step("\\boxed{22}") == "\\boxed{22}"
    assert not is_final("8+3=11. ") and is_final("11*2=22. \\boxed{22}") and is_final("8+3=1")


def test_search_pairs_steps_with_different_values(monkeypatch):
    model, tokenizer = load_causal_lm("pocket:teacher-sft")
    # The tiny test teacher is never right; value a rollout by its length's parity instead, so
    # candidates differ and the pairing logic is exercised.
    monkeypatch.setattr(math_grading, "grade", lambda output, gold: type("G", (), {"correct": len(output) % 2 == 0}))
    method = MCTSDPO(prompts=6, depth=2, candidates=3, rollouts=2, max_new_tokens=12)
    pairs = method.make_examples(model, tokenizer, generate("train", 20), seed=0, stage=0, frozen={})
    assert pairs
    for pair in pairs:
        chosen, rejected = pair["chosen_input_ids"], pair["rejected_input_ids"]
        context = len(chosen) - sum(label != -100 for label in pair["chosen_labels"])
        assert chosen[:context] == rejected[:context]  # the same problem and prefix
        assert pair["chosen_labels"][context:] == chosen[context:] and chosen != rejected
