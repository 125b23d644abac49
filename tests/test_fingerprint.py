"""Model fingerprints: what a cell's key knows about its models."""

import pytest
import torch
from safetensors.torch import save_file

from distillbench.core.models import fingerprint


@pytest.fixture
def model_folder(tmp_path):
    save_file({"weight": torch.ones(2, 2)}, tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text('{"hidden_size": 2}')
    (tmp_path / "tokenizer.json").write_text('{"vocab": {"a": 0}}')
    (tmp_path / "chat_template.jinja").write_text("{{ messages[0]['content'] }}")
    (tmp_path / "zoo.json").write_text('{"built_seconds": 12.5}')
    return tmp_path


@pytest.mark.parametrize("edited", ["model.safetensors", "config.json", "tokenizer.json", "chat_template.jinja"])
def test_an_edit_to_weights_config_tokenizer_or_template_changes_the_fingerprint(model_folder, edited):
    before = fingerprint(str(model_folder))
    path = model_folder / edited
    if edited.endswith(".safetensors"):
        save_file({"weight": torch.zeros(2, 2)}, path)
    else:
        path.write_text(path.read_text() + " ")
    assert fingerprint(str(model_folder)) != before


def test_build_manifests_logs_and_readmes_do_not_change_it(model_folder):
    before = fingerprint(str(model_folder))
    (model_folder / "zoo.json").write_text('{"built_seconds": 99.0}')
    (model_folder / "README.md").write_text("notes")
    (model_folder / "train.log").write_text("step 1")
    assert fingerprint(str(model_folder)) == before


def test_a_file_added_to_the_tokenizer_changes_it(model_folder):
    before = fingerprint(str(model_folder))
    (model_folder / "merges.txt").write_text("a b")
    assert fingerprint(str(model_folder)) != before
