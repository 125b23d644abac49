"""kill -9 during training and during scoring, then the same command again; and two concurrent runs."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

RECIPE = """
name: reliability
kind: text-lm
teacher: pocket:teacher-sft
student: pocket:student-init
data: {{source: "pocket:math", size: 64}}
budget: {{steps: {steps}, batch_size: 8, learning_rate: 1.0e-3, max_length: 96, checkpoint_every: 5}}
seeds: {seeds}
methods: {methods}
benchmarks: [{{name: pocket-math, n: {items}, max_new_tokens: 24}}]
output_dir: {out}
"""


def _recipe(tmp_path: Path, name: str, steps=120, seeds="[0]", methods="[sft]", items=16) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(RECIPE.format(steps=steps, seeds=seeds, methods=methods, items=items, out=tmp_path / name))
    return path


def _start(recipe: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "distillbench.cli.main", "run", str(recipe)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy())


def _finish(recipe: Path) -> dict:
    process = _start(recipe)
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err.decode()[-2000:]
    return json.loads((recipe.parent / recipe.stem / "leaderboard.json").read_text())


def _kill_when(process: subprocess.Popen, ready, polls: int = 15_000) -> None:
    for _ in range(polls):  # every 20 ms, at most about 5 minutes
        if ready():
            break
        assert process.poll() is None, "the run finished before it could be interrupted"
        time.sleep(0.02)
    else:
        raise AssertionError("the point to interrupt at never came")
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def _metrics(board: dict) -> list:
    return [(row["row"], row["metrics"]) for row in board["rows"]]


def _checkpoint_step(out: Path) -> int:
    for manifest in out.glob("cells/sft-*/checkpoint/checkpoint.json"):
        try:
            return json.loads(manifest.read_text())["state"]["step"]
        except (json.JSONDecodeError, KeyError):
            return 0
    return 0


def test_kill_9_during_training_then_rerun_equals_an_uninterrupted_run(tmp_path):
    reference = _finish(_recipe(tmp_path, "straight"))
    recipe = _recipe(tmp_path, "killed")
    out = tmp_path / "killed"
    process = _start(recipe)
    _kill_when(process, lambda: _checkpoint_step(out) >= 10)
    assert not (out / "leaderboard.json").exists()
    resumed = _finish(recipe)
    assert _metrics(resumed) == _metrics(reference)
    log = (next(out.glob("cells/sft-*")) / "train_log.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in log] == list(range(1, 121))  # no step lost or repeated


def _evaluations(out: Path) -> int:
    db = out / "results.sqlite"
    if not db.exists():
        return 0
    try:
        return sqlite3.connect(db, timeout=1).execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_kill_9_during_scoring_then_rerun_equals_an_uninterrupted_run(tmp_path):
    reference = _finish(_recipe(tmp_path, "straight", steps=5, items=200))
    recipe = _recipe(tmp_path, "killed", steps=5, items=200)
    out = tmp_path / "killed"
    process = _start(recipe)
    _kill_when(process, lambda: _evaluations(out) >= 1)  # the teacher is scored, the next model is being scored
    resumed = _finish(recipe)
    assert _metrics(resumed) == _metrics(reference)


def test_two_concurrent_runs_on_one_directory_lose_and_duplicate_nothing(tmp_path):
    recipe = _recipe(tmp_path, "shared", steps=20, seeds="[0, 1]", methods="[sft, kd]", items=12)
    first, second = _start(recipe), _start(recipe)
    for process in (first, second):
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0, err.decode()[-2000:]
    out = tmp_path / "shared"
    db = sqlite3.connect(out / "results.sqlite")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    cells = db.execute("SELECT COUNT(*), SUM(status = 'ready') FROM cells").fetchone()
    assert cells == (6, 6)  # teacher, student-init, 2 methods x 2 seeds
    assert db.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 6 * 12
    assert db.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0] == 6
    for log in out.glob("cells/*/train_log.jsonl"):  # each cell trained once, by one of the two
        assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == list(range(1, 21))
    board = json.loads((out / "leaderboard.json").read_text())
    assert all(row["status"] == "complete" for row in board["rows"])
