"""Benchmarks, one file per benchmark or scorer family. Importing this package registers them.

Judge backends register from `distillbench.benchmarks.judges` (imported by mtbench, and by
the registry on first use).
"""

from distillbench.benchmarks import gsm8k, hendrycks_math, lm_eval_bridge, mtbench, pocket_math, rewardbench  # noqa: F401
from distillbench.benchmarks.vlm import benchmarks as vlm_benchmarks  # noqa: F401  (vqav2, pope, chair, videohallucer)
from distillbench.benchmarks.vlm import pocket as vlm_pocket  # noqa: F401  (pocket-vqa, pocket-pope, pocket-chair, pocket-videohallucer)
from distillbench.benchmarks import image_benchmarks  # noqa: F401  (geneval, pocket-geneval)
from distillbench.benchmarks import clip_score, image_sets  # noqa: F401  (clip-score, fid, kid and their pocket versions)
from distillbench.benchmarks import top1  # noqa: F401  (top1, cifar100: image classifiers)
from distillbench.benchmarks import dd_accuracy  # noqa: F401  (dd-accuracy: a student trained on a distilled set)
from distillbench.benchmarks import linear_probe  # noqa: F401  (linear-probe: logistic regression on a frozen encoder)
from distillbench.benchmarks import retrieval  # noqa: F401  (pocket-retrieval: Recall@K of dual encoders)
from distillbench.benchmarks import fairness  # noqa: F401  (fair-synthetic: parity, utility, fidelity of synthetic tabular data)
