"""mtbench on FastChat's files, the judge backends (a real HTTP server on localhost, a local HF model),
and pairwise grading with the position swap."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from distillbench.benchmarks.judges import make_judge
from distillbench.benchmarks.judges.http import JudgeError
from distillbench.benchmarks.mtbench import MTBench
from distillbench.core.errors import UserInputError
from distillbench.pocket.benchmarks.pocket_mtbench import PocketMTBench
from distillbench.pocket.mtbench_world import reference_turns


class FakeJudgeServer:
    """An OpenAI-compatible /v1/chat/completions server; `reply(body) -> (status, text)` decides each answer."""

    def __init__(self, reply):
        self.requests, self.reply = [], reply
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                status, text = server.reply(body)
                payload = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]})
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(payload.encode())

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def judge_server():
    servers = []

    def start(reply):
        servers.append(FakeJudgeServer(reply))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _fastchat(shared_data, **options):
    folder = shared_data / "mt_bench"
    return MTBench(questions=str(folder / "question.jsonl"), judge_prompts=str(folder / "judge_prompts.jsonl"),
                   reference_answers=str(folder / "reference_answer_gpt-4.jsonl"), **options)


def test_http_judge_sends_the_fastchat_request(judge_server, monkeypatch):
    server = judge_server(lambda body: (200, "Fine. Rating: [[7]]"))
    monkeypatch.setenv("MY_KEY", "secret")
    judge = make_judge("openai-http", model="judge-1", url=server.url)
    judge = type(judge)(model="judge-1", url=server.url, api_key_env="MY_KEY")
    assert judge.complete("You are a helpful assistant.", "[Instruction]\nrate") == "Fine. Rating: [[7]]"
    request = server.requests[0]
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer secret"
    assert request["body"]["model"] == "judge-1" and request["body"]["temperature"] == 0.0
    assert request["body"]["max_tokens"] == 2048
    assert request["body"]["messages"] == [{"role": "system", "content": "You are a helpful assistant."},
                                           {"role": "user", "content": "[Instruction]\nrate"}]


def test_http_judge_retries_transient_errors_and_names_the_endpoint_on_failure(judge_server):
    statuses = iter([503, 429, 200])
    server = judge_server(lambda body: (next(statuses), "Rating: [[5]]"))
    judge = make_judge("openai-http", model="m", url=server.url)
    judge = type(judge)(model="m", url=server.url, retries=3, timeout_s=5)
    assert judge.complete("s", "u") == "Rating: [[5]]" and len(server.requests) == 3

    refusing = judge_server(lambda body: (400, "bad request"))
    judge = type(judge)(model="m", url=refusing.url, retries=3, timeout_s=5)
    with pytest.raises(JudgeError, match=r"HTTP 400.*after 1 attempts"):
        judge.complete("s", "u")
    assert len(refusing.requests) == 1  # a client error is not retried


def test_real_mtbench_items_carry_references_only_where_fastchat_uses_them(shared_data):
    items = _fastchat(shared_data).items()
    assert len(items) == 80
    for item in items:
        assert (item["reference"] is not None) == (item["category"] in ("math", "reasoning", "coding"))
    math = next(item for item in items if item["category"] == "math")
    assert len(math["reference"]) == 2


def test_real_mtbench_refuses_missing_inputs(shared_data, tmp_path):
    assert any(p.startswith("questions:") for p in MTBench().check())
    folder = shared_data / "mt_bench"
    no_prompts = MTBench(questions=str(folder / "question.jsonl"))
    assert any(p.startswith("judge_prompts:") for p in no_prompts.check())
    assert any(p.startswith("baseline_answers:") for p in _fastchat(shared_data, mode="pairwise").check())
    assert any("takes no model" in p for p in _fastchat(shared_data, judge="pocket-oracle", judge_model="x").check())
    partial = tmp_path / "ref.jsonl"
    partial.write_text('{"question_id": 101, "choices": [{"index": 0, "turns": ["a", "b"]}]}\n')
    with pytest.raises(UserInputError, match="no answer for question 102"):
        MTBench(questions=str(folder / "question.jsonl"), reference_answers=str(partial)).items()


def test_real_mtbench_single_grading_through_the_http_judge(shared_data, judge_server):
    def reply(body):
        user = body["messages"][1]["content"]
        return 200, "Rating: [[3]]" if "<|The Start of Assistant A's Conversation with User|>" in user else "[[8]]"

    server = judge_server(reply)
    benchmark = _fastchat(shared_data, judge_model="judge-1", judge_url=server.url)
    item = next(item for item in benchmark.items() if item["category"] == "math")
    result = benchmark.score(item, ["first answer", "second answer"])
    assert result.values == {"turn1": 8.0, "turn2": 3.0, "score": 5.5}
    turn1, turn2 = (request["body"]["messages"] for request in server.requests)
    assert "[The Start of Reference Answer]" in turn1[1]["content"]  # single-math-v1
    assert "first answer" in turn1[1]["content"] and "second answer" in turn2[1]["content"]
    assert benchmark.protocol()["judge"] == f"openai-http:judge-1@{server.url}"


def test_unparsable_ratings_are_dropped_not_zero(shared_data, judge_server):
    server = judge_server(lambda body: (200, "I cannot rate this."))
    benchmark = _fastchat(shared_data, judge_url=server.url)
    assert benchmark.score(benchmark.items()[0], ["a", "b"]).values == {}


def _baseline_file(tmp_path, answers_by_id):
    path = tmp_path / "baseline.jsonl"
    path.write_text("".join(json.dumps({"question_id": int(qid), "model_id": "baseline",
                                        "choices": [{"index": 0, "turns": turns}]}) + "\n"
                            for qid, turns in answers_by_id.items()))
    return str(path)


def test_pairwise_against_a_baseline_with_the_pocket_oracle(tmp_path):
    questions = PocketMTBench().items()
    wrong = {q["id"]: [turn.replace("\\boxed{", "\\boxed{9") for turn in reference_turns(q["turns"])]
             for q in questions}
    benchmark = PocketMTBench(mode="pairwise", baseline_answers=_baseline_file(tmp_path, wrong))
    assert benchmark.check() == []
    items = benchmark.items()
    for item in items[::16]:
        good = reference_turns(item["turns"])
        assert benchmark.score(item, good).values == {"turn1_win": 1.0, "turn2_win": 1.0, "win_rate": 1.0}
        assert benchmark.score(item, wrong[item["id"]]).values["win_rate"] == 0.5  # identical answers tie
        assert benchmark.score(item, [good[0], wrong[item["id"]][1]]).values == {
            "turn1_win": 1.0, "turn2_win": 0.5, "win_rate": 0.75}


def test_pairwise_position_bias_becomes_a_tie_and_errors_are_dropped(tmp_path, judge_server):
    baseline = _baseline_file(tmp_path, {item["id"]: ["x", "y"] for item in PocketMTBench().items()})
    always_a = judge_server(lambda body: (200, "Assistant A is better. [[A]]"))
    biased = PocketMTBench(mode="pairwise", baseline_answers=baseline, judge="openai-http", judge_url=always_a.url)
    assert biased.score(biased.items()[0], ["p", "q"]).values == {"turn1_win": 0.5, "turn2_win": 0.5, "win_rate": 0.5}
    assert len(always_a.requests) == 4  # two turns, two games each

    mute = judge_server(lambda body: (200, "no verdict"))
    erring = PocketMTBench(mode="pairwise", baseline_answers=baseline, judge="openai-http", judge_url=mute.url)
    result = erring.score(erring.items()[0], ["p", "q"])
    assert result.values == {} and "error" in result.reason


def test_hf_chat_judge_runs_a_local_model(tmp_path):
    from distillbench.kinds.text_lm.models import load_causal_lm

    model, tokenizer = load_causal_lm("pocket:student-init")
    model.save_pretrained(tmp_path / "judge")
    tokenizer.save_pretrained(tmp_path / "judge")
    judge = make_judge("hf-chat", model=str(tmp_path / "judge"))
    assert judge.check() == [] and judge.identity == f"hf-chat:{tmp_path / 'judge'}"
    judge = type(judge)(model=str(tmp_path / "judge"), max_new_tokens=8)
    text = judge.complete("You are a helpful assistant.", "Rate 2+2=4. Rating:")
    assert isinstance(text, str)
    assert judge.complete("You are a helpful assistant.", "Rate 2+2=4. Rating:") == text  # greedy
    assert make_judge("hf-chat").check()[0].startswith("judge_model:")
