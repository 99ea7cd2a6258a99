"""Local inference runners: in-process models behind one small interface.

A runner holds one loaded model and generates from it on the model's own thread (see
:mod:`agentadapter.llm.runners.base`). Built in: ``mlx`` (the default; ``mlx-lm``), ``transformers``
(PyTorch) and ``vllm`` (the offline engine); others register with :func:`register_runner` or the
``agentadapter.runners`` entry point group. The adapter's ``LocalBackend``
(:mod:`agentadapter.llm.backends.local`) wraps any runner so that ``local/<runner>/<model>`` answers
like every other backend. Importing this package imports none of the engines.
"""

from __future__ import annotations

from agentadapter.llm.runners.base import (
    ChatMessage,
    Generation,
    GenerationChunk,
    GenerationConfig,
    PromptInput,
    Runner,
    RunnerFinish,
    TokenSink,
)
from agentadapter.llm.runners.registry import (
    DEFAULT_RUNNER,
    RunnerSpec,
    acquire_runner,
    find_model_path,
    get_runner,
    is_runner_name,
    loaded_runners,
    register_runner,
    resolve_model_path,
    runner_class,
    runner_names,
    unload_runners,
)

__all__ = [
    "DEFAULT_RUNNER",
    "ChatMessage",
    "Generation",
    "GenerationChunk",
    "GenerationConfig",
    "PromptInput",
    "Runner",
    "RunnerFinish",
    "RunnerSpec",
    "TokenSink",
    "acquire_runner",
    "find_model_path",
    "get_runner",
    "is_runner_name",
    "loaded_runners",
    "register_runner",
    "resolve_model_path",
    "runner_class",
    "runner_names",
    "unload_runners",
]
