"""What the diffusion tests share: a tiny run of a pocket points recipe."""

import json

import yaml

from distillbench.cli.main import main


def run_points(tmp_path, methods: list, benchmarks: list[dict], base: str = "recipes/pocket/points.yaml",
               steps: int = 4, batch_size: int = 16, checkpoint_every: int = 2, **changes) -> dict:
    """Run `base` with one seed, `methods` and `benchmarks`, a budget of `steps` steps of `batch_size` prompts and
    no tuning, into tmp_path/out; its leaderboard."""
    recipe = yaml.safe_load(open(base))
    recipe.update(seeds=[0], output_dir=str(tmp_path / "out"), methods=methods, benchmarks=benchmarks,
                  budget={**recipe["budget"], "steps": steps, "batch_size": batch_size,
                          "checkpoint_every": checkpoint_every}, **changes)
    recipe.pop("tune", None), recipe.pop("leaderboard", None)
    path = tmp_path / "points.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main(["run", str(path)]) == 0
    return json.loads((tmp_path / "out" / "leaderboard.json").read_text())
