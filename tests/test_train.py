"""The train loop: exact resume after an interruption, the NaN guard, and a fixed reference scored once."""

import json
from dataclasses import dataclass

import pytest
import torch
from safetensors.torch import load_file

from distillbench.kinds.text_lm.data import collate, tokenize_preferences, tokenize_records
from distillbench.core.errors import NonFiniteError, UserInputError
from distillbench.kinds.text_lm.models import load_causal_lm
from distillbench.core.recipe import Budget
from distillbench.kinds.text_lm.topk_cache import ReferenceLogps
from distillbench.core.train import example_indices, train
from distillbench.kinds.text_lm.batching import TokenBatching, add_signals
from distillbench.methods.llm.curry_dpo import CurryDPO
from distillbench.methods.llm.distillm import DistiLLM
from distillbench.methods.llm.dpo import DPO
from distillbench.methods.llm.sft import SFT
from distillbench.methods.llm.teacher_hacking import TeacherHacking
from distillbench.pocket.math_world import generate

BUDGET = Budget(steps=4, batch_size=4, learning_rate=1e-2, max_length=96, checkpoint_every=1)


def _setup():
    model, tokenizer = load_causal_lm("pocket:student-init")
    examples = tokenize_records(tokenizer, generate("train", 16), 96)
    return model, tokenizer, examples


def interrupting(method_class):
    """`method_class` raising KeyboardInterrupt (like Ctrl-C or a kill) when asked for loss number `at`."""

    @dataclass
    class Interrupting(method_class):
        at: int = 0
        calls: int = 0

        def loss(self, student, batch):
            self.calls += 1
            if self.calls == self.at:
                raise KeyboardInterrupt
            return super().loss(student, batch)

    return Interrupting


InterruptAt = interrupting(SFT)


@dataclass
class NaNAt(SFT):
    at: int = 3
    calls: int = 0

    def loss(self, student, batch):
        self.calls += 1
        terms = super().loss(student, batch)
        if self.calls >= self.at:
            terms["nll"] = terms["nll"] * float("nan")
        return terms


def test_data_order_is_a_function_of_seed_and_step():
    lengths = (7,) * 10
    assert example_indices(lengths, 4, seed=0, step=3) == example_indices(lengths, 4, seed=0, step=3)
    assert example_indices(lengths, 4, seed=0, step=0) != example_indices(lengths, 4, seed=1, step=0)
    epoch = [i for step in range(2) for i in example_indices(lengths, 5, seed=0, step=step)]
    assert sorted(epoch) == list(range(10))


def test_batches_group_examples_of_similar_length():
    lengths = tuple(torch.randint(1, 200, (4000,), generator=torch.Generator().manual_seed(0)).tolist())
    spans = [max(lengths[i] for i in batch) - min(lengths[i] for i in batch)
             for batch in (example_indices(lengths, 32, seed=0, step=s, group_by_length=True) for s in range(20))]
    assert max(spans) < 30  # a random batch of 32 would span most of 1..200


def test_resume_after_interruption_equals_an_uninterrupted_run(tmp_path):
    model, tokenizer, examples = _setup()
    train(SFT(), model, examples, BUDGET, seed=0, checkpoint_dir=tmp_path / "a", batching=TokenBatching(tokenizer))

    interrupted, _, _ = _setup()
    with pytest.raises(KeyboardInterrupt):
        train(InterruptAt(at=3), interrupted, examples, BUDGET, seed=0, checkpoint_dir=tmp_path / "b",
              batching=TokenBatching(tokenizer))
    resumed, _, _ = _setup()  # a fresh process would start from the init weights again
    result = train(SFT(), resumed, examples, BUDGET, seed=0, checkpoint_dir=tmp_path / "b",
                   batching=TokenBatching(tokenizer))

    assert result.steps == 4
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name


def test_nan_loss_stops_at_that_step_and_keeps_the_last_good_checkpoint(tmp_path):
    model, tokenizer, examples = _setup()
    with pytest.raises(NonFiniteError) as info:
        train(NaNAt(at=3), model, examples, BUDGET, seed=0, checkpoint_dir=tmp_path, batching=TokenBatching(tokenizer))
    assert info.value.step == 3 and "nll" in info.value.what
    state = json.loads((tmp_path / "checkpoint.json").read_text())["state"]
    assert state["step"] == 2
    weights = load_file(str(tmp_path / "model.safetensors"))
    assert all(torch.isfinite(t).all() for t in weights.values())


def _assert_accumulation_changes_nothing(tmp_path, examples, tokenizer, accumulation, **budget):
    """SFT on `examples` in one batch per step and in `accumulation` micro-batches gives the same weights."""
    single, accumulated = _setup()[0], _setup()[0]
    train(SFT(), single, examples, Budget(**budget), seed=0, checkpoint_dir=tmp_path / "one",
          batching=TokenBatching(tokenizer))
    train(SFT(), accumulated, examples, Budget(**budget, gradient_accumulation=accumulation), seed=0,
          checkpoint_dir=tmp_path / "accumulated", batching=TokenBatching(tokenizer))
    for name, tensor in single.state_dict().items():
        assert torch.allclose(tensor, accumulated.state_dict()[name], atol=1e-5), name


def test_gradient_accumulation_equals_one_large_batch(tmp_path):
    """Micro-batches are weighted by their share of response tokens (trl #4719's pitfall)."""
    _, tokenizer, examples = _setup()
    _assert_accumulation_changes_nothing(tmp_path, examples, tokenizer, 3, steps=2, batch_size=6,
                                         learning_rate=1e-2, max_length=96)


DistiLLMInterruptAt = interrupting(DistiLLM)


def test_adaptive_schedule_state_survives_a_resume(tmp_path):
    """DistiLLM's probability, last validation loss and replay buffer are checkpointed."""
    teacher = load_causal_lm("pocket:teacher-sft")[0]
    options = dict(initial_probability=1.0, capacity=4, max_new_tokens=8)
    budget = Budget(steps=5, batch_size=4, learning_rate=1e-2, max_length=96, checkpoint_every=1)
    model, tokenizer, examples = _setup()
    validation = tokenize_records(tokenizer, generate("dev", 4), 96)
    run = dict(seed=0, frozen={"teacher": teacher}, batching=TokenBatching(tokenizer, validation=validation))
    result = train(DistiLLMInterruptAt(**options), model, examples, budget, checkpoint_dir=tmp_path / "a", **run)
    assert result.on_policy_steps == 5  # p = 1 from the start: fresh samples, then replays
    interrupted, _, _ = _setup()
    with pytest.raises(KeyboardInterrupt):
        train(DistiLLMInterruptAt(at=4, **options), interrupted, examples, budget, checkpoint_dir=tmp_path / "b",
              **run)
    schedule = json.loads((tmp_path / "b" / "checkpoint.json").read_text())["state"]["method"]["schedule"]
    assert schedule["probability"] == 1.0 and len(schedule["buffer"]) == 4
    resumed, _, _ = _setup()
    train(DistiLLMInterruptAt(**options), resumed, examples, budget, checkpoint_dir=tmp_path / "b", **run)
    for name, tensor in model.state_dict().items():
        assert torch.allclose(tensor, resumed.state_dict()[name], atol=1e-6), name


def test_a_schedule_that_watches_validation_loss_needs_validation_examples(tmp_path):
    model, tokenizer, examples = _setup()
    with pytest.raises(UserInputError, match="needs validation examples"):
        train(DistiLLM(), model, examples, BUDGET, seed=0, checkpoint_dir=tmp_path, batching=TokenBatching(tokenizer),
              frozen={"teacher": model})


CurryInterruptAt = interrupting(CurryDPO)


def test_a_reference_the_method_moves_is_checkpointed_and_restored(tmp_path):
    """Curry-DPO renews its reference between iterations; a resumed run must see the renewed one."""
    from distillbench.kinds.text_lm.data import load_ranked, tokenize_ranked

    _, tokenizer, _ = _setup()
    ranked = tokenize_ranked(tokenizer, load_ranked("pocket:math-ranked"), 96)
    budget = Budget(steps=4, batch_size=4, learning_rate=1e-2, max_length=96, checkpoint_every=1)
    finals = []
    for at, folder in ((0, "a"), (4, "b")):
        model, reference = load_causal_lm("pocket:student-init")[0], load_causal_lm("pocket:student-init")[0]
        if at:
            with pytest.raises(KeyboardInterrupt):
                train(CurryInterruptAt(iterations=2, at=at), model, ranked, budget, seed=0, checkpoint_dir=tmp_path / folder,
                      batching=TokenBatching(tokenizer), frozen={"reference": reference})
            model, reference = load_causal_lm("pocket:student-init")[0], load_causal_lm("pocket:student-init")[0]
        train(CurryInterruptAt(iterations=2), model, ranked, budget, seed=0,
              checkpoint_dir=tmp_path / folder, batching=TokenBatching(tokenizer), frozen={"reference": reference})
        finals.append(model.state_dict())
    for name, tensor in finals[0].items():
        assert torch.allclose(tensor, finals[1][name], atol=1e-6), name


def test_a_stateful_methods_state_is_checkpointed_and_restored(tmp_path):
    """ADPO's KL-triggered anchor: the KL window travels in the checkpoint, so a resumed run triggers
    the anchor copy at the same step as an uninterrupted one."""
    from distillbench.kinds.text_lm.data import load_ranked, tokenize_ranked
    from distillbench.methods.llm.adpo import ADPO

    ADPOInterruptAt = interrupting(ADPO)
    _, tokenizer, _ = _setup()
    ranked = tokenize_ranked(tokenizer, load_ranked("pocket:math-ranked"), 96)
    budget = Budget(steps=5, batch_size=4, learning_rate=1e-2, max_length=96, checkpoint_every=1)
    options = dict(anchor="kl_triggered", kl_threshold=1e-6, kl_window=2)  # triggers every second step
    finals = []
    for at, folder in ((0, "a"), (4, "b")):
        model, reference = load_causal_lm("pocket:student-init")[0], load_causal_lm("pocket:student-init")[0]
        if at:
            with pytest.raises(KeyboardInterrupt):
                train(ADPOInterruptAt(at=at, **options), model, ranked, budget, seed=0, checkpoint_dir=tmp_path / folder,
                      batching=TokenBatching(tokenizer), frozen={"reference": reference})
            state = json.loads((tmp_path / folder / "checkpoint.json").read_text())["state"]
            # After 3 steps: copied after step 2; step 3 starts from the copy, so its divergence is 0.
            assert state["method"] == {"window": [0.0], "anchor_updates": 1}
            model, reference = load_causal_lm("pocket:student-init")[0], load_causal_lm("pocket:student-init")[0]
        train(ADPOInterruptAt(**options), model, ranked, budget, seed=0,
              checkpoint_dir=tmp_path / folder, batching=TokenBatching(tokenizer), frozen={"reference": reference})
        finals.append(model.state_dict())
        assert json.loads((tmp_path / folder / "checkpoint.json").read_text())["state"]["method"]["anchor_updates"] == 2
    for name, tensor in finals[0].items():
        assert torch.allclose(tensor, finals[1][name], atol=1e-6), name


def test_loss_chunk_size_trains_to_the_same_weights(tmp_path):
    """budget.loss_chunk_size reaches the method's batches; KD from chunks ends where KD from full logits does."""
    from distillbench.methods.llm.kd import KD

    teacher = load_causal_lm("pocket:teacher-sft")[0]
    finals = []
    for folder, chunk_size in (("full", None), ("chunked", 7)):
        model, tokenizer, examples = _setup()
        budget = Budget(steps=2, batch_size=4, learning_rate=1e-2, max_length=96, loss_chunk_size=chunk_size)
        train(KD(temperature=2.0), model, examples, budget, seed=0, checkpoint_dir=tmp_path / folder,
              batching=TokenBatching(tokenizer, loss_chunk_size=chunk_size), frozen={"teacher": teacher})
        finals.append(model.state_dict())
    for name, tensor in finals[0].items():
        assert torch.allclose(tensor, finals[1][name], atol=1e-5), name
    assert not all(torch.equal(t, finals[1][n]) for n, t in finals[0].items())  # two code paths really ran


DPOInterruptAt = interrupting(DPO)


def _pairs(count):
    """Preference examples from pocket problems: the gold solution chosen, a truncated one rejected."""
    model, tokenizer = load_causal_lm("pocket:student-init")
    records = [{"prompt": r["problem"], "chosen": r["solution"], "rejected": r["solution"][: len(r["solution"]) // 2]}
               for r in generate("train", count)]
    return model, tokenizer, tokenize_preferences(tokenizer, records, 96)


def test_precomputed_reference_logps_equal_the_live_ones():
    reference, tokenizer, examples = _pairs(7)
    precomputed = ReferenceLogps.compute(reference, examples, tokenizer.pad_token_id, batch_size=3)
    chunked = ReferenceLogps.compute(reference, examples, tokenizer.pad_token_id, batch_size=4, chunk_size=5)
    assert precomputed.passes == 14
    rows = [5, 1, 2]
    live = collate([examples[i] for i in rows], tokenizer.pad_token_id)
    assert add_signals(live, ("reference_logps",), {"reference": reference}) == 6
    cached = {**collate([examples[i] for i in rows], tokenizer.pad_token_id), "example_index": rows}
    assert add_signals(cached, ("reference_logps",), {}, reference_logps=precomputed) == 0
    for key in ("reference_chosen_logps", "reference_rejected_logps", "reference_rejected_mean_logps"):
        assert torch.allclose(cached[key], live[key], atol=1e-4), key
        assert not torch.equal(live[key], torch.zeros(3))
    for side in ("chosen", "rejected"):
        assert torch.allclose(chunked.logps[side], precomputed.logps[side], atol=1e-4)


def _dpo_weights(examples, tokenizer, budget, directory, method=None):
    student, _ = load_causal_lm("pocket:student-init")
    reference, _ = load_causal_lm("pocket:student-init")
    result = train(method or DPO(), student, examples, budget, seed=0, checkpoint_dir=directory,
                   batching=TokenBatching(tokenizer), frozen={"reference": reference})
    return result, student.state_dict()


def test_a_fixed_reference_is_scored_once_per_example_and_a_resume_sees_the_same_values(tmp_path):
    _, tokenizer, examples = _pairs(8)
    budget = Budget(steps=4, batch_size=4, learning_rate=1e-2, max_length=96, checkpoint_every=1)
    result, weights = _dpo_weights(examples, tokenizer, budget, tmp_path / "a")
    assert result.teacher_forwards == 16  # 8 pairs × 2 sequences, not 4 steps × 4 pairs × 2

    with pytest.raises(KeyboardInterrupt):
        _dpo_weights(examples, tokenizer, budget, tmp_path / "b", DPOInterruptAt(at=3))
    again, resumed = _dpo_weights(examples, tokenizer, budget, tmp_path / "b")
    for name, tensor in weights.items():
        assert torch.equal(tensor, resumed[name]), name
    assert again.teacher_forwards == 16  # counted once, as in the uninterrupted run (was 32)


def test_a_run_shorter_than_an_epoch_scores_the_reference_live(tmp_path):
    _, tokenizer, examples = _pairs(8)
    budget = Budget(steps=1, batch_size=4, learning_rate=1e-2, max_length=96, checkpoint_every=1)
    result, _ = _dpo_weights(examples, tokenizer, budget, tmp_path)
    assert result.teacher_forwards == 8  # one step of 4 pairs: fewer passes than the 16 of precomputing


def test_a_micro_batch_whose_responses_were_all_cut_off_is_skipped_not_a_nan(tmp_path):
    # length-sorted micro-batches put the fully truncated examples (no label token) together: their mean
    # over no tokens was NaN and failed the cell, though their weight is 0
    _, tokenizer, examples = _setup()
    # no label token left, and the longest, as truncated examples are: one micro-batch holds only them
    cut = [{**example, "input_ids": example["input_ids"] + [5] * 200, "labels": [-100] * (len(example["labels"]) + 200)}
           for example in examples[:6]]
    _assert_accumulation_changes_nothing(tmp_path, cut + examples[6:12], tokenizer, 2, steps=2, batch_size=12,
                                         learning_rate=1e-2, max_length=400)


def test_every_schedule_warms_up_alike():
    """Schedules differ after the warm-up, never during it: comparing them compares what follows."""
    import torch

    from distillbench.core.recipe import Budget
    from distillbench.core.train import make_scheduler

    rates = {}
    for schedule in ("cosine", "constant", "multistep"):
        budget = Budget(steps=20, batch_size=1, learning_rate=1.0, warmup_steps=4, lr_schedule=schedule,
                        lr_milestones=[10] if schedule == "multistep" else [])
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=budget.learning_rate)
        scheduler = make_scheduler(optimizer, budget)
        rates[schedule] = []
        for _ in range(6):
            rates[schedule].append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
    assert rates["constant"] == rates["multistep"] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    assert rates["cosine"][:5] == rates["constant"][:5]


def _teacher_hacking_forwards(data: str, tmp_path) -> int:
    teacher, tokenizer = load_causal_lm("pocket:teacher-sft")
    student, _ = load_causal_lm("pocket:student-init")
    budget = Budget(steps=2, batch_size=4, learning_rate=1e-2, max_length=96, checkpoint_every=2)
    validation = tokenize_records(tokenizer, generate("dev", 2), 96)
    method = TeacherHacking(data=data, offline_prompts=4, max_new_tokens=3, every=2)
    result = train(method, student, generate("train", 8), budget, seed=0, checkpoint_dir=tmp_path / data,
                   batching=TokenBatching(tokenizer, validation=validation), frozen={"teacher": teacher})
    return result.teacher_forwards


def test_teacher_samples_count_one_forward_per_generated_token_per_sequence(tmp_path):
    # Both arms: the teacher's logits of 2 steps x 4 sequences (8). Offline adds its pool, sampled once:
    # 4 prompts x 3 tokens (12); online samples every step's batch: 2 steps x 4 prompts x 3 tokens (24).
    # Before teacher samples were counted both read 8.
    offline, online = (_teacher_hacking_forwards(data, tmp_path) for data in ("offline", "online"))
    assert offline == 8 + 12
    assert online == 8 + 24
