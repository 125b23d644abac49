"""Image classifiers: the model format of the classify family, and the architectures it builds.

A classifier reference is one of
  * ``pocket:<name>``  a pocket classifier (`POCKET_MODELS`, family ``classify``: the pocket-shapes teachers and
    zero-shot classifiers of `distillbench.pocket.shapes_classifiers`),
  * ``arch:<architecture>``  a freshly initialised network: the cell's seed decides its weights and the
    training data its number of classes (how CIFAR students start, trained from scratch),
  * a local directory holding ``classifier.json`` and ``model.safetensors``.

``classifier.json`` names the network: ``{"format": "distillbench-classifier", "library":
"distillbench" | "torchvision", "architecture": "resnet8x4", "num_classes": 100}``. With
``library: torchvision`` the architecture is any ``torchvision.models`` builder (``resnet18``, ...)
and the weights keep torchvision's own key names, so a torchvision state dict saved with
safetensors loads as it is. Weights are read from safetensors only.

Every network is wrapped in `ImageClassifier`, whose `forward_features` returns the logits and
the penultimate features (the input of the final linear layer, captured by a hook, so any
architecture works without changes). Images reach it as float tensors already normalised by the
dataset (`distillbench.kinds.image_classifier.images`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from distillbench.core.errors import UserInputError
from distillbench.core.files import replace_directory, temporary_name
from distillbench.core.inputs import input_absent
from distillbench.core.models import parse_model_ref, resolve_path
from distillbench.core.registry import ARCHITECTURES, POCKET_MODELS

FORMAT = "distillbench-classifier"
CONFIG, WEIGHTS = "classifier.json", "model.safetensors"


def register_architecture(name: str, *, head: str, summary: str = "", paper: str = "", **arguments: Any):
    """Register a network class as the architecture `name` (``arch:<name>``); `arguments` are what makes
    this architecture of the class (its depth, widths...), passed beside ``num_classes`` and a spec's options.
    `distillbench.plugins` lists where each architecture lives."""
    return ARCHITECTURES.register(name, family="classify", summary=summary, paper=paper, head=head,
                                  arguments=arguments)


@dataclass(frozen=True)
class ClassifierSpec:
    """What `classifier.json` says about a network: enough to build it before loading its weights."""

    architecture: str
    num_classes: int
    library: str = "distillbench"  # "distillbench" (the registered ARCHITECTURES) | "torchvision"
    options: dict[str, Any] = field(default_factory=dict)
    head: str | None = None  # module path of the final linear layer; None: the architecture's, or the last Linear
    extra: dict[str, Any] = field(default_factory=dict)  # provenance kept beside the spec (zoo spec, accuracy)
    # A second head on the same features and how predictions mix the two (DHO: {"kind": "dual-head",
    # "alpha": a, "beta": b}), or a head scoring subclasses of every class ({"kind": "subclasses",
    # "per_class": S}: LELP); empty for a plain classifier.
    combine: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = {"format": FORMAT, **asdict(self)}
        return {k: v for k, v in data.items() if v or k in ("num_classes",)}

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str) -> "ClassifierSpec":
        if data.get("format") != FORMAT:
            raise UserInputError(f"{source}: not a distillbench classifier ('format' is not {FORMAT!r})")
        try:
            return cls(architecture=data["architecture"], num_classes=int(data["num_classes"]),
                       library=data.get("library", "distillbench"), options=dict(data.get("options") or {}),
                       head=data.get("head"), extra=dict(data.get("extra") or {}),
                       combine=dict(data.get("combine") or {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise UserInputError(f"{source}: bad classifier spec ({exc})") from None


def _outputs(spec: ClassifierSpec) -> int:
    """How many logits the network's final layer gives: one per class, or one per subclass."""
    if spec.combine.get("kind") == "subclasses":
        return spec.num_classes * int(spec.combine["per_class"])
    return spec.num_classes


def build_network(spec: ClassifierSpec) -> tuple[nn.Module, str | None]:
    """(network, head path) for a spec, with fresh weights."""
    if spec.library == "torchvision":
        import torchvision

        try:
            network = torchvision.models.get_model(spec.architecture, weights=None, num_classes=_outputs(spec),
                                                   **spec.options)
        except (ValueError, TypeError) as exc:
            raise UserInputError(f"torchvision architecture {spec.architecture!r}: {exc}") from None
        return network, spec.head
    if spec.library != "distillbench":
        raise UserInputError(f"classifier library {spec.library!r}: expected 'distillbench' or 'torchvision'")
    entry = ARCHITECTURES.entry(spec.architecture)
    network = entry.obj(num_classes=_outputs(spec), **entry.extra["arguments"], **spec.options)
    return network, spec.head or entry.extra["head"]


def _final_linear(network: nn.Module, head: str | None) -> nn.Module:
    if head is not None:
        return network.get_submodule(head)
    linears = [m for m in network.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise UserInputError("the classifier has no linear layer to read features from; name it in 'head'")
    return linears[-1]


class ImageClassifier(nn.Module):
    """A network mapping normalised images [B, 3, H, W] to logits [B, C], with its penultimate features."""

    def __init__(self, network: nn.Module, spec: ClassifierSpec, head: str | None = None):
        super().__init__()
        self.network = network
        self.spec = spec
        self.head = _final_linear(network, head)

    @property
    def num_classes(self) -> int:
        return self.spec.num_classes

    @property
    def feature_dim(self) -> int:
        return self.head.in_features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network(images)

    def forward_features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, features): the features are what the final linear layer receives, flattened."""
        captured: list[torch.Tensor] = []
        handle = self.head.register_forward_pre_hook(lambda module, args: captured.append(args[0]))
        try:
            logits = self.network(images)
        finally:
            handle.remove()
        return logits, captured[-1].flatten(1)

    def save_pretrained(self, directory: str | Path, safe_serialization: bool = True) -> None:
        """Write ``classifier.json`` and ``model.safetensors`` (the network's own key names)."""
        save_classifier(self, Path(directory))


class DualHeadClassifier(ImageClassifier):
    """A network with a second linear head on its features; predictions mix the two heads' probabilities,
    p = α·softmax(z) + (1 − α)·softmax(z₂/β) (DHO's inference rule), and the logits returned are log p.

    Saved with the network's weights plus ``second_head.weight`` / ``second_head.bias``."""

    def __init__(self, network: nn.Module, spec: ClassifierSpec, head: str | None = None,
                 second_head: nn.Linear | None = None):
        super().__init__(network, spec, head)
        self.second_head = second_head or nn.Linear(self.feature_dim, spec.num_classes)

    @property
    def alpha(self) -> float:
        return float(self.spec.combine["alpha"])

    @property
    def beta(self) -> float:
        return float(self.spec.combine["beta"])

    def both(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(first head's logits, second head's logits, features)."""
        logits, features = super().forward_features(images)
        return logits, self.second_head(features), features

    def combine_logits(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        probs = self.alpha * first.float().softmax(1) + (1 - self.alpha) * (second.float() / self.beta).softmax(1)
        return probs.clamp_min(torch.finfo(probs.dtype).tiny).log()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        first, second, _ = self.both(images)
        return self.combine_logits(first, second)

    def forward_features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        first, second, features = self.both(images)
        return self.combine_logits(first, second), features


class SubclassClassifier(ImageClassifier):
    """A network whose final layer scores ``per_class`` subclasses of every class, class-major (output
    c·S + s). A class's probability is the sum of its subclasses' (Subclass Distillation, Müller et al.
    2020; LELP), so its logit is log Σ_s exp(z_cs); `subclass_logits` gives the S·C scores themselves."""

    @property
    def per_class(self) -> int:
        return int(self.spec.combine["per_class"])

    def subclass_logits(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(subclass logits [B, C·S], features)."""
        return super().forward_features(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return class_logits_of_subclasses(self.network(images), self.per_class)

    def forward_features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        subclass, features = self.subclass_logits(images)
        return class_logits_of_subclasses(subclass, self.per_class), features


@torch.no_grad()
def dataset_features(model, dataset, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits [N, C], penultimate features [N, D]) of a frozen classifier on every image of `dataset`, without
    augmentation, in eval mode, on the model's device, returned on the CPU: what methods fit before training and
    linear probes fit on."""
    model.eval()
    device = next(model.parameters()).device
    logits, features = [], []
    for start in range(0, len(dataset), batch_size):
        batch_logits, batch_features = model.forward_features(
            dataset.batch(range(start, min(start + batch_size, len(dataset)))).to(device))
        logits.append(batch_logits.float().cpu())
        features.append(batch_features.float().cpu())
    return torch.cat(logits), torch.cat(features)


def class_logits_of_subclasses(subclass_logits: torch.Tensor, per_class: int) -> torch.Tensor:
    """[B, C·S] class-major subclass logits → [B, C] class logits log Σ_s exp(z_cs)."""
    return subclass_logits.unflatten(1, (-1, per_class)).logsumexp(dim=2)


def with_subclass_head(model: ImageClassifier, per_class: int) -> SubclassClassifier:
    """`model`'s network with its final linear layer replaced by a fresh one scoring `per_class` subclasses
    of each class (drawn from the global RNG, as any new layer)."""
    spec = ClassifierSpec(**{**asdict(model.spec), "combine": {"kind": "subclasses", "per_class": per_class}})
    path = next(name for name, module in model.network.named_modules() if module is model.head)
    model.network.set_submodule(path, nn.Linear(model.feature_dim, model.num_classes * per_class))
    return SubclassClassifier(model.network, spec, path)


def _weights(model: ImageClassifier) -> dict[str, torch.Tensor]:
    weights = dict(model.network.state_dict())
    if isinstance(model, DualHeadClassifier):
        weights.update({f"second_head.{k}": v for k, v in model.second_head.state_dict().items()})
    return {k: v.detach().contiguous().cpu().clone() for k, v in weights.items()}


def _assemble(spec: ClassifierSpec, network: nn.Module, head: str | None,
              weights: dict[str, torch.Tensor] | None = None) -> ImageClassifier:
    """The wrapper a spec asks for, its weights loaded (strictly) when given."""
    kind = spec.combine.get("kind")
    if kind in (None, "subclasses"):
        if weights is not None:
            network.load_state_dict(weights)
        return (SubclassClassifier if kind else ImageClassifier)(network, spec, head)
    if kind != "dual-head":
        raise UserInputError(f"classifier combine kind {kind!r}: expected 'dual-head' or 'subclasses'")
    model = DualHeadClassifier(network, spec, head)
    if weights is not None:
        second = {k.removeprefix("second_head."): v for k, v in weights.items() if k.startswith("second_head.")}
        network.load_state_dict({k: v for k, v in weights.items() if not k.startswith("second_head.")})
        model.second_head.load_state_dict(second)
    return model


def save_classifier(model: ImageClassifier, directory: Path, extra: dict[str, Any] | None = None) -> None:
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    weights = _weights(model)
    save_file(weights, str(directory / WEIGHTS))
    spec = model.spec if extra is None else ClassifierSpec(**{**asdict(model.spec), "extra": extra})
    config = spec.to_json()
    config["weights_sha256"] = hashlib.sha256((directory / WEIGHTS).read_bytes()).hexdigest()
    (directory / CONFIG).write_text(json.dumps(config, indent=1) + "\n")


def save_atomic(model: ImageClassifier, target: Path, extra: dict[str, Any] | None = None) -> Path:
    """Write a classifier into `target` through a staging folder, so a kill leaves no half-written model."""
    staging = temporary_name(target)
    save_classifier(model, staging, extra)
    for path in staging.iterdir():
        path.chmod(0o644)
    replace_directory(staging, target)
    return target


def is_classifier_directory(path: str | Path) -> bool:
    return (Path(path) / CONFIG).is_file()


def read_spec(directory: str | Path) -> ClassifierSpec:
    path = Path(directory) / CONFIG
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserInputError(f"{directory}: no {CONFIG} (not a classifier directory)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserInputError(f"{path}: not valid JSON ({exc})") from None
    return ClassifierSpec.from_json(data, str(path))


def load_directory(directory: str | Path) -> ImageClassifier:
    """The classifier saved in `directory`, its weights checked against the sha256 its config records."""
    from safetensors.torch import load_file

    directory = Path(directory)
    spec = read_spec(directory)
    weights_path = directory / WEIGHTS
    if not weights_path.is_file():
        raise UserInputError(f"{directory}: no {WEIGHTS} (weights are read from safetensors only)")
    expected = json.loads((directory / CONFIG).read_text()).get("weights_sha256")
    if expected and hashlib.sha256(weights_path.read_bytes()).hexdigest() != expected:
        raise UserInputError(f"{weights_path}: sha256 does not match {CONFIG} (corrupt or replaced weights)")
    network, head = build_network(spec)
    try:
        return _assemble(spec, network, head, load_file(str(weights_path)))
    except RuntimeError as exc:
        raise UserInputError(f"{weights_path}: weights do not fit {spec.architecture} "
                             f"({str(exc).splitlines()[0]})") from None


def initialised(architecture: str, num_classes: int, seed: int) -> ImageClassifier:
    """A fresh `architecture` network, its weights a function of `seed` (the global RNG is left alone)."""
    spec = ClassifierSpec(architecture, num_classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network, head = build_network(spec)
    return ImageClassifier(network, spec, head)


# --- references ------------------------------------------------------------------------
def is_classifier_ref(text: str) -> bool:
    """Whether a model reference names an image classifier (not a language model)."""
    ref = parse_model_ref(text)
    if ref.backend == "arch":
        return True
    if ref.backend == "pocket":
        return ref.name in POCKET_MODELS and POCKET_MODELS.entry(ref.name).family == "classify"
    return ref.backend == "local" and (is_classifier_directory(ref.name) or input_absent(ref.name))


def classifier_spec(text: str) -> ClassifierSpec | None:
    """The spec of a saved classifier reference (None for ``arch:``, whose classes come from the data)."""
    ref = parse_model_ref(text)
    if ref.backend == "arch":
        return None
    return read_spec(resolve_path(ref))


def load_classifier(text: str, *, num_classes: int | None = None, seed: int = 0) -> ImageClassifier:
    """The classifier a reference names; ``arch:`` builds one with `num_classes` outputs from `seed`."""
    ref = parse_model_ref(text)
    if ref.backend == "arch":
        if num_classes is None:
            raise UserInputError(f"{text}: a fresh network needs its number of classes (from the training data)")
        return initialised(ref.name, num_classes, seed)
    return load_directory(resolve_path(ref))


def convert_checkpoint(architecture: str, num_classes: int, checkpoint: Path, target: Path,
                       library: str = "distillbench") -> Path:
    """A ``.pth`` checkpoint of RepDistiller/mdistiller (``{"model": state_dict}``) or a bare state dict,
    read with ``weights_only=True``, written as a classifier directory. Key names must match the
    architecture's (the CIFAR architectures here keep RepDistiller's)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    spec = ClassifierSpec(architecture, num_classes, library)
    network, head = build_network(spec)
    missing, unexpected = network.load_state_dict(state, strict=False)
    # A dual-head checkpoint (DHKD) carries a second head that inference does not use.
    unexpected = [key for key in unexpected if not key.startswith("fc2.")]
    if missing or unexpected:
        raise UserInputError(f"{checkpoint}: does not fit {architecture}: missing {missing[:3]}, "
                             f"unexpected {unexpected[:3]}")
    return save_atomic(ImageClassifier(network, spec, head), target)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m distillbench.kinds.image_classifier.classifiers",
                                     description="Convert a .pth classifier checkpoint into a distillbench "
                                     "classifier directory (classifier.json + model.safetensors).")
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--architecture", required=True, help="e.g. resnet32x4, wrn_40_2 (or a torchvision name "
                        "with --library torchvision)")
    parser.add_argument("--num-classes", type=int, required=True)
    parser.add_argument("--library", default="distillbench", choices=["distillbench", "torchvision"])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        print(convert_checkpoint(args.architecture, args.num_classes, args.checkpoint, args.out, args.library))
    except UserInputError as exc:
        for line in exc.problems:
            print(f"error: {line}")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
