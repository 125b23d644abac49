"""lm-eval: any lm-evaluation-harness task scores a student through lm_eval's Python API.

The task (a registered lm-eval task, or a task YAML found under `include_path`)
decides prompts, few-shot examples, generation settings, filters and metrics;
lm_eval computes every number. distillbench hands lm_eval the already loaded
model through ``HFLM(pretrained=<model>)`` and keeps lm_eval's per-sample
records (``log_samples``), so rows get per-item CIs and paired tests like any
other benchmark. Each item is one of the task's evaluation documents, with id
``doc_id``. Only per-sample numeric metrics are kept (corpus-level metrics such
as BLEU have no per-item value and are reported as absent); a task with several
filters gets each metric once per filter, named ``<metric>,<filter>`` as in
lm_eval's results table. lm_eval's own bootstrap is switched off: the
leaderboard computes its CIs over items.

Needs the optional extra ``lm-eval`` (``pip install distillbench[lm-eval]``).
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from typing import Annotated, Any

from annotated_types import Ge, Gt

from distillbench.core.errors import UserInputError

from distillbench.benchmarks.base import Benchmark, ItemScore, register_benchmark


def _lm_eval():
    try:
        import lm_eval
    except ImportError:
        raise UserInputError("the lm-eval benchmark needs lm_eval: pip install 'distillbench[lm-eval]'") from None
    return lm_eval


@functools.lru_cache(maxsize=8)
def _manager(include_path: str | None, include_defaults: bool):
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=include_path, include_defaults=include_defaults)


def _task_manager(include_path: str | None, task: str):
    """lm_eval's task index. Indexing lm_eval's ~15k built-in task YAMLs takes half a minute, so a task
    found under `include_path` is looked up there alone; otherwise the built-ins are indexed too."""
    if include_path:
        local = _manager(include_path, False)
        if task in local.all_tasks:
            return local
    return _manager(include_path, True)


@register_benchmark("lm-eval", family="llm", paper="lm-evaluation-harness (EleutherAI)",
                    summary="any lm-evaluation-harness task through lm_eval's Python API, per-sample records kept")
@dataclass(frozen=True)
class LMEvalTask(Benchmark):
    """One lm-evaluation-harness task (by name; YAMLs from `include_path` are found too)."""

    task: str = ""
    include_path: str | None = None  # a folder of task YAMLs, as lm_eval --include_path
    num_fewshot: Annotated[int, Ge(0)] | None = None  # None keeps the task's own setting
    limit: Annotated[int, Gt(0)] | None = None  # the first `limit` documents; None = all
    apply_chat_template: bool = False

    def check(self):
        if not self.task:
            return ["task: name an lm-eval task (e.g. gsm8k, or one defined under include_path)"]
        _lm_eval()
        manager = _task_manager(self.include_path, self.task)
        if self.task not in manager.all_tasks:
            import difflib

            close = difflib.get_close_matches(self.task, manager.all_tasks, n=1)
            return [f"task: unknown lm-eval task {self.task!r}" + (f"; did you mean {close[0]!r}?" if close else "")]
        if self.task in manager.all_groups:
            return [f"task: {self.task!r} is a group; name one of its tasks"]
        return []

    def _task(self):
        return _task_manager(self.include_path, self.task).load(self.task)["tasks"][self.task]

    def items(self):
        docs = list(self._task().eval_docs)[: self.limit]
        return [{"id": str(index), "doc": doc} for index, doc in enumerate(docs)]

    def predict(self, model, tokenizer, items, *, batch_size):
        lm_eval = _lm_eval()
        from lm_eval.models.huggingface import HFLM

        device = str(next(model.parameters()).device)
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, device=device)
        results = lm_eval.simple_evaluate(model=lm, tasks=[self.task], task_manager=_task_manager(self.include_path, self.task),
                                          num_fewshot=self.num_fewshot, limit=len(items), log_samples=True,
                                          bootstrap_iters=0, apply_chat_template=self.apply_chat_template)
        configured = [m["metric"] for m in results["configs"][self.task].get("metric_list", [])
                      if isinstance(m.get("metric"), str)]
        by_doc: dict[str, list[dict]] = {}  # lm_eval logs one sample per document and filter
        for sample in results["samples"][self.task]:
            by_doc.setdefault(str(sample["doc_id"]), []).append(sample)
        return [_record(by_doc[item["id"]], configured) for item in items]

    def score(self, item, output):
        return ItemScore(dict(output["metrics"]), output["response"][:500])

    def protocol(self):
        lm_eval = _lm_eval()
        config = self._task().config.to_dict()
        digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]
        return {"scorer_version": self.scorer_version, "scorer": "lm_eval", "lm_eval_version": lm_eval.__version__,
                "task": self.task, "task_config_sha256": digest, "num_fewshot": self.num_fewshot,
                "limit": self.limit, "apply_chat_template": self.apply_chat_template}


def _record(samples: list[dict[str, Any]], configured: list[str]) -> dict[str, Any]:
    """A document's numeric per-item metrics and its (filtered) response, from its samples (one per filter).
    With several filters (gsm8k's strict-match and flexible-extract) a metric is named as lm_eval's results
    table names it, ``<metric>,<filter>``; with one, by the metric alone. The metric names are those the
    sample logs (a task without a metric_list uses its defaults), else the task's metric_list."""
    several = len(samples) > 1
    values, responses = {}, {}
    for sample in samples:
        suffix = f",{sample.get('filter', 'none')}" if several else ""
        names = [m for m in sample.get("metrics") or configured if isinstance(m, str)]
        values.update({m + suffix: float(sample[m]) for m in names if isinstance(sample.get(m), (int, float, bool))})
        response = sample.get("filtered_resps", sample.get("resps"))
        while isinstance(response, list) and len(response) == 1:
            response = response[0]
        responses[sample.get("filter", "none")] = response if isinstance(response, str) else json.dumps(response)
    response = next(iter(responses.values())) if not several else \
        " | ".join(f"{name}: {text}" for name, text in responses.items())
    return {"metrics": values, "response": response}
