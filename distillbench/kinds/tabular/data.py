"""The tabular kind's rows: the pocket-fair world's schema (its columns, `TabularData`, the encoding a
generative model sees and the decoding of its outputs), and the world's rows read through `POCKET_DATA`
(the world registers its generator there, `distillbench/pocket/fair_tabular.py`).

Each row is one applicant: numeric ``skill``, ``income``, ``hours``; categorical ``region`` (4 values) and
``education`` (3); the sensitive attribute ``group`` (1: the protected group) and the label ``approved``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from distillbench.core.registry import POCKET_DATA

NUMERIC = ("skill", "income", "hours")
CATEGORICAL = {"region": 4, "education": 3}
SENSITIVE, LABEL = "group", "approved"
# The pocket data source of the world's rows (family "tabular": read as (split, size, seed) -> TabularData).
SOURCE = "pocket:fair"


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


def decode_rows(numeric: torch.Tensor, logits: list[torch.Tensor], generator: torch.Generator) -> TabularData:
    """Synthetic rows from a generative model's outputs: numeric values as given, every categorical column
    (region, education, group, label: `logits` in that order) sampled from its softmax."""
    drawn = [torch.multinomial(part.float().softmax(1), 1, generator=generator).squeeze(1) for part in logits]
    return TabularData(numeric.float(), torch.stack(drawn[:2], dim=1), drawn[2], drawn[3])


# Widths of the encoded row's blocks (numeric, region, education, group, label), in `rows` order.
ROW_BLOCKS = (len(NUMERIC), *CATEGORICAL.values(), 2, 2)


def world_rows(split: str, size: int | None = None, seed: int = 0) -> TabularData:
    """`size` rows of the pocket-fair world's `split` ('train' or 'test'; None: the world's default size)."""
    return POCKET_DATA.get(SOURCE)(split, size, seed)
