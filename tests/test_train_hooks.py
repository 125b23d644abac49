"""The train loop owns the loop; what varies between methods goes through their hooks (methods/base.py)."""

import ast
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from distillbench.kinds.text_lm.models import load_causal_lm
from distillbench.core.recipe import Budget
from distillbench.core.registry import BENCHMARKS, METHODS
from distillbench.core.train import train
from distillbench.kinds.text_lm.batching import TokenBatching
from distillbench.kinds.text_lm.data import tokenize_records
from distillbench.methods.base import Staged
from distillbench.methods.llm.hooks import MakesExamples
from distillbench.methods.llm.sft import SFT
from distillbench.pocket.math_world import generate

TRAIN = Path(__file__).resolve().parents[1] / "distillbench" / "core" / "train.py"
BUDGET = Budget(steps=4, batch_size=4, learning_rate=1e-2, max_length=96, checkpoint_every=1)
# What train() read of a method before the hooks: none of it may come back into the loop.
OLD_FLAGS = ("generates_examples", "off_policy_schedule", "on_policy_probability", "sample_model", "stages",
             "stage", "updates_reference", "update_reference", "measure_every", "validate_every", "measure",
             "supports_chunked_loss", "loss_chunk_size", "chunk_size", "reference_model", "make_examples",
             "sample_temperature", "sample_max_new_tokens", "needs", "validation", "tokenizer", "signal_cache")


def test_the_loop_reads_no_method_flags():
    tree = ast.parse(TRAIN.read_text())
    used = set()  # every identifier of the code (its prose may name what the hooks do), and every string it holds
    for node in ast.walk(tree):
        used |= {getattr(node, name) for name in ("attr", "id", "arg") if isinstance(getattr(node, name, None), str)}
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            used.add(node.value)
    found = sorted(used & set(OLD_FLAGS))
    assert not found, f"core/train.py reads {found}: what varies between methods belongs in their hooks"


def test_the_loop_is_modality_free():
    tree = ast.parse(TRAIN.read_text())
    imported = [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module]
    assert [m for m in imported if m.startswith("distillbench") and not m.startswith("distillbench.core")] == []
    kinds = [p.name for p in (TRAIN.parents[1] / "kinds").iterdir() if p.is_dir() and not p.name.startswith("_")]
    families = {registry.entry(n).family for registry in (METHODS, BENCHMARKS) for n in registry.names()}
    names = set(METHODS.names()) | set(BENCHMARKS.names()) | set(kinds) | families
    texts = [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)]
    mentioned = {name for name in names for text in texts if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text)}
    assert not mentioned


def test_train_fits_on_a_screen():
    tree = ast.parse(TRAIN.read_text())
    function = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "train")
    assert function.end_lineno - function.lineno < 60


def _setup():
    model, tokenizer = load_causal_lm("pocket:student-init")
    return model, tokenizer, tokenize_records(tokenizer, generate("train", 16), 96)


@dataclass
class FromOther(SFT):
    """SFT whose before_step draws each step from other examples than the run's."""

    other: list = field(default_factory=list)

    def before_step(self, run):
        return run.batches(self.other)


def test_before_step_can_replace_the_steps_batches(tmp_path):
    direct, tokenizer, examples = _setup()
    other = tokenize_records(tokenizer, generate("dev", 12), 96)
    train(SFT(), direct, other, BUDGET, 0, tmp_path / "a", batching=TokenBatching(tokenizer))
    replaced = _setup()[0]
    train(FromOther(other=other), replaced, examples, BUDGET, 0, tmp_path / "b", batching=TokenBatching(tokenizer))
    for name, tensor in direct.state_dict().items():
        assert torch.equal(tensor, replaced.state_dict()[name]), name


@dataclass
class Measured(SFT):
    def after_step(self, run):
        return {"step_seen": float(run.step)} if (run.step + 1) % 2 == 0 else {}


def test_what_after_step_measures_goes_to_the_log_and_the_result(tmp_path):
    model, tokenizer, examples = _setup()
    result = train(Measured(), model, examples, BUDGET, 0, tmp_path, batching=TokenBatching(tokenizer),
                   log_path=tmp_path / "log.jsonl")
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [entry.get("measures") for entry in log] == [None, {"step_seen": 1.0}, None, {"step_seen": 3.0}]
    assert result.measures == {"step_seen": 3.0}


@dataclass
class Stages(Staged, SFT):
    """Two stages; records the stage of every batch, and where `on_stage` ran (class-level: across runs)."""

    stages = 2
    at: int = 0  # interrupted at this loss call
    calls: int = 0
    seen: list = field(default_factory=list)
    entered: list = field(default_factory=list)

    def on_stage(self, run, stage):
        self.entered.append((run.step, stage))

    def loss(self, student, batch):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        self.seen.append(batch["stage"])
        return super().loss(student, batch)


def test_a_staged_method_marks_its_batches_and_enters_each_stage(tmp_path):
    model, tokenizer, examples = _setup()
    method = Stages()
    train(method, model, examples, BUDGET, 0, tmp_path / "a", batching=TokenBatching(tokenizer))
    assert method.seen == [0, 0, 1, 1] and method.entered == [(0, 0), (2, 1)]
    interrupted = Stages(at=2)
    with pytest.raises(KeyboardInterrupt):
        train(interrupted, _setup()[0], examples, BUDGET, 0, tmp_path / "b", batching=TokenBatching(tokenizer))
    resumed = Stages()  # resumes at step 1, inside stage 0: on_stage runs for it again
    train(resumed, _setup()[0], examples, BUDGET, 0, tmp_path / "b", batching=TokenBatching(tokenizer))
    assert resumed.seen == [0, 1, 1] and resumed.entered == [(1, 0), (2, 1)]


MADE: list[int] = []  # the stage of every make_examples call


@dataclass
class MadeSFT(MakesExamples, SFT):
    """SFT on examples it makes at each of two stages: a different share of the problems each time."""

    stages = 2
    at: int = 0
    calls: int = 0

    def make_examples(self, student, tokenizer, problems, seed, stage, frozen):
        MADE.append(stage)
        return tokenize_records(tokenizer, problems[8 * stage:8 * stage + 8], 96)

    def loss(self, student, batch):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return super().loss(student, batch)


def test_examples_a_method_makes_travel_in_the_checkpoint(tmp_path):
    model, tokenizer, _ = _setup()
    problems = generate("train", 16)
    budget = Budget(steps=4, batch_size=4, learning_rate=1e-2, max_length=96, checkpoint_every=1)
    MADE.clear()
    result = train(MadeSFT(), model, problems, budget, 0, tmp_path / "a", batching=TokenBatching(tokenizer))
    assert MADE == [0, 1] and result.steps == 4
    MADE.clear()
    with pytest.raises(KeyboardInterrupt):
        train(MadeSFT(at=2), _setup()[0], problems, budget, 0, tmp_path / "b", batching=TokenBatching(tokenizer))
    resumed = _setup()[0]
    train(MadeSFT(), resumed, problems, budget, 0, tmp_path / "b", batching=TokenBatching(tokenizer))
    assert MADE == [0, 1]  # stage 0's examples came back with the checkpoint
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name
