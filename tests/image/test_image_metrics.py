"""FID and KID: closed forms, symmetry, unbiasedness, and agreement with clean-fid and torchmetrics."""

import json

import numpy as np
import pytest

from distillbench.benchmarks import image_metrics as im


def gaussian(n, d, seed, shift=0.0, scale=1.0):
    rng = np.random.default_rng(seed)
    mixing = np.eye(d) + 0.3 * np.random.default_rng(99).standard_normal((d, d)) / np.sqrt(d)
    return shift + scale * rng.standard_normal((n, d)) @ mixing


def relative(a, b):
    return abs(a - b) / max(abs(b), 1e-12)


def test_fid_of_identical_sets_is_zero_and_fid_is_symmetric():
    a, b = gaussian(400, 24, 0), gaussian(300, 24, 1, shift=0.4, scale=1.3)
    scale = np.trace(np.cov(a, rowvar=False))
    assert abs(im.fid_from_features(a, a)) < 1e-10 * scale
    assert im.fid_from_features(a, b) == pytest.approx(im.fid_from_features(b, a), rel=1e-10)
    assert im.fid_from_features(a, b) > 1


def test_fid_closed_forms():
    # equal covariances: FID is the squared distance of the means
    a = gaussian(200, 16, 2)
    shift = np.linspace(-1, 1, 16)
    assert im.fid_from_features(a, a + shift) == pytest.approx(shift @ shift, rel=1e-9)
    # commuting (diagonal) covariances: Σ (√s1 − √s2)²
    s1, s2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    value = im.frechet_distance(np.zeros(3), np.diag(s1), np.ones(3), np.diag(s2))
    assert value == pytest.approx(3 + ((np.sqrt(s1) - np.sqrt(s2)) ** 2).sum(), rel=1e-12)


def test_fid_stays_finite_and_non_negative_with_singular_covariances():
    # fewer samples than dimensions (as with 2048-d Inception features on small sets)
    a, b = gaussian(20, 64, 3), gaussian(25, 64, 4, shift=0.1)
    value = im.fid_from_features(a, b)
    assert np.isfinite(value) and value > 0
    assert abs(im.fid_from_features(a, a)) < 1e-8 * np.trace(np.cov(a, rowvar=False))


def test_fid_agrees_with_clean_fid():
    cleanfid = pytest.importorskip("cleanfid.fid")
    for n, d, seed in [(500, 32, 0), (200, 64, 1), (1000, 8, 2)]:
        a, b = gaussian(n, d, seed), gaussian(n + 37, d, seed + 10, shift=0.2, scale=1.1)
        assert relative(im.fid_from_features(a, b), cleanfid.fid_from_feats(a, b)) <= 1e-4


def test_fid_agrees_with_torchmetrics():
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchmetrics")
    from torchmetrics.image.fid import FrechetInceptionDistance

    class Features(torch.nn.Module):
        num_features = 32

        def forward(self, x):
            return x

    for n, seed in [(500, 0), (40, 5)]:  # n=40 < d: singular covariances
        a, b = gaussian(n, 32, seed), gaussian(n + 11, 32, seed + 1, shift=0.3)
        metric = FrechetInceptionDistance(feature=Features())
        metric.update(torch.from_numpy(a), real=True)
        metric.update(torch.from_numpy(b), real=False)
        assert relative(im.fid_from_features(a, b), float(metric.compute())) <= 1e-4


def test_polynomial_mmd_is_the_unbiased_estimator():
    x, y = gaussian(30, 5, 0), gaussian(30, 5, 1, shift=0.5)
    kernel = lambda u, v: (u @ v / 5 + 1) ** 3  # noqa: E731
    m = len(x)
    naive = (sum(kernel(x[i], x[j]) + kernel(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
             - 2 * sum(kernel(x[i], y[j]) for i in range(m) for j in range(m)) / m**2)
    assert im.polynomial_mmd(x, y) == pytest.approx(naive, rel=1e-10)


def test_kid_is_unbiased_near_zero_for_one_distribution():
    same = [im.polynomial_mmd(gaussian(40, 8, 2 * s), gaussian(40, 8, 2 * s + 1)) for s in range(60)]
    spread = np.std(same) / np.sqrt(len(same))
    assert abs(np.mean(same)) < 3 * spread  # unbiased: centred on 0, individual values can be negative
    assert min(same) < 0
    different = im.kid_from_features(gaussian(200, 8, 0), gaussian(200, 8, 1, shift=0.5), num_subsets=10)[0]
    assert different > 20 * spread


def test_kid_agrees_with_clean_fid_subset_for_subset():
    cleanfid = pytest.importorskip("cleanfid.fid")
    a, b = gaussian(300, 16, 0), gaussian(250, 16, 1, shift=0.2)
    for subsets, size, seed in [(10, 100, 0), (5, 1000, 3)]:
        np.random.seed(seed)
        theirs = cleanfid.kernel_distance(a, b, num_subsets=subsets, max_subset_size=size)
        ours = im.kid_from_features(a, b, num_subsets=subsets, subset_size=size, seed=seed)[0]
        assert relative(ours, theirs) <= 1e-4


def test_kid_agrees_with_torchmetrics():
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchmetrics")
    from torchmetrics.image.kid import KernelInceptionDistance, poly_mmd

    a, b = gaussian(120, 16, 0), gaussian(120, 16, 1, shift=0.2)
    # on one subset, the two estimators are the same function
    assert relative(im.polynomial_mmd(b, a), float(poly_mmd(torch.from_numpy(a), torch.from_numpy(b)))) <= 1e-10

    class Features(torch.nn.Module):
        num_features = 16

        def forward(self, x):
            return x

    # subsets as large as the sets are permutations of them: every subset gives the same value
    metric = KernelInceptionDistance(feature=Features(), subsets=3, subset_size=120)
    metric.update(torch.from_numpy(a), real=True)
    metric.update(torch.from_numpy(b), real=False)
    mean, std = metric.compute()
    ours, our_std = im.kid_from_features(a, b, num_subsets=3, subset_size=1000)
    assert relative(ours, float(mean)) <= 1e-4 and our_std == pytest.approx(float(std), abs=1e-10)


class CountingExtractor:
    identity = {"extractor": "mean colour", "resize": "none"}

    def __init__(self):
        self.calls = 0

    def __call__(self, images):
        self.calls += 1
        return np.stack([np.asarray(i, dtype=np.float64).reshape(-1, 3).mean(0) for i in images])


def test_reference_statistics_are_cached_by_content(tmp_path):
    images = [np.full((4, 4, 3), value, dtype=np.uint8) + np.arange(3, dtype=np.uint8) * value % 7
              for value in range(10)]
    extractor = CountingExtractor()
    first = im.reference_statistics(images, extractor, cache_dir=tmp_path)
    again = im.reference_statistics(images[::-1], extractor, cache_dir=tmp_path)  # a set: order does not matter
    assert extractor.calls == 1 and again.reference_hash == first.reference_hash
    np.testing.assert_array_equal(again.sigma, first.sigma)
    other = im.reference_statistics(images[:-1], extractor, cache_dir=tmp_path)
    assert extractor.calls == 2 and other.reference_hash != first.reference_hash
    result = im.fid(extractor(images), first)
    assert result["value"] == pytest.approx(0, abs=1e-9)
    protocol = result["protocol"]
    assert protocol["metric"] == "fid" and protocol["reference_hash"] == first.reference_hash
    assert protocol["samples"] == 10 and protocol["reference_samples"] == 10 and protocol["resize"] == "none"
    assert "eigvalsh" in protocol["numerics"] and "clean-fid" in protocol["agrees_with"]
    kid = im.kid(extractor(images), first, num_subsets=4, subset_size=5)
    assert kid["protocol"]["subset_size"] == 5 and kid["protocol"]["subsets"] == 4
    with pytest.raises(ValueError, match="another extractor"):
        im.features_for(images, type("Other", (CountingExtractor,), {"identity": {"extractor": "x"}})(), first)


def test_pocket_features_separate_shifted_distributions():
    from distillbench.pocket import shapes
    from distillbench.pocket.shapes_features import PocketFeatureExtractor

    extractor = PocketFeatureExtractor()
    assert extractor.identity["feature_dim"] == 128
    train = [s.render() for s in shapes.generate("train", 300)]
    test = [s.render() for s in shapes.generate("test", 300)]
    reds_only = [s.render() for s in shapes.generate("test", 300, tags=("colors",), seed=1)
                 if s.shapes[0].color in ("red", "orange", "pink")]
    one_or_many = [s.render() for s in shapes.generate("test", 300, tags=("single_object", "counting"))]
    features = {name: extractor(images) for name, images in
                [("train", train), ("test", test), ("reds", reds_only), ("one_or_many", one_or_many)]}
    same = im.fid_from_features(features["train"], features["test"])
    assert im.fid_from_features(features["train"], features["reds"]) > 3 * same
    assert im.fid_from_features(features["train"], features["one_or_many"]) > 3 * same
    # other image sizes are resized to the network's input
    big = [s.render() for s in shapes.generate("test", 4, image_size=64)]
    assert extractor(big).shape == (4, 128)


def _fake_inception_folder(tmp_path):
    """A torchscript with clean-fid's Inception interface (``layers`` → 2048-d), random weights."""
    torch = pytest.importorskip("torch")

    class Layers(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 2048, 8, stride=8)

        def forward(self, x):
            return torch.nn.functional.adaptive_avg_pool2d(self.conv(x), 1)

    class Base(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = Layers()

        def forward(self, x, return_features: bool = False):
            x = torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
            return self.layers((x - 128) / 128)

    torch.manual_seed(0)
    tmp_path.mkdir(parents=True, exist_ok=True)
    torch.jit.script(Base()).save(str(tmp_path / "inception-2015-12-05.pt"))
    return tmp_path


def test_clean_fid_inception_extractor_preprocesses_exactly_as_clean_fid(tmp_path):
    pytest.importorskip("cleanfid")
    import torch
    from cleanfid.fid import get_files_features
    from cleanfid.inception_torchscript import InceptionV3W
    from PIL import Image

    from distillbench.pocket import shapes

    weights = _fake_inception_folder(tmp_path / "weights")
    images = [s.render() for s in shapes.generate("test", 3)]
    files = []
    for index, image in enumerate(images):
        files.append(tmp_path / f"{index}.png")
        Image.fromarray(image).save(files[-1])
    for mode in ("clean", "legacy_tensorflow"):
        extractor = im.CleanFIDInception(weights, mode=mode)
        model = InceptionV3W(str(weights), download=False, resize_inside=(mode == "legacy_tensorflow"))
        theirs = get_files_features([str(f) for f in files], model=model, num_workers=0, batch_size=2,
                                    device=torch.device("cpu"), mode=mode, verbose=False)
        np.testing.assert_allclose(extractor(images), theirs, rtol=1e-6, atol=1e-6)
        assert extractor.identity["weights_sha256"] and mode in extractor.identity["resize"]
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        im.CleanFIDInception(tmp_path / "nowhere")


def test_command_line(tmp_path, capsys, monkeypatch):
    from distillbench.pocket import shapes

    monkeypatch.setenv("DISTILLBENCH_CACHE", str(tmp_path / "cache"))
    for split, count in [("train", 40), ("test", 30)]:
        (tmp_path / split).mkdir()
        for index, scene in enumerate(shapes.generate(split, count)):
            scene.to_pil().save(tmp_path / split / f"{index}.png")
    arguments = ["--reference", str(tmp_path / "train"), "--generated", str(tmp_path / "test"), "--kid-subsets", "5"]
    assert im.main(arguments) == 0
    results = json.loads(capsys.readouterr().out)
    assert results["fid"]["protocol"]["samples"] == 30 and results["kid"]["protocol"]["subset_size"] == 30
    assert list((tmp_path / "cache" / "image-stats").glob("*.npz"))
    assert im.main(["--reference", str(tmp_path / "empty"), "--generated", str(tmp_path / "test")]) == 2


def test_feature_net_trains_saves_and_verifies_its_weights(tmp_path):
    from distillbench.pocket import shapes_features

    spec = shapes_features.FeatureNetSpec(train_scenes=64, steps=3, batch_size=8)
    model, report = shapes_features.train(spec)
    directory = shapes_features.save(model, spec, report, tmp_path / "net")
    loaded, config = shapes_features.load(directory)
    assert config["spec_hash"] == spec.spec_hash() and config["feature_dim"] == 128
    images = shapes_features.to_tensor([s.render() for s in shapes_features.generate("test", 4)])
    assert torch_allclose(loaded.features(images), model.features(images))
    weights = directory / shapes_features.WEIGHTS
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256"):
        shapes_features.load(directory)


def torch_allclose(a, b):
    import torch

    with torch.no_grad():
        return torch.allclose(a, b)
