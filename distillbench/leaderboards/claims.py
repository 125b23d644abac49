"""The qualitative claim of each seed paper that the pocket sweep checks, with a paired test.

A claim holds when its better row is ahead of its worse row on the metric with p < 0.05 by a
test that carries the seed-to-seed variance (`aggregate.paired_test`: seeds × items), and both
rows have at least three seeds (a reference row, scored as it is, needs none); with fewer it reads "insufficient seeds" whatever the test says,
and otherwise "does not hold". Two comparisons are no verdict whatever their test says either:
a better row that continues another row's student against a worse row that does not start from
the same student ("no control (starts from sft)"; a row that trains nothing against the row it starts
from is the exact control), and a better row whose method's mechanism never
engaged in a seed (its `Method.engaged_by` cost field at 0: "mechanism inactive"), and a tuned better row
against an untuned baseline ("unequal tuning"). Every claim shows
its test, its p-value and the seeds behind it. Claims whose rows a leaderboard lacks are reported
as not run; one on a metric with no better direction (a bias measure such as POPE's yes-ratio) as
"no better direction".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scipy.stats import ttest_ind

from distillbench.core.registry import METHODS
from distillbench.core.two_level import resamples_for
from distillbench.leaderboards.aggregate import direction, item_values, paired_test
from distillbench.leaderboards.reported import _families
from distillbench.leaderboards.render import format_p

ALPHA = 0.05
MIN_SEEDS = 3  # fewer trained models per row cannot estimate the seed-to-seed variance a verdict needs


@dataclass(frozen=True)
class Claim:
    method: str
    paper: str
    text: str
    better: str  # leaderboard rows
    worse: str
    metric: str  # <benchmark>/<metric>
    family: str = "llm"  # claims are listed for leaderboards with methods of this family


JUDGE, ACCURACY, TOP1 = "pocket-mtbench/score", "pocket-math/accuracy", "top1/accuracy"
PROBE = "linear-probe/accuracy"
FOUR_STEPS = "points-2d[sampler=lcm,steps=4]/high_quality"
PROMPTED = "points-2d[prompted=True,steps=1]/high_quality"  # recipes/pocket/points-prompted.yaml, at one step
GUIDED_DMD2 = "dmd2[real_guidance=4.0]"
GUIDED_SID, LSG = "sid[real_guidance=4.0]", "sid[fake_guidance=4.0,real_guidance=4.0]"
# recipes/pocket/image-students.yaml: the pocket text-to-image teacher's students, guided by its dev-chosen scale
IMAGE_GUIDANCE = "1.5"
IMAGE_ONE_STEP, IMAGE_FOUR_STEPS = ("pocket-geneval[guidance=1.0,steps=1]/overall",
                                    "pocket-geneval[guidance=1.0,steps=4]/overall")
# recipes/pocket/classify-seed-a.yaml's source-distillation rows (their label carries the sources).
SIMILAR_SOURCES = "{}[similarity_examples=500,sources=['pocket:shapes-teacher-many', 'pocket:shapes-teacher-binary']]"
CLAIMS = (
    Claim("gkd", "Agarwal et al. 2024", "on-policy GKD beats supervised KD", "gkd", "kd[temperature=1.0]", ACCURACY),
    Claim("distillm", "Ko et al. 2024", "DistiLLM beats KD", "distillm", "kd[temperature=1.0]", JUDGE),
    Claim("dckd", "Gao et al. 2025", "DCKD beats SFT on the judge score", "dckd", "sft", JUDGE),
    Claim("adpa", "Gao et al. 2025", "ADPA beats DCKD on the judge score", "adpa", "dckd", JUDGE),
    # adpa+ continues the dckd student and adpa starts from the init: it reads "no control" until a row from the
    # dckd student is its baseline.
    Claim("adpa+", "Gao et al. 2025", "ADPA+ beats ADPA on the judge score", "adpa+", "adpa", JUDGE),
    Claim("adpo", "ADPO 2025", "listwise anchored ADPO beats pairwise DPO", "adpo", "dpo", JUDGE),
    Claim("curry-dpo", "Pattnaik et al. 2024", "the ranked curriculum beats plain DPO", "curry-dpo", "dpo", JUDGE),
    # REDI continues the sft student, so its control is DPO continued from it (recipes/pocket/llm-sweep.yaml).
    Claim("redi", "Xu et al. 2025", "REDI beats DPO on accuracy, both after SFT", "redi", "dpo[starts_from=sft]",
          ACCURACY),
    Claim("spo", "Li et al. 2024", "the degree loss added to DPO beats DPO on the judge score", "spo", "dpo", JUDGE),
    Claim("mcts-dpo", "Xie et al. 2024", "step-level preference learning improves the starting policy's accuracy",
          "mcts-dpo", "student-init", ACCURACY),
    Claim("teacher-ref-dpo", "Shu et al. 2025", "the teacher as reference beats the student's own reference",
          "teacher-ref-dpo", "dpo", JUDGE),
    Claim("teacher-hacking", "Tiapkin et al. 2025",
          "online teacher data ends closer to the oracle than offline data (no teacher hacking)",
          "teacher-hacking[data=online]", "teacher-hacking[data=offline]", "golden_distance"),
    # Classifier distillation, on recipes/pocket/classify.yaml's rows (its dkd row sets a scaled warm-up).
    Claim("hinton-kd", "Hinton et al. 2015", "KD beats the student trained alone", "hinton-kd", "ce", TOP1,
          "classify"),
    Claim("dkd", "Zhao et al. 2022", "DKD beats KD", "dkd[warmup=2]", "hinton-kd", TOP1, "classify"),
    Claim("dhkd", "Yang et al. 2024", "DHKD beats KD", "dhkd", "hinton-kd", TOP1, "classify"),
    Claim("pld", "Bassam et al. 2025", "PLD beats KD", "pld", "hinton-kd", TOP1, "classify"),
    # recipes/pocket/classify-semi.yaml: two heads against one head with the same loss.
    Claim("dho", "Kang et al. 2025", "dual heads beat a single head with the same semi-supervised KD loss", "dho",
          "hinton-kd[ce_weight=0.5,kd_weight=0.5,temperature=2.0]", TOP1, "classify"),
    # recipes/pocket/classify-seed-a.yaml (3 classes) and classify-seed-a-binary.yaml (2 classes).
    Claim("lelp", "Loo et al. 2024", "on a few-class task, LELP's pseudo-subclasses beat KD", "lelp", "hinton-kd",
          TOP1, "classify"),
    Claim("distiller-mi", "He et al. 2021", "the MI-α term on intermediate features improves on KD alone",
          "distiller-mi", "hinton-kd", TOP1, "classify"),
    Claim("self-distill-gt", "Borup & Andersen 2021",
          "self-distillation with ground-truth targets beats the student trained alone",
          "self-distill-gt[restart_rounds=False]", "ce", TOP1, "classify"),
    Claim("distill-nearest", "Borup et al. 2023", "distilling the most similar source task's model beats training "
          "alone", SIMILAR_SOURCES.format("distill-nearest"), "ce", TOP1, "classify"),
    Claim("distill-weighted", "Borup et al. 2023", "weighting all sources by similarity beats the single nearest "
          "source", SIMILAR_SOURCES.format("distill-weighted"), SIMILAR_SOURCES.format("distill-nearest"), TOP1,
          "classify"),
    # recipes/pocket/mim-distill.yaml: linear probes of a tiny ViT; the baseline is DMJD on pixels (no teacher).
    Claim("hybrid-distill", "Shi et al. 2023", "distilling a feature teacher and an MAE's attention beats masked "
          "modelling without a teacher", "hybrid-distill", "dmjd[target=pixels]", PROBE, "classify"),
    Claim("dmjd", "Ma et al. 2023", "joint distillation of teacher targets beats disjoint masking on pixels", "dmjd",
          "dmjd[target=pixels]", PROBE, "classify"),
    # recipes/pocket/points.yaml: one-step generators of the 2-D pocket world, scored at the step they train for.
    Claim("dmd2", "Yin et al. 2024", "DMD2's one-step generator beats consistency distillation (LCM) at one step",
          "dmd2", "lcm", "points-2d[steps=1]/high_quality", "diffusion"),
    Claim("sid", "Zhou et al. 2024", "SiD's one-step generator beats DMD's (more samples on the modes)", "sid", "dmd2",
          "points-2d[steps=1]/high_quality", "diffusion"),
    Claim("dmd2", "Yin et al. 2024", "DMD2 beats DMD at one step", "dmd2", "dmd", "points-2d[steps=1]/high_quality",
          "diffusion"),
    Claim("f-distill", "Xu et al. 2025", "forward KL covers more of the world than reverse KL, DMD's (recall)",
          "f-distill[divergence=forward-kl]", "f-distill[divergence=reverse-kl]", "points-2d[steps=1]/recall",
          "diffusion"),
    Claim("f-distill", "Xu et al. 2025", "Jensen-Shannon covers more of the world than reverse KL, DMD's (recall)",
          "f-distill[divergence=js]", "f-distill[divergence=reverse-kl]", "points-2d[steps=1]/recall", "diffusion"),
    Claim("disback", "Zhang et al. 2025", "walking the degradation path back beats DMD2 at one step",
          "disback[degradation_steps=100]", "dmd2", "points-2d[steps=1]/high_quality", "diffusion"),
    Claim("twinflow", "inclusionAI 2025", "a self-adversarial flow map (no teacher) beats DMD2's one-step generator",
          "twinflow", "dmd2", "points-2d[steps=1]/high_quality", "diffusion"),
    # recipes/pocket/points-prompted.yaml: one-step students of the weak-prompt teacher, each prompt scored
    # against its own modes; the teacher's guidance is 4 (chosen on dev).
    Claim("dmd2", "Yin et al. 2024", "guidance in the real score makes the one-step student follow its prompt",
          GUIDED_DMD2, "dmd2", PROMPTED, "diffusion"),
    Claim("decoupled-dmd", "Liu et al. 2025", "CFG augmentation and distribution matching decoupled beat DMD2 "
          "with guidance in its real score", "decoupled-dmd", GUIDED_DMD2, PROMPTED, "diffusion"),
    Claim("snoopi", "Nguyen et al. 2024", "one random guidance scale in both scores (PG-SB) beats SwiftBrush's "
          "fixed scale", "snoopi", "snoopi[guidance_max=4.0,guidance_min=4.0]", PROMPTED, "diffusion"),
    Claim("msd", "Song et al. 2024", "four students, one per prompt, beat one student of the same size",
          "msd[real_guidance=4.0]", GUIDED_DMD2, PROMPTED, "diffusion"),
    Claim("sid", "Zhou et al. 2024", "SiD-LSG: guidance in the fake score as well improves SiD", LSG, GUIDED_SID,
          PROMPTED, "diffusion"),
    Claim("sid", "Zhou et al. 2025", "Zero-CFG (no guidance scale; the fake score unprompted) beats SiD-LSG",
          "sid[critic_prompted=False,fake_guidance=0.0]", LSG, PROMPTED, "diffusion"),
    # recipes/pocket/points-multistep.yaml: 4-step students, scored with the consistency sampler at 4 steps.
    Claim("dmd2", "Yin et al. 2024", "backward simulation improves DMD2's 4-step generator",
          "dmd2[backward_simulation=True,generator_steps=4]", "dmd2[generator_steps=4]", FOUR_STEPS, "diffusion"),
    Claim("hyper-sd", "Ren et al. 2024", "trajectory segmented consistency distillation beats LCM at 4 steps",
          "hyper-sd", "lcm", FOUR_STEPS, "diffusion"),
    Claim("diversity-distillation", "Gandikota & Bau 2025", "the base model's first step raises the distilled "
          "student's recall (hybrid inference, 4 steps)", "diversity-distillation[starts_from=dmd2]",
          "dmd2[generator_steps=4]", "points-2d[sampler=lcm,steps=4]/recall", "diffusion"),
    Claim("phased-dmd", "Fan et al. 2025", "an expert and a critic per phase beat one 4-step DMD2 generator",
          "phased-dmd", "dmd2[backward_simulation=True,gan_generator_weight=0.0,generator_steps=4]", FOUR_STEPS,
          "diffusion"),
    Claim("flash-dmd", "Chen et al. 2025", "the joint preference RL stage improves the distilled 4-step generator",
          "flash-dmd", "flash-dmd[rl_ratio=0]", FOUR_STEPS, "diffusion"),
    # recipes/pocket/image-students.yaml: one budget, no tuning, GenEval on the 360 test images.
    Claim("dmd2", "Yin et al. 2024", "DMD2's one-step image generator beats consistency distillation (LCM) at "
          "one step", f"dmd2[real_guidance={IMAGE_GUIDANCE}]", f"lcm[guidance={IMAGE_GUIDANCE}]", IMAGE_ONE_STEP,
          "diffusion"),
    Claim("sid", "Zhou et al. 2024", "SiD's one-step image generator beats DMD2's",
          f"sid[real_guidance={IMAGE_GUIDANCE}]", f"dmd2[real_guidance={IMAGE_GUIDANCE}]", IMAGE_ONE_STEP, "diffusion"),
    Claim("lcm", "Luo et al. 2023", "the consistency student at 4 steps beats its teacher at 4 steps",
          f"lcm[guidance={IMAGE_GUIDANCE}]", "teacher", IMAGE_FOUR_STEPS, "diffusion"),
    Claim("nasa", "Nguyen et al. 2024", "a negative prompt through cross-attention (NASA, α 0.1) keeps the unwanted "
          "colour out of the one-step student's images", "nasa[starts_from=dmd2]",
          f"dmd2[real_guidance={IMAGE_GUIDANCE}]", "pocket-negative/avoided", "diffusion"),
)


def check_claims(store, board: dict[str, Any], claims: tuple[Claim, ...] = CLAIMS) -> list[dict[str, Any]]:
    """Every claim of the board's method families (all claims when the board has no method rows)."""
    rows = {row["row"]: row for row in board["rows"]}
    families = _families(board)
    checked = [claim for claim in claims if not families or claim.family in families]
    resamples = resamples_for(len(checked), ALPHA)
    return [{"claim": claim, **_check(store, board, rows, claim, resamples)} for claim in checked]


def _check(store, board: dict[str, Any], rows: dict[str, dict], claim: Claim, resamples: int) -> dict[str, Any]:
    not_run = {"status": "not run"}
    if any(name not in rows or rows[name]["status"] == "failed" for name in (claim.better, claim.worse)):
        return not_run
    reason = _no_verdict(store, rows[claim.better], rows[claim.worse])
    if claim.metric == "golden_distance":
        test = _distance_test(store, rows[claim.better], rows[claim.worse])
        return _verdict(test, -test["diff"], reason, _trained(rows, claim)) if test else not_run
    bench, _, metric = claim.metric.partition("/")  # a metric name may hold "/" itself (POPE's random/f1)
    if bench not in board["protocols"]:
        return not_run
    if direction(board, claim.metric) == "none":  # "beats" means nothing on a bias measure
        return {"status": "no better direction"}
    protocol = board["protocols"][bench]
    better, worse = (item_values(store, rows[name]["cells"], protocol["key"]) for name in (claim.better, claim.worse))
    test = paired_test(better, worse, metric, protocol, resamples) or _set_metric_test(rows[claim.better],
                                                                                       rows[claim.worse], claim.metric)
    if test is None:
        return not_run
    return _verdict(test, -test["diff"] if direction(board, claim.metric) == "lower" else test["diff"], reason,
                    _trained(rows, claim))


def _trained(rows: dict[str, dict], claim: Claim) -> tuple[bool, bool]:
    """Whether the better and the worse row are trained models (method rows): a reference row (the init, a
    teacher) is scored as it is, so it has no seed-to-seed variance and needs no seeds."""
    return tuple(rows[name].get("kind", "method") == "method" for name in (claim.better, claim.worse))


def _set_metric_test(better: dict, worse: dict, metric: str) -> dict[str, Any] | None:
    """A metric of the whole sample set (recall, modes covered) has no items to resample: one value per trained
    model, from the rows' per-seed figures (None where a row has none)."""
    values = [list(((row.get("seed_spread") or {}).get(metric) or {}).get("per_seed", {}).values())
              for row in (better, worse)]
    return _welch_over_seeds(values, f"Welch t over seeds, {metric.rpartition('/')[2]} of each seed's sample set")


def _verdict(test: dict[str, Any], better_by: float, reason: str | None, trained: tuple[bool, bool] = (True, True)
             ) -> dict[str, Any]:
    """The claim's status from its test, unless `reason` says why the comparison is no verdict; the trained rows
    (`trained`: better, worse) need MIN_SEEDS seeds each."""
    if reason is not None:
        return {**test, "status": reason}
    if min((seeds for seeds, counted in zip(test["seeds"], trained) if counted), default=MIN_SEEDS) < MIN_SEEDS:
        return {**test, "status": "insufficient seeds"}
    return {**test, "status": "holds" if better_by > 0 and test["p"] < ALPHA else "does not hold"}


def _no_verdict(store, better: dict, worse: dict) -> str | None:
    """Why comparing the rows says nothing of the claim, or None. A better row that continues another row's
    student is ahead of a baseline from elsewhere by that training alone, so it needs a worse row from the same
    start; a mechanism that never engaged left the better row its base loss."""
    start = _declared(better, "starts_from")
    if start is not None and _declared(worse, "starts_from") != start and not _samples_its_start(better, worse, start):
        return f"no control (starts from {start})"
    if _tuned(better) and worse.get("kind") == "method" and not _tuned(worse):  # a search a method baseline did not get
        # (a reference row, the init or a teacher, is scored as it is: there is nothing of it to tune)
        return f"unequal tuning ({better['row']} tuned, {worse['row']} not)"
    return _inactive(store, better)


def _samples_its_start(better: dict, worse: dict, start: str) -> bool:
    """A row that trains nothing (an inference-time method such as hybrid sampling) against the row it starts
    from: the same weights sampled otherwise, the exact control."""
    return worse["row"] == start and (better.get("cost") or {}).get("steps") == 0


def _tuned(row: dict) -> bool:
    """Whether the row's options were chosen by a tuning search on the dev split (core/tune.py)."""
    tuning = row.get("tuning")
    return isinstance(tuning, dict) and tuning.get("trials", 0) > 0


def _inactive(store, row: dict) -> str | None:
    """'mechanism inactive (...)' when the row's engagement figure is 0 in any of its seeds' cells."""
    field = _declared(row, "engaged_by")
    if field is None:
        return None
    figures = [((store.cell(key) or {}).get("cost") or {}).get(field) for key in row["cells"]]
    idle = figures.count(0)
    return f"mechanism inactive ({field} 0 in {idle} of {len(figures)} seeds)" if idle else None


def _declared(row: dict, name: str) -> str | None:
    """A row's `starts_from` or `engaged_by`, as its board records it; boards built before they did fall back
    on the method class (its start named by method, which is the start's row label for a plain entry)."""
    if name in row:
        return row[name]
    value = getattr(METHODS.get(row["method"]), name, None) if row.get("method") in METHODS else None
    return value if isinstance(value, str) else None


def _distance_test(store, better: dict, worse: dict) -> dict[str, Any] | None:
    """better − worse final golden distance (lower is better): one value per trained model, so Welch's
    t-test over the rows' seeds (None when a run has no distance)."""
    distances = [[((store.cell(key) or {}).get("cost") or {}).get("final_measures", {}).get("golden_distance")
                  for key in row["cells"]] for row in (better, worse)]
    return _welch_over_seeds(distances, "Welch t over seeds, final golden distance (lower is better)")


def _welch_over_seeds(values: list[list[float]], test: str) -> dict[str, Any] | None:
    """better − worse mean of one figure per trained model, with Welch's t-test over the two rows' seeds (no p
    with a single seed in a row; None when a row has no figure for some seed)."""
    if any(not figures or None in figures for figures in values):
        return None
    p = float(ttest_ind(*values, equal_var=False).pvalue) if min(map(len, values)) > 1 else None
    return {"diff": sum(values[0]) / len(values[0]) - sum(values[1]) / len(values[1]), "p": p, "n": None,
            "seeds": [len(figures) for figures in values], "test": test}


def claims_markdown(results: list[dict[str, Any]]) -> str:
    lines = ["| method | paper | claim checked | metric | difference [95% CI] | test | p | seeds | held |",
             "|---|---|---|---|---|---|---|---|---|"]
    for result in results:
        claim = result["claim"]
        if result["status"] == "not run":
            measured, test, p, seeds = "—", "—", "—", "—"
        else:
            ci = result.get("ci95")
            measured = f"{result['diff']:+.3f}" + (f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else "")
            test, p, seeds = result["test"], format_p(result), " vs ".join(map(str, result["seeds"]))
        lines.append(f"| `{claim.method}` | {claim.paper} | {claim.text} (`{claim.better}` vs `{claim.worse}`) | "
                     f"{claim.metric} | {measured} | {test} | {p} | {seeds} | {result['status']} |")
    return "\n".join(lines) + "\n"
