"""Scorers for vision-language benchmarks, each following its benchmark's official evaluation code.

Pure functions over predictions and gold in the official file formats (none loads a model); the
runnable benchmarks over them, which predict through `distillbench.kinds.vlm.models`, are registered in
`benchmarks` (``vqav2``, ``pope``, ``chair``, ``videohallucer``) and their pocket instances in
`distillbench.pocket.benchmarks.pocket_vlm` (``pocket-vqa``, ``pocket-pope``, ``pocket-chair``,
``pocket-videohallucer``, scored by the same functions):

* `vqa`: VQAv2 accuracy (GT-Vision-Lab/VQA ``vqaEval.py``), normalisation and leave-one-out;
* `pope`: POPE yes/no parsing and accuracy, precision, recall, F1, yes-ratio (AoiDragon/POPE ``evaluate.py``);
* `chair`: CHAIRs, CHAIRi and recall (LisaAnne/Hallucination ``utils/chair.py``), with `chair_words`
  holding the ports of the tokenizer and singularizer that code used;
* `videohallucer`: basic, hallucinated and pair accuracy, and the yes/no-bias figures
  (patrick-tssn/VideoHallucer ``evaluations/``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from distillbench.core.errors import UserInputError


def read_json(path: str | Path) -> Any:
    """A JSON file's content; a missing or malformed file raises UserInputError naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserInputError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise UserInputError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise UserInputError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
