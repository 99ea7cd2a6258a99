"""The built-in runners pass the runner contract: MLX and transformers on the tiny model, vLLM on its stand-in.

Each engine also has the checks particular to it: the settings it maps (sampling, device), the
options it refuses with a message, and that its model lives on one thread of its own.
"""

from __future__ import annotations

import threading

import pytest

from agentadapter.llm.errors import ConfigurationError, InvalidRequestError
from agentadapter.llm.runners import GenerationConfig, acquire_runner, get_runner
from agentadapter.llm.runners.conformance import CHECKS, run_runner_conformance

from .conftest import MLX, TRANSFORMERS, require

MESSAGES = [{"role": "user", "content": "the quick brown fox"}]


def _assert_passed(report) -> None:
    assert report.passed, f"\n{report}"
    assert [r.name for r in report.results] == ["load", *CHECKS]


# ------------------------------------------------------------------------------------------- MLX


async def test_the_mlx_runner_passes_the_contract(tiny_model):
    require(*MLX)
    _assert_passed(await run_runner_conformance(get_runner("mlx"), str(tiny_model)))


async def test_mlx_runs_the_model_on_one_thread_of_its_own(tiny_model):
    require(*MLX)
    runner = await acquire_runner("mlx", str(tiny_model))
    seen: set[int] = set()
    original = runner.generate_tokens

    def recording(prompt_ids, config, sink):
        seen.add(threading.get_ident())
        return original(prompt_ids, config, sink)

    runner.generate_tokens = recording  # type: ignore[method-assign]
    try:
        for _ in range(3):
            await runner.generate(MESSAGES, {"max_tokens": 2, "temperature": 0})
    finally:
        del runner.generate_tokens
    assert len(seen) == 1 and threading.get_ident() not in seen


async def test_mlx_sampling_settings_and_seeds(tiny_model):
    require(*MLX)
    runner = await acquire_runner("mlx", str(tiny_model))
    sampled = {"max_tokens": 10, "temperature": 1.5, "top_p": 0.9, "top_k": 50, "min_p": 0.01,
               "repetition_penalty": 1.1, "seed": 7}
    first = await runner.generate(MESSAGES, sampled)
    assert first == await runner.generate(MESSAGES, sampled)  # a seed makes sampling repeatable
    assert (await runner.generate(MESSAGES, {**sampled, "max_kv_size": 64})).completion_tokens >= 1
    with pytest.raises(InvalidRequestError, match=r"does not know generation option.*num_beams"):
        await runner.generate(MESSAGES, {"num_beams": 2})


async def test_mlx_refuses_unknown_options_and_devices(tiny_model):
    require(*MLX)
    with pytest.raises(ConfigurationError, match=r"does not take option.*quantize"):
        get_runner("mlx")(quantize=True)
    with pytest.raises(ConfigurationError, match="device_config takes 'device'"):
        await acquire_runner("mlx", str(tiny_model), {"dtype": "float16"})
    with pytest.raises(ConfigurationError, match="'cpu' or 'gpu'"):
        await acquire_runner("mlx", str(tiny_model), {"device": "tpu"})
    cpu = await acquire_runner("mlx", str(tiny_model), {"device": "cpu"})
    assert (await cpu.generate(MESSAGES, {"max_tokens": 3, "temperature": 0})).completion_tokens >= 1


# ----------------------------------------------------------------------------------- transformers


async def test_the_transformers_runner_passes_the_contract(tiny_model):
    require(*TRANSFORMERS)
    _assert_passed(await run_runner_conformance(get_runner("transformers"), str(tiny_model)))


async def test_transformers_settings_devices_and_options(tiny_model):
    require(*TRANSFORMERS)
    runner = await acquire_runner("transformers", str(tiny_model), {"device": "cpu", "dtype": "float32"})
    sampled = {"max_tokens": 8, "temperature": 0.8, "top_p": 0.9, "top_k": 20, "repetition_penalty": 1.2, "seed": 3}
    assert await runner.generate(MESSAGES, sampled) == await runner.generate(MESSAGES, sampled)
    greedy = await runner.generate(MESSAGES, {"max_tokens": 8, "temperature": 0, "no_repeat_ngram_size": 2})
    assert greedy.completion_tokens >= 1
    with pytest.raises(ConfigurationError, match="device_config takes device, dtype, threads"):
        await acquire_runner("transformers", str(tiny_model), {"gpu": True})
    with pytest.raises(ConfigurationError, match="dtype is auto, float32"):
        await acquire_runner("transformers", str(tiny_model), {"dtype": "float9"})


async def test_mlx_and_transformers_agree_on_the_same_model(tiny_model):
    require(*MLX, *TRANSFORMERS)
    config = GenerationConfig(max_tokens=12, temperature=0.0)
    mlx = await (await acquire_runner("mlx", str(tiny_model))).generate(MESSAGES, config)
    torch = await (await acquire_runner("transformers", str(tiny_model))).generate(MESSAGES, config)
    assert (mlx.prompt_tokens, mlx.completion_tokens) == (torch.prompt_tokens, torch.completion_tokens)


# ------------------------------------------------------------------------------------------- vLLM


async def test_the_vllm_runner_passes_the_contract(fake_vllm, tiny_model):
    _assert_passed(await run_runner_conformance(get_runner("vllm"), str(tiny_model)))


async def test_vllm_gets_engine_arguments_and_sampling_params(fake_vllm, tiny_model):
    runner = get_runner("vllm")(enforce_eager=True)
    await runner.load(str(tiny_model), {"dtype": "float16", "gpu_memory_utilization": 0.5})
    generation = await runner.generate(MESSAGES, {
        "max_tokens": 5, "temperature": 0.7, "top_p": 0.95, "top_k": 40, "min_p": 0.05, "seed": 11,
        "repetition_penalty": 1.05, "presence_penalty": 0.3, "stop": ["zzz"],
    })
    engine = fake_vllm.LLM.instances[-1]
    assert engine.model == str(tiny_model)
    assert engine.engine_args == {"dtype": "float16", "gpu_memory_utilization": 0.5, "enforce_eager": True}
    prompt_ids, params = engine.requests[-1]
    assert len(prompt_ids) == generation.prompt_tokens
    assert (params.max_tokens, params.temperature, params.top_p, params.top_k, params.min_p, params.seed) == (
        5, 0.7, 0.95, 40, 0.05, 11)
    assert (params.repetition_penalty, params.presence_penalty, params.stop) == (1.05, 0.3, ["zzz"])
    assert params.skip_special_tokens is False  # tool-call markers such as [TOOL_CALLS] must survive
    assert generation.completion_tokens == 5 and generation.finish_reason == "length"
    with pytest.raises(InvalidRequestError, match=r"vllm runner cannot use generation option.*num_beams"):
        await runner.generate(MESSAGES, {"num_beams": 2})
    await runner.cleanup()


async def test_vllm_engine_errors_and_a_missing_vllm_say_what_to_do(fake_vllm, tiny_model, monkeypatch):
    with pytest.raises(ConfigurationError, match=r"could not load.*unexpected keyword"):
        await acquire_runner("vllm", str(tiny_model), {"tensor_parallelism": 2})
    monkeypatch.setitem(__import__("sys").modules, "vllm", None)
    with pytest.raises(ConfigurationError, match=r"vllm runner cannot start.*agentadapter\[vllm\]"):
        await acquire_runner("vllm", str(tiny_model), {"dtype": "auto"})
