"""pocket-fair: a synthetic tabular world with a sensitive attribute and a known biased label mechanism.

Each row is one applicant: numeric ``skill``, ``income``, ``hours``; categorical ``region`` (4 values) and
``education`` (3); the sensitive attribute ``group`` (1: the protected group, 40% of rows) and the label
``approved``. The generating process (ground truth, `generate`):

    group ~ Bernoulli(0.4),  skill ~ N(0, 1),  hours ~ N(0, 1),  education ~ Cat(0.3, 0.4, 0.3)
    income = 0.5·skill + 0.4·(education − 1) − 1.0·group + N(0, 0.6²)          (a proxy of group)
    region ~ Cat(0.4, 0.3, 0.2, 0.1) if group = 0 else Cat(0.1, 0.2, 0.3, 0.4)  (another proxy)
    approved = 1[1.2·skill + 0.6·income − 0.8·group + 0.3·1[region = 0] + Logistic(0, 1) > 0]

so the label is biased against the protected group directly (−0.8) and through both proxies. Splits
``train`` and ``test`` come from independent seeded streams (numpy ``default_rng([seed, split index])``),
so a split is a function of (split, size, seed) and a prefix of a larger draw is not guaranteed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

NUMERIC = ("skill", "income", "hours")
CATEGORICAL = {"region": 4, "education": 3}
SENSITIVE, LABEL = "group", "approved"
SPLITS = ("train", "test")
DEFAULT_SIZES = {"train": 4000, "test": 2000}
PROTECTED_SHARE = 0.4
REGION_PROBABILITIES = ((0.4, 0.3, 0.2, 0.1), (0.1, 0.2, 0.3, 0.4))  # by group
EDUCATION_PROBABILITIES = (0.3, 0.4, 0.3)


@dataclass(frozen=True, eq=False)
class TabularData:
    """Rows of the world (real or synthetic): numeric [N, 3] float32, categorical [N, 2] int64 (region,
    education), group [N] int64 (0/1), label [N] int64 (0/1)."""

    numeric: torch.Tensor
    categorical: torch.Tensor
    group: torch.Tensor
    label: torch.Tensor

    def __len__(self) -> int:
        return len(self.label)

    def features(self) -> torch.Tensor:
        """What a downstream classifier sees: numeric columns and one-hot categoricals; the sensitive
        attribute is left out (so any bias it learns comes through the proxies)."""
        one_hots = [torch.nn.functional.one_hot(self.categorical[:, i], size).float()
                    for i, size in enumerate(CATEGORICAL.values())]
        return torch.cat([self.numeric.float(), *one_hots], dim=1)

    def rows(self) -> torch.Tensor:
        """Every column, encoded for a generative model: numeric, then one-hot region, education, group, label."""
        return torch.cat([self.features(), torch.nn.functional.one_hot(self.group, 2).float(),
                          torch.nn.functional.one_hot(self.label, 2).float()], dim=1)

    def subset(self, indices: torch.Tensor) -> "TabularData":
        return TabularData(self.numeric[indices], self.categorical[indices], self.group[indices], self.label[indices])


def generate(split: str, size: int | None = None, seed: int = 0) -> TabularData:
    if split not in SPLITS:
        raise ValueError(f"pocket-fair split {split!r}: expected one of {SPLITS}")
    size = DEFAULT_SIZES[split] if size is None else size
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    group = (rng.random(size) < PROTECTED_SHARE).astype(np.int64)
    skill, hours = rng.normal(size=size), rng.normal(size=size)
    education = rng.choice(3, size=size, p=EDUCATION_PROBABILITIES)
    income = 0.5 * skill + 0.4 * (education - 1) - 1.0 * group + rng.normal(scale=0.6, size=size)
    uniform = rng.random(size)
    region = np.where(group == 1, _categorical(uniform, REGION_PROBABILITIES[1]),
                      _categorical(uniform, REGION_PROBABILITIES[0]))
    logit = 1.2 * skill + 0.6 * income - 0.8 * group + 0.3 * (region == 0) + rng.logistic(size=size)
    label = (logit > 0).astype(np.int64)
    return TabularData(torch.tensor(np.stack([skill, income, hours], 1), dtype=torch.float32),
                       torch.tensor(np.stack([region, education], 1)), torch.tensor(group), torch.tensor(label))


def _categorical(uniform: np.ndarray, probabilities) -> np.ndarray:
    return np.searchsorted(np.cumsum(probabilities)[:-1], uniform, side="right")


def decode_rows(numeric: torch.Tensor, logits: list[torch.Tensor], generator: torch.Generator) -> TabularData:
    """Synthetic rows from a generative model's outputs: numeric values as given, every categorical column
    (region, education, group, label: `logits` in that order) sampled from its softmax."""
    drawn = [torch.multinomial(part.float().softmax(1), 1, generator=generator).squeeze(1) for part in logits]
    return TabularData(numeric.float(), torch.stack(drawn[:2], dim=1), drawn[2], drawn[3])


# Widths of the encoded row's blocks (numeric, region, education, group, label), in `rows` order.
ROW_BLOCKS = (len(NUMERIC), *CATEGORICAL.values(), 2, 2)
