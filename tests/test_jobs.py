"""`distillbench run --jobs N`: worker processes share one output directory's cells through the cell locks."""

import json
import time

from distillbench.cli.main import main
from distillbench.core.runner import Runner


def test_two_jobs_train_each_cell_once_and_write_the_whole_board(tiny_recipe, capsys, monkeypatch):
    recipe = tiny_recipe("[sft, {name: kd, temperature: 2.0}, rkl]")
    out = recipe.parent / "out"
    run = Runner.run

    def after_the_worker_started_training(self):
        # tiny cells train in a second: without waiting, this process would take them all before the worker is up
        log, deadline = out / "workers" / "worker-1.log", time.monotonic() + 300
        while "training " not in (log.read_text() if log.exists() else "") and time.monotonic() < deadline:
            time.sleep(0.2)
        return run(self)

    monkeypatch.setattr(Runner, "run", after_the_worker_started_training)
    assert main(["run", str(recipe), "--jobs", "2"]) == 0
    here = capsys.readouterr().err  # the runner's console
    worker = (out / "workers" / "worker-1.log").read_text()
    trained = [line.split()[1] for text in (here, worker) for line in text.splitlines() if line.startswith("training ")]
    assert len(trained) == len(set(trained)) == 3, trained  # three method cells, each trained by one process
    assert any(line.startswith("training ") for line in worker.splitlines())  # the worker took a share
    rows = json.loads((out / "leaderboard.json").read_text())["rows"]
    assert len(rows) == 5 and all(row["status"] == "complete" for row in rows)


def test_jobs_must_be_positive(tiny_recipe, capsys):
    assert main(["run", str(tiny_recipe()), "--jobs", "0"]) == 2
    assert "--jobs: at least 1" in capsys.readouterr().err
