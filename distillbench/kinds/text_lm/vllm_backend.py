"""The optional vLLM generation backend (a GPU and the ``vllm`` package; recipe ``generation: {backend: vllm}``).

While a cell is scored, `generate_responses` hands the generation of that cell's model to a vLLM engine
loaded from the same weights (the cell's saved ``model/`` folder, or the reference's directory or hub id).
Everything else a benchmark does with the model (log-probs for reward accuracy, a judge's own model) stays
with transformers. Prompts go in as the token ids of the chat template that the transformers path uses, and
the generated ids are decoded with the same tokenizer, so the two backends differ only in their kernels.
"""

from __future__ import annotations

from typing import Any

from distillbench.core.errors import UserInputError

INSTALL_HINT = "pip install vllm (on a machine with a CUDA GPU)"


def check_available() -> None:
    """Raise UserInputError unless vLLM can run here: the package imports and CUDA is present."""
    import importlib.util

    import torch

    if importlib.util.find_spec("vllm") is None:
        raise UserInputError(f"generation.backend: vllm needs the vllm package ({INSTALL_HINT}), or use hf")
    if not torch.cuda.is_available():
        raise UserInputError("generation.backend: vllm needs a CUDA GPU; use hf on this machine")


class VLLMGenerator:
    """A vLLM engine that generates for one transformers model (`serves`), loaded from its weights at `location`."""

    def __init__(self, location: str, serves: Any, *, revision: str | None = None, dtype: str = "auto",
                 gpu_memory_utilization: float = 0.5, seed: int = 0, trust_remote_code: bool = False):
        from vllm import LLM

        self.serves = serves
        self.engine = LLM(model=location, tokenizer=location, revision=revision, dtype=dtype, seed=seed,
                          gpu_memory_utilization=gpu_memory_utilization, trust_remote_code=trust_remote_code)

    def generate(self, prompts: list[list[int]], tokenizer, *, max_new_tokens: int, temperature: float) -> list[str]:
        """One decoded reply per prompt (token ids), in order; greedy when temperature is 0."""
        from vllm import SamplingParams

        params = SamplingParams(temperature=temperature, max_tokens=max_new_tokens)
        results = self.engine.generate([{"prompt_token_ids": ids} for ids in prompts], params, use_tqdm=False)
        return [tokenizer.decode(result.outputs[0].token_ids, skip_special_tokens=True).strip() for result in results]
