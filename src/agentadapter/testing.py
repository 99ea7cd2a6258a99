"""Test doubles and the backend conformance kit, public so users test their own code offline.

``TestBackend`` and ``FunctionBackend`` answer without a network (model ids ``test/echo`` and
``test/tools`` resolve to ``TestBackend``). ``offline_llm()`` builds an ``LLM`` that refuses every
provider except the test backends, for test suites that must never reach the internet.
``backend_conformance`` is the contract suite every backend passes (see docs/backends.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentadapter.llm import conformance as backend_conformance
from agentadapter.llm.backends.base import Backend
from agentadapter.llm.backends.testing import FunctionBackend, TestBackend, example_value
from agentadapter.llm.client import LLM
from agentadapter.llm.runners import conformance as runner_conformance
from agentadapter.llm.runners.testing import ScriptedRunner, build_tiny_model

__all__ = [
    "FunctionBackend",
    "ScriptedRunner",
    "TestBackend",
    "backend_conformance",
    "build_tiny_model",
    "example_value",
    "offline_llm",
    "runner_conformance",
]


def offline_llm(backends: Mapping[str, Backend] | None = None, **kwargs: Any) -> LLM:
    """An ``LLM`` with an empty environment: only the test backends (and those given) answer."""
    return LLM(config={}, backends=backends, environ={}, **kwargs)
