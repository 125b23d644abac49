"""Image data (pocket-shapes tasks, CIFAR-100 folders, augmentation) and the classifier format."""

import pickle

import numpy as np
import pytest
import torch

from distillbench.kinds.image_classifier.classifiers import (ClassifierSpec, convert_checkpoint, initialised, load_classifier,
                                              load_directory, save_atomic)
from distillbench.core.errors import UserInputError
from distillbench.kinds.image_classifier.images import augment_batch, load_image_dataset
from distillbench.pocket.shapes_classifiers import TASKS, largest, pocket_dataset


@pytest.mark.parametrize("task", list(TASKS))
def test_pocket_tasks_are_deterministic_disjoint_and_unambiguous(task):
    train = pocket_dataset(f"pocket:shapes-{task}", "train", 300)
    again = pocket_dataset(f"pocket:shapes-{task}", "train", 200)
    test = pocket_dataset(f"pocket:shapes-{task}", "test", 100)
    assert train.ids[:200] == again.ids and torch.equal(train.images[:200], again.images)  # a prefix, not a reshuffle
    assert not set(train.ids) & set(test.ids)
    assert train.num_classes == len(TASKS[task]) and int(train.labels.max()) < train.num_classes
    assert train.images.dtype == torch.uint8 and train.images.shape[1:] == (3, 32, 32)
    assert len(set(train.labels.tolist())) == train.num_classes  # every class appears


def test_labels_come_from_the_largest_shape():
    from distillbench.pocket.shapes_classifiers import _scenes, label

    for scene in _scenes("train", 50, 0):
        big = largest(scene)
        assert big is not None and all(s.side < big.side for s in scene.shapes if s is not big)
        assert TASKS["many"][label("many", scene)] == f"{big.color} {big.kind}"
        assert TASKS["shape"][label("shape", scene)] == big.kind


def test_augmentation_is_a_function_of_the_generator_and_keeps_size():
    images = pocket_dataset("pocket:shapes-many", "train", 16).images
    draw = lambda seed: augment_batch(images, "crop-flip", torch.Generator().manual_seed(seed))
    assert torch.equal(draw(1), draw(1)) and not torch.equal(draw(1), draw(2))
    assert draw(1).shape == images.shape
    flipped = augment_batch(images, "flip", torch.Generator().manual_seed(3))
    assert all(torch.equal(f, i) or torch.equal(f, i.flip(2)) for f, i in zip(flipped, images))


def test_cifar100_folder_reads_in_torchvision_layout(fake_cifar100):
    train = load_image_dataset(str(fake_cifar100), "train")
    test = load_image_dataset(str(fake_cifar100 / "cifar-100-python"), "test", 10)
    assert len(train) == 48 and len(test) == 10 and train.num_classes == 100
    assert train.class_names[3] == "class03" and test.ids[0] == "test/00000"
    raw = pickle.loads((fake_cifar100 / "cifar-100-python" / "train").read_bytes())
    assert np.array_equal(train.images[0].numpy().reshape(-1), raw[b"data"][0])
    batch = train.batch([0, 1])
    assert batch.dtype == torch.float32 and abs(float(batch.mean())) < 1.0


def test_cifar_pickles_cannot_run_code(tmp_path, fake_cifar100):
    class Exploit:
        def __reduce__(self):
            return (print, ("owned",))

    folder = fake_cifar100 / "cifar-100-python"
    (folder / "test").write_bytes(pickle.dumps({b"data": Exploit()}))
    with pytest.raises(UserInputError, match="refusing to load builtins.print"):
        load_image_dataset(str(fake_cifar100), "test")


def test_classifier_round_trip_and_features(tmp_path):
    model = initialised("resnet8x4", 100, seed=3)
    assert torch.equal(initialised("resnet8x4", 100, seed=3).network.fc.weight, model.network.fc.weight)
    save_atomic(model.eval(), tmp_path / "m")
    loaded = load_classifier(str(tmp_path / "m")).eval()
    images = torch.randn(2, 3, 32, 32)
    logits, features = loaded.forward_features(images)
    assert torch.allclose(logits, model(images)) and features.shape == (2, 256)
    assert torch.allclose(loaded.network.fc(features), logits, atol=1e-6)
    (tmp_path / "m" / "model.safetensors").write_bytes(b"corrupt")
    with pytest.raises(UserInputError, match="sha256"):
        load_directory(tmp_path / "m")


def test_repdistiller_checkpoints_convert(tmp_path):
    """A RepDistiller/mdistiller .pth ({'model': state_dict}) of the same architecture loads unchanged."""
    source = initialised("wrn_16_2", 100, seed=1).network
    torch.save({"model": source.state_dict(), "epoch": 240}, tmp_path / "ckpt.pth")
    convert_checkpoint("wrn_16_2", 100, tmp_path / "ckpt.pth", tmp_path / "wrn")
    converted = load_classifier(str(tmp_path / "wrn")).eval()
    images = torch.randn(2, 3, 32, 32)
    assert torch.allclose(converted(images), source.eval()(images))


def test_torchvision_architectures_load_with_their_own_keys(tmp_path):
    from distillbench.kinds.image_classifier.classifiers import build_network, ImageClassifier

    spec = ClassifierSpec("resnet18", 10, library="torchvision")
    network, head = build_network(spec)
    model = ImageClassifier(network, spec, head)
    assert model.feature_dim == 512 and model.head is network.fc
    save_atomic(model, tmp_path / "tv")
    assert "fc.weight" in __import__("safetensors.torch").torch.load_file(str(tmp_path / "tv" / "model.safetensors"))
    assert load_classifier(str(tmp_path / "tv")).num_classes == 10


@pytest.mark.parametrize("name, parameters", [("resnet8x4", 1.23), ("resnet32x4", 7.43), ("wrn_16_2", 0.70),
                                              ("wrn_40_2", 2.26), ("resnet20", 0.28), ("resnet56", 0.86)])
def test_cifar_architectures_have_the_crd_paper_sizes(name, parameters):
    model = initialised(name, 100, seed=0)
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 2) == parameters
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 100)
