"""The runner contract: what ``LocalBackend`` relies on from every runner, as checks any runner can run.

A runner author supplies a factory for the runner and a model it can load; :func:`run_runner_conformance`
loads it and checks, with greedy decoding: a generation's shape and usage (prompt tokens equal the
runner's own count, ``max_tokens`` bounds the output, ``length`` means the bound was reached), raw
prompts, that a stream's chunks add up to the generation it ends with and to the non-streaming
answer, stop sequences (cut before the first one, in both modes), concurrent calls on one model,
that the event loop keeps running during a generation, and that ``cleanup`` ends the runner. The
built-in runners pass it (MLX and transformers on a tiny model built on the fly, vLLM against a
stand-in of its API); so should a plugin's. ``CHECKS`` lets a test suite parametrize over them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from agentadapter.llm.conformance import CheckResult, ConformanceFailure, ConformanceReport
from agentadapter.llm.errors import ConfigurationError
from agentadapter.llm.runners.base import Generation, GenerationConfig, PromptInput, Runner

__all__ = ["CHECKS", "run_runner_conformance"]

RunnerFactory = Callable[[], Runner]
Check = Callable[[Runner], Awaitable[str | None]]

_MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "You answer briefly."},
    {"role": "user", "content": "the quick brown fox jumps over the lazy dog"},
]


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise ConformanceFailure(message)


def _greedy(**settings: Any) -> GenerationConfig:
    return GenerationConfig.of({"temperature": 0.0, "seed": 0, "max_tokens": 12, **settings})


async def _streamed(runner: Runner, prompt: PromptInput, config: GenerationConfig) -> tuple[str, Generation]:
    text = ""
    final: Generation | None = None
    async for chunk in runner.stream(prompt, config):
        _expect(final is None, "a stream must end with the chunk carrying the generation")
        text += chunk.text
        final = chunk.generation
    _expect(final is not None, "a stream must end with a chunk carrying the Generation")
    assert final is not None
    return text, final


async def check_generate(runner: Runner) -> str | None:
    """A generation's text, usage and finish reason."""
    generation = await runner.generate(_MESSAGES, _greedy(max_tokens=8))
    _expect(isinstance(generation.text, str), "Generation.text must be a str")
    _expect(generation.finish_reason in ("stop", "length"), f"bad finish_reason {generation.finish_reason!r}")
    _expect(1 <= generation.completion_tokens <= 8, f"completion_tokens {generation.completion_tokens} not in 1..8")
    if generation.finish_reason == "length":
        _expect(generation.completion_tokens == 8, "finish_reason 'length' means max_tokens were generated")
    counted = await runner.count_tokens(_MESSAGES)
    _expect(generation.prompt_tokens == counted > 0,
            f"prompt_tokens {generation.prompt_tokens} differ from count_tokens() {counted}")
    return None


async def check_raw_prompt(runner: Runner) -> str | None:
    """A string prompt is generated from as is."""
    generation = await runner.generate("the quick brown fox", _greedy(max_tokens=4))
    counted = await runner.count_tokens("the quick brown fox")
    _expect(generation.prompt_tokens == counted > 0, "a raw prompt's tokens must match count_tokens()")
    return None


async def check_stream_matches_generate(runner: Runner) -> str | None:
    """Streamed chunks add up to the final generation, which equals the non-streaming one."""
    config = _greedy(max_tokens=12)
    generated = await runner.generate(_MESSAGES, config)
    text, final = await _streamed(runner, _MESSAGES, config)
    _expect(text == final.text, f"the chunks add up to {text!r}, the final generation says {final.text!r}")
    _expect(final == generated, f"stream and generate differ (greedy): {final} != {generated}")
    return None


async def check_stop_sequences(runner: Runner) -> str | None:
    """The text ends before the first stop sequence, streamed or not."""
    config = _greedy(max_tokens=16)
    full = (await runner.generate(_MESSAGES, config)).text
    if len(full) < 4:
        return f"skipped: the greedy answer {full!r} is too short to cut"
    middle = len(full) // 2
    stop = full[middle : middle + 2]
    expected = full[: full.find(stop)]
    stopped = await runner.generate(_MESSAGES, _greedy(max_tokens=16, stop=[stop, "never-generated-stop"]))
    _expect(stopped.text == expected, f"stop {stop!r}: expected {expected!r}, got {stopped.text!r}")
    _expect(stopped.finish_reason == "stop", "a stop sequence ends with finish_reason 'stop'")
    _expect(stopped.stop_sequence == stop, f"stop_sequence should be {stop!r}, not {stopped.stop_sequence!r}")
    text, final = await _streamed(runner, _MESSAGES, _greedy(max_tokens=16, stop=[stop]))
    _expect(text == expected == final.text, f"streamed with stop {stop!r}: {text!r} (expected {expected!r})")
    return None


async def check_max_tokens(runner: Runner) -> str | None:
    """``max_tokens`` bounds the output."""
    generation = await runner.generate(_MESSAGES, _greedy(max_tokens=3))
    _expect(generation.completion_tokens <= 3, f"{generation.completion_tokens} tokens for max_tokens=3")
    return None


async def check_concurrent_calls(runner: Runner) -> str | None:
    """Calls made at once on one model all complete, each as if alone."""
    config = _greedy(max_tokens=6)
    alone = await runner.generate(_MESSAGES, config)
    together = await asyncio.gather(*(runner.generate(_MESSAGES, config) for _ in range(3)))
    _expect(all(g == alone for g in together), "concurrent greedy generations differ from a lone one")
    return None


async def check_loop_keeps_running(runner: Runner) -> str | None:
    """Other tasks run while a generation is under way (the work is on the model's thread)."""
    generation_done = False
    ran_during_generation = False

    async def probe() -> None:
        nonlocal ran_during_generation
        ran_during_generation = not generation_done

    task = asyncio.create_task(probe())
    try:
        await runner.generate(_MESSAGES, _greedy(max_tokens=8))
    finally:
        generation_done = True
        await task
    _expect(ran_during_generation, "the event loop ran nothing else during generate(): the runner blocks the loop")
    return None


async def check_cleanup(runner: Runner) -> str | None:
    """After ``cleanup`` the runner refuses work with a clear error (a second cleanup is harmless)."""
    await runner.cleanup()
    await runner.cleanup()
    try:
        await runner.generate(_MESSAGES, _greedy(max_tokens=2))
    except ConfigurationError:
        return None
    raise ConformanceFailure("generate() after cleanup() must raise ConfigurationError")


CHECKS: dict[str, Check] = {
    "generate": check_generate,
    "raw_prompt": check_raw_prompt,
    "stream_matches_generate": check_stream_matches_generate,
    "stop_sequences": check_stop_sequences,
    "max_tokens": check_max_tokens,
    "concurrent_calls": check_concurrent_calls,
    "loop_keeps_running": check_loop_keeps_running,
    "cleanup": check_cleanup,
}
"""Every check, in order; ``cleanup`` must run last."""


async def run_runner_conformance(
    make: RunnerFactory, model_path: str, *, device_config: Mapping[str, Any] | None = None,
) -> ConformanceReport:
    """Load a runner from ``make()`` with ``model_path`` and run every check against it."""
    report = ConformanceReport()
    runner = make()
    try:
        await runner.load(model_path, device_config)
    except Exception as exc:
        report.results.append(CheckResult("load", False, f"{type(exc).__name__}: {exc}"))
        return report
    report.results.append(CheckResult("load", True))
    try:
        for name, check in CHECKS.items():
            try:
                detail = await check(runner)
            except ConformanceFailure as failure:
                report.results.append(CheckResult(name, False, str(failure)))
            except Exception as exc:
                report.results.append(CheckResult(name, False, f"{type(exc).__name__}: {exc}"))
            else:
                report.results.append(CheckResult(name, True, detail or ""))
    finally:
        await runner.cleanup()
    return report
