"""openai-http: a judge behind any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, TGI, llama.cpp).

FastChat's ``llm_judge`` sends the system prompt as the system message, the
rendered template as the user message, at temperature 0 with ``max_tokens``
2048, and retries API errors (``common.chat_completion_openai``). The same here,
over the standard library's HTTP client: a single POST per judgment needs no
client library, and the request is the documented ``/chat/completions`` body.
Transient failures (connection errors, 429, 5xx) are retried with exponential
backoff; a judgment that still fails raises `JudgeError`, which names the
endpoint and the status, rather than becoming a silent unparsable rating.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from distillbench.core.errors import UserInputError
from distillbench.core.registry import JUDGES

_RETRIED_STATUS = {408, 409, 429, 500, 502, 503, 504}


class JudgeError(UserInputError):
    """The judge backend could not produce a judgment."""


@JUDGES.register("openai-http", family="llm", paper="MT-Bench judge protocol (arXiv:2306.05685)",
                 summary="any OpenAI-compatible /chat/completions endpoint (temperature 0, as FastChat)")
@dataclass(frozen=True)
class OpenAIHTTPJudge:
    """A chat model behind an OpenAI-compatible endpoint; the API key is read from `api_key_env`."""

    model: str = "gpt-4"
    url: str = "https://api.openai.com/v1"
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = 0.0
    max_tokens: int = 2048
    timeout_s: float = 120.0
    retries: int = 5

    @property
    def identity(self) -> str:
        return f"openai-http:{self.model}@{self.url}"

    def complete(self, system: str, user: str) -> str:
        body = json.dumps({"model": self.model, "temperature": self.temperature, "max_tokens": self.max_tokens,
                           "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}]})
        headers = {"Content-Type": "application/json"}
        if os.environ.get(self.api_key_env):
            headers["Authorization"] = f"Bearer {os.environ[self.api_key_env]}"
        request = urllib.request.Request(self.url.rstrip("/") + "/chat/completions", data=body.encode(),
                                         headers=headers, method="POST")
        return _message_content(self._send(request), self.url)

    def _send(self, request: urllib.request.Request) -> dict:
        problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(2 ** attempt, 30) * 0.5)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    return json.loads(response.read().decode("utf-8"))
            except urllib.error.HTTPError as error:
                problem = f"HTTP {error.code} {error.reason}"
                if error.code not in _RETRIED_STATUS:
                    break
            except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
                problem = str(getattr(error, "reason", error))
            except json.JSONDecodeError:
                problem = "the response is not JSON"
                break
        raise JudgeError(f"judge {self.identity}: {problem} (after {attempt + 1} attempts)")


def _message_content(payload: dict, url: str) -> str:
    try:
        content = payload["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise JudgeError(f"judge at {url}: the response has no choices[0].message.content") from None
    return content if isinstance(content, str) else ""
