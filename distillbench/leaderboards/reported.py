"""Numbers the seed papers report, kept beside the numbers distillbench reproduces.

Each entry is one number as its paper (or the authors' repository) prints it, with the
setting it was measured in and how it was measured. `value` is on distillbench's scale for
the metric (accuracy as a fraction, FID and judge scores as printed); `printed` is the
source's own text. `verified` is False where our reading notes have the number only from a
secondary summary or marked it unverified: such entries are shown, and said to be unchecked.

A leaderboard row reproduces an entry when its method, benchmark, metric and student model are the
same (and its board's teacher, where the entry's teacher is a registered architecture);
the entry is then shown beside it with the difference (reproduced − reported), which only
means something as far as the protocols agree (`protocol` says where they differ). Entries
that no row reproduces (on the pocket worlds, nearly all) are listed in a separate section.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from distillbench.core.registry import ARCHITECTURES, METHODS


@dataclass(frozen=True)
class Reported:
    paper: str
    arxiv: str | None  # arXiv id, e.g. "2505.24850"; None where the number has no arXiv paper
    table: str  # where in the source the number is printed
    setting: str  # the training setting in one line
    teacher: str | None  # None for methods without a teacher (preference alignment on fixed data)
    student: str
    method: str  # distillbench's method name (registered, or the name it would have)
    benchmark: str  # a registered benchmark, or one of EXTERNAL_BENCHMARKS
    metric: str
    value: float  # on distillbench's scale (accuracy as a fraction)
    printed: str  # the number as the source prints it
    protocol: str  # how it was measured, and where that differs from distillbench
    source: str  # where it was read
    family: str  # llm | classify | diffusion | vlm
    verified: bool = True

    @property
    def metric_key(self) -> str:
        return f"{self.benchmark}/{self.metric}"


# Benchmarks the papers report on that distillbench does not (yet) register: what each means.
EXTERNAL_BENCHMARKS = {
    "aime24": "the 30 AIME 2024 problems, final-answer accuracy",
    "amc23": "AMC 2023 problems, final-answer accuracy",
    "minerva-math": "the Minerva Math problem set (Lewkowycz et al. 2022), final-answer accuracy",
    "olympiadbench": "OlympiadBench (math, text-only), final-answer accuracy",
    "math-avg5": "the mean accuracy over MATH-500, AIME24, AMC23, Minerva Math and OlympiadBench, as REDI reports it",
    "arc-challenge": "ARC-Challenge multiple-choice accuracy",
    "imagenet": "ImageNet-1k validation top-1 accuracy",
    "imagenet64": "class-conditional ImageNet 64x64 generation: FID of 50k samples against EDM's reference statistics",
    "coco2014-30k": "zero-shot text-to-image on 30k COCO-2014 validation captions at 256px: FID, and CLIP score "
                    "as a raw cosine",
    "object-halbench": "Object HalBench: share of responses (response level) or object mentions (mention level) "
                       "that hallucinate, lower is better",
    "mmbench": "MMBench multiple-choice accuracy (CircularEval)",
    "cifar10-gen": "CIFAR-10 32x32 generation: FID of 50k samples against EDM's reference statistics",
    "hpsv2": "the HPSv2 benchmark: the mean Human Preference Score v2 over its four styles' prompts",
}

_REDI = dict(paper="Xu et al. 2025 (REDI)", arxiv="2505.24850", table="repository README, results table",
             setting="Qwen2.5-Math-1.5B: SFT on 78k positive traces, then REDI on 131k positive and negative traces",
             teacher="reasoning traces from Open-R1", student="Qwen2.5-Math-1.5B", method="redi",
             protocol="pass@1 averaged over 16 samples per problem (distillbench: one greedy answer); the authors' "
                      "open-r1/lighteval scripts", source="github.com/Tim-Siu/reinforcement-distillation README",
             family="llm")
_MCTS_DPO = dict(paper="Xie et al. 2024 (MCTS-DPO)", arxiv="2405.00451", table="abstract (arXiv v2)",
                 setting="Mistral-7B SFT policy, iterative step-level DPO on pairs from Monte Carlo tree search",
                 teacher=None, student="Mistral-7B (SFT)", method="mcts-dpo",
                 source="arXiv:2405.00451v2 abstract", family="llm")
def _repdistiller(run: str, loss: str) -> dict[str, Any]:
    """The fields of a number from the RepDistiller README's CIFAR-100 table: `run` names the column, `loss`
    the training loss behind it."""
    return dict(paper=f"Tian et al. 2020 (CRD){run}", arxiv="1910.10699", table="repository README, CIFAR-100 table",
                source="github.com/HobbitLong/RepDistiller@b84f547 README", family="classify",
                protocol="test top-1 (the README does not say of which epoch; train_student.py tracks and prints the "
                         "best epoch's, best_acc, while distillbench scores the final model); SGD lr 0.05, batch 64, "
                         f"240 epochs, decay at 150/180/210; {loss}")


_DKD_README = dict(paper="Zhao et al. 2022 (DKD)", arxiv="2203.08679", table="repository README, CIFAR-100 table",
                   source="github.com/megvii-research/mdistiller@a08d46f README",
                   protocol="mean of 5 runs; the mdistiller CIFAR recipe (SGD lr 0.05, 240 epochs; its trainer "
                            "logs the best epoch's test top-1, best_acc, while distillbench scores the final model); "
                            "DKD alpha=1, beta per pair, T=4", family="classify")
_CIFAR_STUDENTS = (  # each student trained alone (the RepDistiller README's student column)
    ("ResNet20", "69.06"), ("ResNet32", "71.14"), ("ResNet8x4", "72.50"), ("WRN-16-2", "73.26"),
    ("WRN-40-1", "71.98"), ("VGG8", "70.36"),
)
_LLAVA_MOD = dict(paper="Shu et al. 2025 (LLaVA-MoD)", arxiv="2408.15881", table="results as summarised by a "
                  "secondary source", setting="dense-to-sparse distillation into a 2B MoE student, then preference "
                  "distillation with the teacher as reference (kto_pair) on RLAIF-V",
                  teacher="LLaVA-1.5-style Qwen2-7B", student="Qwen 1.8B MoE (4 experts, top-2)", method="llava-mod",
                  protocol="the whole LLaVA-MoD pipeline (not its preference stage alone); VLM benchmarks "
                           "distillbench does not run yet",
                  source="secondary summary noted in the reference notes; not checked against the paper",
                  family="vlm", verified=False)
_CIFAR_PAIRS = (  # teacher, student, KD (RepDistiller README), DKD (mdistiller README)
    ("ResNet32x4", "ResNet8x4", "73.33", "76.32"),
    ("ResNet56", "ResNet20", "70.66", "71.97"),
    ("ResNet110", "ResNet32", "73.08", "74.11"),
    ("WRN-40-2", "WRN-16-2", "74.92", "76.23"),
    ("WRN-40-2", "WRN-40-1", "73.54", "74.81"),
    ("VGG13", "VGG8", "72.98", "74.68"),
)


def _percent(printed: str) -> float:
    return round(float(printed) / 100, 6)


REPORTED: tuple[Reported, ...] = (
    *(Reported(**_REDI, benchmark=bench, metric="accuracy", value=_percent(printed), printed=printed)
      for bench, printed in (("math500", "83.1"), ("aime24", "28.1"), ("amc23", "62.4"), ("minerva-math", "28.8"),
                             ("olympiadbench", "45.2"), ("math-avg5", "49.5"))),
    Reported(**{**_REDI, "method": "sft", "setting": "Qwen2.5-Math-1.5B: SFT on the positive traces, 5 epochs "
                "(the baseline REDI starts from)"}, benchmark="math-avg5", metric="accuracy",
             value=_percent("45.8"), printed="45.8"),
    Reported(paper="Pattnaik et al. 2024 (Curry-DPO)", arxiv="2403.07230", table="results (table not recorded)",
             setting="Zephyr-7B, iterative DPO on ranked pairs ordered easy to hard",
             teacher=None, student="Zephyr-7B", method="curry-dpo", benchmark="mtbench", metric="score",
             value=7.43, printed="7.43", protocol="MT-Bench single-answer grading (the judge model is not in our "
             "notes; distillbench's score is comparable only with the same judge)", source="arXiv:2403.07230 (as "
             "the reference notes record it; not the same 7.43 as the Zephyr LoRA of alignment-handbook #45)",
             family="llm"),
    Reported(**_MCTS_DPO, benchmark="gsm8k", metric="flexible_extract", value=_percent("81.8"), printed="81.8",
             protocol="the paper's own answer extraction; flexible_extract is distillbench's closest metric"),
    Reported(**_MCTS_DPO, benchmark="math", metric="accuracy", value=_percent("34.7"), printed="34.7",
             protocol="the paper's own answer checking (distillbench: math-verify by default)"),
    Reported(**_MCTS_DPO, benchmark="arc-challenge", metric="accuracy", value=_percent("76.4"), printed="76.4",
             protocol="the paper's own evaluation"),
    *(Reported(**_repdistiller(", KD baseline run", "KD: 0.1 CE + 0.9 KL, T=4"),
               setting=f"CIFAR-100, teacher {teacher} to student {student}", teacher=teacher,
               student=student, method="hinton-kd", benchmark="cifar100", metric="accuracy", value=_percent(kd),
               printed=kd)
      for teacher, student, kd, _ in _CIFAR_PAIRS),
    *(Reported(**_repdistiller(", student baseline run", "cross-entropy alone"),
               setting=f"CIFAR-100, {student} trained alone", teacher=None, student=student, method="ce",
               benchmark="cifar100", metric="accuracy", value=_percent(accuracy), printed=accuracy)
      for student, accuracy in _CIFAR_STUDENTS),
    Reported(**_repdistiller("", "CRD: CE weight 1 + 0.8 two-sided NCE (dim 128, nce_k 16384, nce_t 0.07)"),
             setting="CIFAR-100, teacher ResNet32x4 to student ResNet8x4", teacher="ResNet32x4", student="ResNet8x4",
             method="crd", benchmark="cifar100", metric="accuracy", value=_percent("75.51"), printed="75.51"),
    *(Reported(**_DKD_README, setting=f"CIFAR-100, teacher {teacher} to student {student}", teacher=teacher,
               student=student, method="dkd", benchmark="cifar100", metric="accuracy", value=_percent(dkd),
               printed=dkd)
      for teacher, student, _, dkd in _CIFAR_PAIRS),
    *(Reported(**{**_DKD_README, "paper": paper, "table": "repository README, ImageNet table",
                  "protocol": "ImageNet-1k top-1, the mdistiller ImageNet recipe"},
               setting="ImageNet, teacher ResNet34 to student ResNet18", teacher="ResNet34", student="ResNet18",
               method=method, benchmark="imagenet", metric="accuracy", value=_percent(printed), printed=printed)
      for method, paper, printed in (("hinton-kd", "Zhao et al. 2022 (DKD), KD baseline run", "71.03"),
                                     ("dkd", "Zhao et al. 2022 (DKD)", "71.70"))),
    Reported(paper="Yin et al. 2024 (DMD2)", arxiv="2405.14867", table="repository README",
             setting="one-step generator distilled from EDM, GAN loss and two time-scale updates, resumed from the "
                     "2.61 run for 140k more iterations", teacher="EDM (ImageNet 64x64, class-conditional)",
             student="one-step generator initialised from the teacher", method="dmd2", benchmark="imagenet64",
             metric="fid", value=1.28, printed="1.28",
             protocol="50k samples against EDM's reference statistics", source="github.com/tianweiy/DMD2@8d8fa55",
             family="diffusion"),
    Reported(paper="Yin et al. 2024 (DMD2)", arxiv="2405.14867", table="repository README",
             setting="one-step text-to-image generator distilled from SD1.5, real-score guidance 1.75",
             teacher="Stable Diffusion 1.5", student="one-step SD1.5 UNet", method="dmd2", benchmark="coco2014-30k",
             metric="fid", value=8.35, printed="8.35", protocol="30k COCO-2014 captions at 256px (the SDXL "
             "README number, 19.32, is COCO-10k at 512px and not comparable)", source="github.com/tianweiy/DMD2@8d8fa55",
             family="diffusion"),
    Reported(paper="Zhou et al. 2024 (SiD)", arxiv="2404.04057", table="repository README",
             setting="one-step generator distilled from EDM with score identity distillation, alpha=1.2",
             teacher="EDM (ImageNet 64x64, class-conditional)", student="one-step generator initialised from the "
             "teacher", method="sid", benchmark="imagenet64", metric="fid", value=1.524, printed="1.524",
             protocol="50k samples against EDM's reference statistics", source="github.com/mingyuanzhou/SiD README",
             family="diffusion"),
    *(Reported(paper="Zhou et al. 2024 (SiD-LSG)", arxiv="2406.01561", table="repository README",
               setting="one-step text-to-image generator distilled from SD1.5 with long and short guidance, "
                       "kappa=1.5, longer training", teacher="Stable Diffusion 1.5", student="one-step SD1.5 UNet",
               method="sid-lsg", benchmark="coco2014-30k", metric=metric, value=value, printed=printed,
               protocol="30k COCO-2014 captions at 256px; CLIP score as the raw cosine of ViT-g-14 "
                        "(laion2b_s12b_b42k)", source="github.com/mingyuanzhou/SiD-LSG README", family="diffusion")
      for metric, value, printed in (("fid", 8.15, "8.15"), ("clip_score", 0.304, "0.304"))),
    *(Reported(paper="Xu et al. 2025 (f-distill)", arxiv="2502.15681", table="headline results (reading notes)",
               setting=f"one-step generator distilled from EDM with the Jensen-Shannon h(r) and a GAN head, {data}",
               teacher=teacher, student="one-step generator initialised from the teacher", method="f-distill",
               benchmark=benchmark, metric="fid", value=float(printed), printed=printed,
               protocol="50k samples against EDM's reference statistics (NVlabs/FastGen's reruns: 1.11 and 1.85)",
               source="arXiv:2502.15681 via the reading notes (NVlabs/FastGen)", family="diffusion")
      for data, teacher, benchmark, printed in (
          ("ImageNet 64x64", "EDM (ImageNet 64x64, class-conditional)", "imagenet64", "1.16"),
          ("CIFAR-10", "EDM (CIFAR-10)", "cifar10-gen", "1.92"))),
    Reported(paper="Zhang et al. 2025 (DisBack)", arxiv="2408.15991", table="headline results (reading notes)",
             setting="one-step generator distilled along a degradation path walked back to the teacher",
             teacher="EDM (ImageNet 64x64, class-conditional)", student="one-step generator initialised from the "
             "teacher", method="disback", benchmark="imagenet64", metric="fid", value=1.38, printed="1.38",
             protocol="50k samples against EDM's reference statistics; the released code covers SDXL only",
             source="arXiv:2408.15991 via the reading notes", family="diffusion"),
    *(Reported(paper="Song et al. 2024 (MSD)", arxiv="2410.23274", table="abstract", setting=setting, teacher=teacher,
               student=student, method="msd", benchmark=benchmark, metric="fid", value=float(printed),
               printed=printed, protocol=protocol, source="arXiv:2410.23274 abstract via the reading notes",
               family="diffusion")
      for setting, teacher, student, benchmark, printed, protocol in (
          ("four same-sized one-step students, each distilled (DM, then adversarial DM) on a quarter of the classes",
           "EDM (ImageNet 64x64, class-conditional)", "four one-step generators initialised from the teacher",
           "imagenet64", "1.20", "50k samples against EDM's reference statistics"),
          ("four one-step SD1.5 students, each owning a part of the prompt space", "Stable Diffusion 1.5",
           "four one-step SD1.5 UNets", "coco2014-30k", "8.20",
           "zero-shot COCO-2014 (the number of captions and the resolution are not in the abstract)"))),
    Reported(paper="Cheng et al. 2025 (TwinFlow)", arxiv="2512.05150", table="headline results (reading notes)",
             setting="one-step generation with twin (positive and negative time) flows in one model",
             teacher=None, student="TwinFlow one-NFE model (backbone unverified)", method="twinflow",
             benchmark="geneval", metric="overall", value=0.83, printed="0.83",
             protocol="GenEval overall at 1 NFE; which backbone (SD3.5, SANA-1.6B or Qwen-Image-20B) is unverified",
             source="reading notes, backbone unverified", family="diffusion", verified=False),
    Reported(paper="Nguyen et al. 2024 (SNOOPI)", arxiv="2412.02687", table="headline results (reading notes)",
             setting="one-step SwiftBrush-style distillation with a random guidance scale (PG-SB) and negative "
                     "prompts through attention (NASA)", teacher="unverified (PixArt-α, SD1.5 and SD2.1 studied)",
             student="one-step student (backbone unverified)", method="snoopi", benchmark="hpsv2",
             metric="average", value=31.08, printed="31.08",
             protocol="HPSv2 average; the backbone is unverified (a later arXiv version prints 31.21 for PixArt-α "
                      "in its Table 3, read by a helper, not checked here)",
             source="reading notes, backbone unverified", family="diffusion", verified=False),
    Reported(**_LLAVA_MOD, benchmark="object-halbench", metric="response_hallucination", value=_percent("11.2"),
             printed="11.2"),
    Reported(**_LLAVA_MOD, benchmark="mmbench", metric="accuracy", value=_percent("68.9"), printed="68.9"),
)


def reported_entries(family: str | None = None) -> list[Reported]:
    return [entry for entry in REPORTED if family is None or entry.family == family]


def _families(board: dict[str, Any]) -> set[str]:
    """The method families a leaderboard's rows come from (where the method is registered)."""
    methods = {row["method"] for row in board["rows"] if row.get("method")}
    return {entry.family for entry in METHODS.entries() if entry.name in methods}


def _model_name(text: str) -> str:
    """A model reference reduced to the name it ends with, for comparison: no backend prefix, revision or
    folders, no case, no punctuation (hf:Qwen/Qwen2.5-Math-1.5B@main = Qwen2.5-Math-1.5B, arch:wrn_16_2 =
    WRN-16-2, teachers/resnet32x4 = ResNet32x4)."""
    name = text.split(":", 1)[1] if text.startswith(("arch:", "pocket:", "hf:")) else text
    name = name.split("@", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return "".join(c for c in name.lower() if c.isalnum())


def _board_teacher(board: dict[str, Any]) -> str:
    recipe = board.get("recipe")
    return str(recipe.get("teacher") or "") if isinstance(recipe, dict) else ""


def _same_setting(entry: Reported, student: str, teacher: str) -> bool:
    """Whether a row's student model is the entry's (by the name its reference ends with) and, where the entry's
    teacher is an architecture (the CIFAR-100 pairs), the board's teacher is named after it
    (teachers/resnet56). Unnamed or other models never match: a number beside a row of another setting would
    read as a reproduction."""
    if _model_name(entry.student) != _model_name(student):
        return False
    architectures = {_model_name(name) for name in ARCHITECTURES.names()}
    return _model_name(entry.teacher or "") not in architectures or _model_name(teacher) == _model_name(entry.teacher)


def match_reported(board: dict[str, Any], entries: tuple[Reported, ...] | list[Reported] = REPORTED
                   ) -> tuple[list[dict[str, Any]], list[Reported]]:
    """(matches, the rest): a match pairs an entry with a reproduced row of the same method and student
    model (and teacher, for the CIFAR-100 pairs) that has the entry's benchmark and metric, with the
    difference reproduced − reported. The rest are the
    entries of the board's method families (all entries when none is known) that no row reproduces."""
    matches, matched = [], set()
    for row in board["rows"]:
        if row.get("kind") == "reported" or not row.get("method"):
            continue
        candidates = [e for e in entries if e.method == row["method"] and e.metric_key in row["metrics"]
                      and _same_setting(e, row.get("model") or "", _board_teacher(board))]
        for entry in candidates:
            reproduced = row["metrics"][entry.metric_key]
            matches.append({"row": row["row"], "entry": entry, "reproduced": reproduced["mean"],
                            "delta": reproduced["mean"] - entry.value})
            matched.add(entry)
    families = _families(board)
    rest = [e for e in entries if e not in matched and (not families or e.family in families)]
    return matches, rest


def reported_row(entry: Reported, delta: float | None = None, beside: str | None = None) -> dict[str, Any]:
    """A leaderboard row (kind "reported") holding one reported number; no CI, no items, no cost."""
    metric = {"mean": entry.value, "ci95": None, "n": None}
    row = {"row": f"{entry.method} (reported: {entry.paper})", "kind": "reported", "method": entry.method,
           "model": entry.student, "seeds": [], "metrics": {entry.metric_key: metric}, "seed_spread": {}, "cost": {},
           "cells": [], "status": "reported", "reported": entry_dict(entry)}
    if beside is not None:
        row["reported"].update({"beside": beside, "delta": delta})
    return row


def entry_dict(entry: Reported) -> dict[str, Any]:
    return asdict(entry)


def with_reported(board: dict[str, Any], entries: tuple[Reported, ...] | list[Reported] = REPORTED) -> dict[str, Any]:
    """The board with each matching entry as a `reported` row right after the row that reproduces it,
    and the unmatched entries of its families under "reported_elsewhere"."""
    matches, rest = match_reported(board, entries)
    rows = []
    for row in board["rows"]:
        rows.append(row)
        rows += [reported_row(m["entry"], m["delta"], row["row"]) for m in matches if m["row"] == row["row"]]
    return {**board, "rows": rows, "reported_elsewhere": [entry_dict(e) for e in rest]}


SECTION_HEADER = ("paper", "arXiv", "where", "teacher → student", "method", "benchmark/metric", "value",
                  "as printed", "protocol", "verified")


def reported_cells(entry: dict[str, Any]) -> list[str]:
    """One entry (as `entry_dict` gives it) as the text of SECTION_HEADER's columns."""
    models = f"{entry['teacher'] or '—'} → {entry['student']}"
    return [entry["paper"], entry["arxiv"] or "—", entry["table"], models, entry["method"],
            f"{entry['benchmark']}/{entry['metric']}", f"{entry['value']:.4g}", entry["printed"], entry["protocol"],
            "yes" if entry["verified"] else "no (unchecked)"]


def reported_markdown(entries: list[dict[str, Any]], title: str = "Reported by the papers") -> str:
    lines = [f"## {title}", "",
             "Numbers the seed papers report in settings this leaderboard did not reproduce "
             "(`distillbench/leaderboards/reported.py`); value on distillbench's scale.", "",
             "| " + " | ".join(SECTION_HEADER) + " |", "|" + "---|" * len(SECTION_HEADER)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in reported_cells(e)) + " |" for e in entries]
    return "\n".join(lines) + "\n"
