"""The runner machinery every engine shares: the sink, the settings, the model thread, the registry.

These run on :class:`ScriptedRunner` (no engine needed): it goes through the same thread, sink,
stop-sequence and streaming code as the real runners.
"""

from __future__ import annotations

import asyncio
import threading
import time
from importlib.metadata import EntryPoint

import pytest

from agentadapter.llm.errors import APITimeoutError, ConfigurationError, InvalidRequestError
from agentadapter.llm.runners import (
    GenerationConfig,
    Runner,
    TokenSink,
    acquire_runner,
    get_runner,
    is_runner_name,
    loaded_runners,
    register_runner,
    resolve_model_path,
    runner_names,
    unload_runners,
)
from agentadapter.llm.runners import registry as registry_module
from agentadapter.llm.runners.conformance import run_runner_conformance
from agentadapter.llm.runners.testing import ScriptedRunner

from .conftest import require


def test_the_sink_cuts_at_the_first_stop_sequence_across_pieces():
    delivered: list[str] = []
    sink = TokenSink(["END", "\n\n"], deliver=delivered.append)
    for piece in ["Hello wor", "ld E", "N", "D and more"]:
        if not sink.add(piece):
            break
    assert sink.close() == "Hello world " and sink.stop_sequence == "END"
    assert "".join(delivered) == "Hello world " and sink.completion_tokens == 4
    held = TokenSink(["<stop>"])
    assert held.add("text <st") and held.text == "text "  # "<st" might start the stop sequence
    assert held.add("ay>") and held.close() == "text <stay>" and held.stop_sequence is None


def test_the_sink_stops_on_cancel_and_at_the_deadline():
    sink = TokenSink()
    assert sink.add("a")
    sink.cancel()
    assert not sink.add("b") and sink.done
    late = TokenSink(deadline=time.monotonic() - 1)
    assert not late.add("x") and late.timed_out


def test_generation_config_accepts_dicts_aliases_and_refuses_nonsense():
    config = GenerationConfig.of({"max_new_tokens": 7, "temp": 0.5, "stop": "END", "top_k": 3, "num_beams": 2})
    assert (config.max_tokens, config.temperature, config.stop, config.top_k) == (7, 0.5, ["END"], 3)
    assert config.extra == {"num_beams": 2}
    assert GenerationConfig.of(None) == GenerationConfig()
    with pytest.raises(InvalidRequestError, match="max_tokens must be a positive integer"):
        GenerationConfig(max_tokens=0)
    with pytest.raises(InvalidRequestError, match="temperature must be 0 or more"):
        GenerationConfig(temperature=-1)
    with pytest.raises(InvalidRequestError, match="GenerationConfig or a dict"):
        GenerationConfig.of(3)  # type: ignore[arg-type]


async def test_the_scripted_runner_passes_the_runner_contract():
    report = await run_runner_conformance(lambda: ScriptedRunner(lambda call: "one two three four five six seven"), "any")
    assert report.passed, f"\n{report}"


class ThreadRecorder(ScriptedRunner):
    """Records the thread every hook runs on."""

    threads: set[int]

    def load_model(self, model_path, device_config):
        self.threads = {threading.get_ident()}
        super().load_model(model_path, device_config)

    def encode_prompt(self, prompt, tools=None, template_kwargs=None):
        self.threads.add(threading.get_ident())
        return super().encode_prompt(prompt, tools, template_kwargs)

    def generate_tokens(self, prompt_ids, config, sink):
        self.threads.add(threading.get_ident())
        return super().generate_tokens(prompt_ids, config, sink)


async def test_loading_and_every_generation_run_on_the_models_own_thread():
    runner = ThreadRecorder(lambda call: "a b c")
    await runner.load("m")
    await runner.generate("hi")
    _ = [chunk async for chunk in runner.stream([{"role": "user", "content": "hi"}])]
    await runner.count_tokens("hi")
    assert len(runner.threads) == 1 and threading.get_ident() not in runner.threads
    await runner.cleanup()


class Slow(ScriptedRunner):
    """Generates forever, one token at a time, until the sink says stop."""

    generated = 0

    def generate_tokens(self, prompt_ids, config, sink):
        while sink.add("x "):
            self.generated += 1
            time.sleep(0.001)
        return "stop"


async def test_a_stream_left_early_stops_the_generation():
    runner = Slow()
    await runner.load("m")
    stream = runner.stream("go")
    async for _ in stream:
        break
    await stream.aclose()
    # The model thread is free again: another generation runs (it would queue forever otherwise).
    assert (await runner.generate("go", {"max_tokens": 3, "deadline": time.monotonic() + 60, "stop": ["x x"]})).text == ""
    await runner.cleanup()


async def test_a_cancelled_generate_stops_and_a_deadline_raises_a_timeout():
    runner = Slow()
    await runner.load("m")
    task = asyncio.create_task(runner.generate("go"))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(APITimeoutError, match="past the request's deadline"):
        await runner.generate("go", {"deadline": time.monotonic() + 0.01})
    await runner.cleanup()


async def test_a_runner_holds_one_model_and_refuses_work_after_cleanup():
    runner = ScriptedRunner(["a"])
    with pytest.raises(ConfigurationError, match=r"has no model; call await runner.load"):
        await runner.generate("hi")
    await runner.load("m")
    await runner.load("m")  # again: nothing happens
    with pytest.raises(ConfigurationError, match="already holds 'm'"):
        await runner.load("other")
    await runner.cleanup()
    with pytest.raises(ConfigurationError, match="was cleaned up"):
        await runner.generate("hi")
    with pytest.raises(ConfigurationError, match="was cleaned up"):
        await runner.load("m")


class Broken(ScriptedRunner):
    def load_model(self, model_path, device_config):
        raise ValueError("config.json is missing")


class NeedsAnEngine(ScriptedRunner):
    install_hint = "pip install an-engine"

    def load_model(self, model_path, device_config):
        raise ImportError("No module named 'an_engine'")


class Crashes(ScriptedRunner):
    def generate_tokens(self, prompt_ids, config, sink):
        raise RuntimeError("kernel panic")


async def test_errors_say_what_happened_and_what_to_do():
    with pytest.raises(ConfigurationError, match=r"could not load 'm': ValueError: config.json is missing; check"):
        await Broken().load("m")
    with pytest.raises(ConfigurationError, match=r"cannot start: No module named 'an_engine'.*pip install an-engine"):
        await NeedsAnEngine().load("m")
    crashing = Crashes()
    await crashing.load("m")
    with pytest.raises(Exception, match="failed while generating with 'm': RuntimeError: kernel panic") as caught:
        await crashing.generate("hi")
    assert caught.value.retryable is False
    await crashing.cleanup()


class Shared(ScriptedRunner):
    name = "shared-test"
    shared = True
    loads = 0

    def load_model(self, model_path, device_config):
        type(self).loads += 1
        super().load_model(model_path, device_config)


async def test_loaded_models_are_shared_and_can_all_be_unloaded():
    first, second = await asyncio.gather(
        acquire_runner(Shared, "m", {"device": "cpu"}), acquire_runner(Shared, "m", {"device": "cpu"}))
    assert first is second and Shared.loads == 1 and first in loaded_runners()
    other = await acquire_runner(Shared, "m", {"device": "gpu"})
    assert other is not first and Shared.loads == 2
    unshared = await acquire_runner(ScriptedRunner, "m")
    assert unshared is not await acquire_runner(ScriptedRunner, "m")
    await unload_runners()
    assert first.closed and other.closed and not [r for r in loaded_runners() if isinstance(r, Shared)]
    again = await acquire_runner(Shared, "m", {"device": "cpu"})
    assert again is not first and Shared.loads == 3
    await again.cleanup()


class FailsOnce(ScriptedRunner):
    name = "fails-once"
    shared = True
    attempts = 0

    def load_model(self, model_path, device_config):
        type(self).attempts += 1
        if type(self).attempts == 1:
            raise OSError("disk not mounted")
        super().load_model(model_path, device_config)


async def test_a_failed_load_is_not_cached():
    with pytest.raises(ConfigurationError, match="disk not mounted"):
        await acquire_runner(FailsOnce, "m")
    runner = await acquire_runner(FailsOnce, "m")
    assert runner.loaded
    await runner.cleanup()


def test_the_registry_knows_builtins_registered_runners_and_entry_points(monkeypatch):
    assert {"mlx", "transformers", "vllm"} <= set(runner_names())
    assert is_runner_name("mlx") and not is_runner_name("mlx-community")
    register_runner("scripted-test", ScriptedRunner)
    assert get_runner("scripted-test") is ScriptedRunner
    monkeypatch.setattr(registry_module, "_ENTRY_POINT_NAMES", {
        "plugin": EntryPoint("plugin", "agentadapter.llm.runners.testing:ScriptedRunner", "agentadapter.runners"),
    })
    assert is_runner_name("plugin") and "plugin" in runner_names()
    assert get_runner("plugin") is ScriptedRunner
    with pytest.raises(ConfigurationError, match=r"no local runner 'nope'; known runners: .*mlx.*register_runner"):
        get_runner("nope")
    with pytest.raises(ConfigurationError, match="needs a Runner subclass"):
        register_runner("bad", dict)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="one path segment"):
        register_runner("a/b", ScriptedRunner)
    assert issubclass(get_runner("transformers"), Runner)  # imported on first use, no engine needed


def test_model_names_resolve_to_directories_and_never_to_a_download(tmp_path, monkeypatch, settings_env):
    models = tmp_path / "models"
    (models / "tiny").mkdir(parents=True)
    assert resolve_model_path(str(models / "tiny")) == str((models / "tiny").resolve())
    assert resolve_model_path("tiny", [models]) == str(models / "tiny")
    settings_env(LOCAL_MODEL_PATHS=str(models))
    assert resolve_model_path("tiny") == str(models / "tiny")
    # A repository already in the Hugging Face cache is found there, offline.
    require("huggingface_hub")
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    snapshot = cache / "models--org--cached" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (cache / "models--org--cached" / "refs").mkdir()
    (cache / "models--org--cached" / "refs" / "main").write_text("abc123")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    assert resolve_model_path("org/cached", []) == str(snapshot)
    with pytest.raises(ConfigurationError, match=(
        r"local model 'org/elsewhere' was not found.*LOCAL_MODEL_PATHS \(.*models\).*never downloaded.*hf download"
    )):
        resolve_model_path("org/elsewhere")
