"""SPO: key-content removal and the degree loss against naive per-row loops (values and gradients)."""

import pytest
import torch
import torch.nn.functional as F

from distillbench.methods.llm.dpo import dpo_loss
from distillbench.methods.llm.spo import SPO, remove_key_tokens

from test_chunked_wiring import VOCAB, sft_batch, tiny_llama


def naive_remove(ids, mask, labels, key, fractions, scores):
    """Per row, as lists: drop the round(f·n) response key tokens with the lowest scores, keep the order."""
    rows = []
    for b in range(ids.shape[0]):
        positions = [t for t in range(ids.shape[1]) if mask[b, t] and labels[b, t] != -100 and key[ids[b, t]]]
        count = round(len(positions) * float(fractions[b]))
        removed = set(sorted(positions, key=lambda t: float(scores[b, t]))[:count])
        rows.append([(int(ids[b, t]), int(labels[b, t])) for t in range(ids.shape[1]) if mask[b, t] and t not in removed])
    return rows


def unpadded(ids, mask, labels):
    return [[(int(i), int(lab)) for i, m, lab in zip(ids[b], mask[b], labels[b]) if m] for b in range(ids.shape[0])]


def key_mask(every=3):
    return torch.arange(VOCAB) % every == 0


@pytest.mark.parametrize("seed", range(4))
def test_remove_key_tokens_matches_naive(seed):
    generator = torch.Generator().manual_seed(seed)
    batch = sft_batch(seed=seed)
    ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
    fractions = torch.tensor([0.0, 0.5, 1.0])[torch.randperm(3, generator=generator)]
    scores = torch.rand(ids.shape, generator=generator)
    key = key_mask()
    new_ids, new_mask, new_labels = remove_key_tokens(ids, mask, labels, key, fractions, scores)
    assert unpadded(new_ids, new_mask, new_labels) == naive_remove(ids, mask, labels, key, fractions, scores)
    assert bool((new_mask.sum(-1) > 0).all()) and bool((new_labels[new_mask == 0] == -100).all())


def test_removal_spares_the_prompt_and_takes_every_response_key_token_at_degree_one():
    ids = torch.tensor([[3, 3, 1, 6, 2, 9]])  # key tokens: multiples of 3
    labels = torch.tensor([[-100, -100, 1, 6, 2, 9]])
    new_ids, new_mask, new_labels = remove_key_tokens(ids, torch.ones_like(ids), labels, key_mask(),
                                                      torch.tensor([1.0]), torch.rand(1, 6))
    assert new_ids.tolist() == [[3, 3, 1, 2]] and new_labels.tolist() == [[-100, -100, 1, 2]]
    same = remove_key_tokens(ids, torch.ones_like(ids), labels, key_mask(), torch.tensor([0.0]), torch.rand(1, 6))
    assert same[0].tolist() == ids.tolist()


def preference_batch():
    batch = {**sft_batch("chosen_", seed=1), **sft_batch("rejected_", seed=2)}
    batch["rejected_input_ids"], batch["rejected_attention_mask"], batch["rejected_labels"] = (
        batch[f"rejected_{name}"][:, :9] for name in ("input_ids", "attention_mask", "labels"))  # a narrower side
    generator = torch.Generator().manual_seed(3)
    batch["reference_chosen_logps"], batch["reference_rejected_logps"] = (
        -20 + torch.randn(3, generator=generator, dtype=torch.float64) for _ in range(2))
    return batch


def naive_spo(module, batch, method, degrees, scores):
    """DPO on the pair plus λ·CE of the classifier on each degraded response's mean response hidden state."""
    student = module.student

    def summed_logps(side):
        logits = student(input_ids=batch[f"{side}_input_ids"], attention_mask=batch[f"{side}_attention_mask"]).logits
        total = []
        for b in range(logits.shape[0]):
            value = 0
            for t in range(1, logits.shape[1]):
                label = int(batch[f"{side}_labels"][b, t])
                if label != -100:
                    value = value + torch.log_softmax(logits[b, t - 1], -1)[label]
            total.append(value)
        return torch.stack(total)

    align = dpo_loss(summed_logps("chosen"), summed_logps("rejected"), batch["reference_chosen_logps"],
                     batch["reference_rejected_logps"], method.beta)
    rows = []
    for side in ("chosen", "rejected"):
        for b in range(3):
            rows.append((batch[f"{side}_input_ids"][b], batch[f"{side}_attention_mask"][b], batch[f"{side}_labels"][b]))
    losses = []
    for n, (ids, mask, labels) in enumerate(rows):
        width = ids.shape[0]
        kept = naive_remove(ids[None], mask[None], labels[None], method._key,
                            degrees[n:n + 1] / (method.degrees - 1), scores[n:n + 1, :width])[0]
        hidden = student.get_decoder()(input_ids=torch.tensor([[i for i, _ in kept]])).last_hidden_state[0]
        pooled = torch.stack([hidden[t] for t, (_, label) in enumerate(kept) if label != -100]).mean(0)
        losses.append(F.cross_entropy(module.classifier(pooled)[None], degrees[n:n + 1]))
    return align + method.degree_weight * torch.stack(losses).mean()


def test_spo_loss_matches_naive_in_value_and_gradient():
    method = SPO(degree_weight=0.7)
    method._key = key_mask()
    module = method.training_module(tiny_llama())
    module.classifier.double()
    batch = preference_batch()
    torch.manual_seed(11)
    terms = method.loss(module, batch)
    torch.manual_seed(11)  # the loss draws the degrees, then the scores, from the run's RNG
    degrees = torch.randint(method.degrees, (6,))
    scores = torch.rand(6, 11)
    fast, slow = sum(terms.values()), naive_spo(module, batch, method, degrees, scores)
    parameters = list(module.parameters())
    fast_grads, slow_grads = torch.autograd.grad(fast, parameters), torch.autograd.grad(slow, parameters)
    assert set(terms) == {"dpo", "degree"} and torch.allclose(fast, slow, rtol=1e-9)
    for a, b in zip(fast_grads, slow_grads):
        assert torch.allclose(a, b, rtol=1e-7, atol=1e-10)
    assert module.classifier.weight.grad is None and fast_grads[-2].abs().sum() > 0  # the classifier learns


def test_spo_finds_key_tokens_with_the_tokenizer_and_drops_its_classifier():
    from distillbench.pocket.tokenizer import build_char_tokenizer

    tokenizer = build_char_tokenizer()
    method = SPO()
    method.find_key_tokens(tokenizer)
    digits = set(tokenizer.convert_tokens_to_ids(list("0123456789")))
    assert {int(i) for i in method._key.nonzero()} == digits
    student = tiny_llama()
    assert method.trained_model(method.training_module(student)) is student
    assert SPO(key_pattern="[").check() and not SPO().check()
