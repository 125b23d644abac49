import json

from distillbench.pocket import zoo
from distillbench.pocket.math_world import NOISE_KINDS, add_noise, generate
from distillbench.pocket.mtbench_world import reference_turns, solve, training_conversations
from distillbench.pocket.preferences import build_preference_sets, follow_up_tasks, math_tasks
from distillbench.pocket.rubric import score_response


def test_noise_fraction_and_kinds():
    records = generate("train", 400)
    noisy = add_noise(records, 0.3, seed=1)
    kinds = [r["noise"] for r in noisy]
    assert 0.2 < sum(k is not None for k in kinds) / len(kinds) < 0.4
    assert set(kinds) - {None} == set(NOISE_KINDS)
    for clean, dirty in zip(records, noisy):
        if dirty["noise"] is None:
            assert dirty["solution"] == clean["solution"]
        elif dirty["noise"] == "missing_box" or dirty["noise"] == "off_format":
            assert "\\boxed" not in dirty["solution"] and clean["answer"] in dirty["solution"]
        elif dirty["noise"] == "wrong_step":
            assert f"\\boxed{{{clean['answer']}}}" not in dirty["solution"]
    assert add_noise(records, 0.0) == [{**r, "noise": None} for r in records]


def test_rubric_orders_correct_boxed_concise_first():
    reference = "7+6=13. \\boxed{13}"
    best = score_response("7+6=13. \\boxed{13}", "13", reference)
    unboxed = score_response("7+6=13. The answer is 13.", "13", reference)
    padded = score_response("Let me think about this carefully. " * 3 + reference, "13", reference)
    wrong = score_response("7+6=12. \\boxed{12}", "13", reference)
    assert best.rating == 10 and unboxed.rating == 8 and padded.rating < best.rating and wrong.rating == 4


def test_preference_sets_pair_best_with_worst_and_skip_ties():
    records = generate("train", 2)
    graded = [[{"content": "a", "score": 10, "correct": True}, {"content": "b", "score": 4, "correct": False}],
              [{"content": "c", "score": 6, "correct": False}, {"content": "d", "score": 6, "correct": False}]]
    sets = build_preference_sets(math_tasks(records), graded)
    assert len(sets["pairs.jsonl"]) == 1 and len(sets["ranked.jsonl"]) == 2 and len(sets["traces.jsonl"]) == 4
    pair = sets["pairs.jsonl"][0]
    assert pair["chosen"] == [{"role": "assistant", "content": "a"}]
    assert pair["prompt"] == [{"role": "user", "content": records[0]["problem"]}]


def test_zoo_preference_data_is_in_hf_format():
    directory = zoo.ensure_built("math-preference")
    pair = json.loads((directory / "pairs.jsonl").read_text().splitlines()[0])
    assert {"prompt", "chosen", "rejected"} <= set(pair)
    assert pair["score_chosen"] > pair["score_rejected"]


def test_follow_up_tasks_grade_the_second_turn_after_a_clean_first_answer():
    for task in follow_up_tasks(16, seed=3):
        user, first_answer, follow_up = task["prompt"]
        assert (user["role"], first_answer["role"], follow_up["role"]) == ("user", "assistant", "user")
        assert first_answer["content"] == reference_turns([user["content"], follow_up["content"]])[0]
        assert task["solution"].endswith(f"\\boxed{{{task['answer']}}}")


def test_chatty_follow_ups_lose_the_box_and_conciseness_but_keep_the_answer():
    chats = training_conversations(40, seed=5, chatty_fraction=1.0)
    for chat in chats:
        turns = [chat["messages"][0]["content"], chat["messages"][2]["content"]]
        answer = chat["messages"][3]["content"]
        score = score_response(answer, solve(turns)[1], reference_turns(turns)[1])
        assert score.correct and not score.boxed and score.rating < 10
    assert all("\\boxed" in chat["messages"][3]["content"]
               for chat in training_conversations(40, seed=5, chatty_fraction=0.0))
