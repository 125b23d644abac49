"""Test settings: the tiny pocket zoo, built once per session into a temporary cache."""

import os
import tempfile
from pathlib import Path

import pytest

# Set before distillbench is imported anywhere, so every test sees the tiny zoo.
os.environ["DISTILLBENCH_ZOO_SCALE"] = "tiny"
os.environ.setdefault("DISTILLBENCH_CACHE", tempfile.mkdtemp(prefix="distillbench-test-cache-"))

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The real benchmark files in ../shared/data; skipped where a clone has no ../shared."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent (real benchmark files live beside the repository, not in it)")
    return SHARED_DATA


TINY_RECIPE = """
name: tiny
kind: text-lm
teacher: pocket:teacher-sft
student: pocket:student-init
data: {{source: "pocket:math", size: 64}}
budget: {{steps: 3, batch_size: 8, learning_rate: 1.0e-3, max_length: 96, checkpoint_every: 1}}
seeds: [0]
methods: {methods}
benchmarks: [{{name: pocket-math, n: 12, max_new_tokens: 16}}]
output_dir: {out}
"""


@pytest.fixture
def tiny_recipe(tmp_path):
    """Write a tiny recipe; returns a function (methods YAML) -> recipe path."""

    def write(methods: str = "[sft, {name: kd, temperature: 2.0}]", name: str = "tiny.yaml") -> Path:
        path = tmp_path / name
        path.write_text(TINY_RECIPE.format(methods=methods, out=tmp_path / "out"))
        return path

    return write


def leaf_copies(*tensors):
    """Fresh leaf tensors that require grad, one per input (one set for the fast path, one for the naive)."""
    return tuple(t.clone().requires_grad_() for t in tensors)


def assert_same_value_and_gradients(fast, slow, fast_inputs, slow_inputs):
    """A loss and its naive reference agree in value and in the gradient with respect to every input."""
    import torch

    assert torch.allclose(fast, slow)
    for got, want in zip(torch.autograd.grad(fast, fast_inputs), torch.autograd.grad(slow, slow_inputs)):
        assert torch.allclose(got, want)


@pytest.fixture(scope="module")
def tiny_t2i_teacher(tmp_path_factory):
    """The pocket text-to-image teacher at its tiny spec (trains in seconds), built into a fresh cache."""
    from distillbench.pocket import t2i_zoo

    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DISTILLBENCH_ZOO_SCALE", "tiny")
        patch.setenv("DISTILLBENCH_CACHE", str(cache))
        yield t2i_zoo.model_dir("t2i-teacher")
