"""pocket-fair: a synthetic tabular world with a sensitive attribute and a known biased label mechanism.

Each row is one applicant: numeric ``skill``, ``income``, ``hours``; categorical ``region`` (4 values) and
``education`` (3); the sensitive attribute ``group`` (1: the protected group, 40% of rows) and the label
``approved`` (the schema, `TabularData`, is the tabular kind's: kinds/tabular/data.py). The generating
process (ground truth, `generate`, registered in `POCKET_DATA` as the tabular kind's source):

    group ~ Bernoulli(0.4),  skill ~ N(0, 1),  hours ~ N(0, 1),  education ~ Cat(0.3, 0.4, 0.3)
    income = 0.5·skill + 0.4·(education − 1) − 1.0·group + N(0, 0.6²)          (a proxy of group)
    region ~ Cat(0.4, 0.3, 0.2, 0.1) if group = 0 else Cat(0.1, 0.2, 0.3, 0.4)  (another proxy)
    approved = 1[1.2·skill + 0.6·income − 0.8·group + 0.3·1[region = 0] + Logistic(0, 1) > 0]

so the label is biased against the protected group directly (−0.8) and through both proxies. Splits
``train`` and ``test`` come from independent seeded streams (numpy ``default_rng([seed, split index])``),
so a split is a function of (split, size, seed) and a prefix of a larger draw is not guaranteed.
"""

from __future__ import annotations

import numpy as np
import torch

from distillbench.core.registry import POCKET_DATA
from distillbench.kinds.tabular.data import SOURCE, TabularData

SPLITS = ("train", "test")
DEFAULT_SIZES = {"train": 4000, "test": 2000}
PROTECTED_SHARE = 0.4
REGION_PROBABILITIES = ((0.4, 0.3, 0.2, 0.1), (0.1, 0.2, 0.3, 0.4))  # by group
EDUCATION_PROBABILITIES = (0.3, 0.4, 0.3)


def _named(source: str) -> str:
    return source  # the rows are a function of (split, size, seed), which the tabular recipe's data section holds


@POCKET_DATA.register(SOURCE, family="tabular", fingerprint=_named,
                      summary="pocket-fair applicants: a tabular world with a sensitive attribute and a biased label")
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
