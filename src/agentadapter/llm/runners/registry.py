"""The runner registry, the process-wide cache of loaded models, and where model names are found.

:func:`register_runner` and :func:`get_runner` map names to :class:`~agentadapter.llm.runners.base.Runner`
classes: the built-ins (``mlx``, the default; ``transformers``; ``vllm``) are imported on first
use, third-party runners come from :func:`register_runner` or the ``agentadapter.runners`` entry
point group. :func:`acquire_runner` returns a loaded runner for a (runner, model directory,
device config, runner options) combination, loading it once and sharing it with every backend that
asks for the same thing; :func:`unload_runners` frees them all. :func:`resolve_model_path` turns a
model name into a directory: the name itself, a directory of ``LOCAL_MODEL_PATHS``, or a snapshot
already in the Hugging Face cache. Nothing here downloads weights.
"""

from __future__ import annotations

import asyncio
import importlib
import threading
from collections.abc import Mapping, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, TypeAlias

from agentadapter.llm.errors import ConfigurationError
from agentadapter.llm.runners.base import Runner, frozen_settings

__all__ = [
    "DEFAULT_RUNNER",
    "RunnerSpec",
    "acquire_runner",
    "find_model_path",
    "get_runner",
    "hf_cache_snapshot",
    "is_runner_name",
    "loaded_runners",
    "register_runner",
    "resolve_model_path",
    "runner_class",
    "runner_names",
    "unload_runners",
]

DEFAULT_RUNNER = "mlx"
"""The runner ``local/<model>`` uses (DESIGN.md: MLX first, ``mlx[cpu]`` on Linux)."""

RunnerSpec: TypeAlias = str | type[Runner]
"""A runner given by registry name or by class."""

_BUILTIN: dict[str, str] = {
    "mlx": "agentadapter.llm.runners.mlx:MLXRunner",
    "transformers": "agentadapter.llm.runners.transformers:TransformersRunner",
    "vllm": "agentadapter.llm.runners.vllm:VLLMRunner",
}
_RUNNERS: dict[str, type[Runner]] = {}
_ENTRY_POINT_NAMES: dict[str, Any] | None = None
_registry_lock = threading.Lock()


def register_runner(name: str, cls: type[Runner]) -> None:
    """Make a runner class available as ``local/<name>/<model>`` and as ``runner="<name>"``."""
    if not (isinstance(cls, type) and issubclass(cls, Runner)):
        raise ConfigurationError(f"register_runner({name!r}, ...) needs a Runner subclass, got {cls!r}")
    if not name or "/" in name:
        raise ConfigurationError(f"a runner name is one path segment like 'mlx', not {name!r}")
    _RUNNERS[name] = cls


def _entry_points() -> dict[str, Any]:
    global _ENTRY_POINT_NAMES
    with _registry_lock:
        if _ENTRY_POINT_NAMES is None:
            _ENTRY_POINT_NAMES = {ep.name: ep for ep in entry_points(group="agentadapter.runners")}
        return _ENTRY_POINT_NAMES


def runner_names() -> list[str]:
    """Every runner name known: built-in, registered, and from entry points (none is imported)."""
    return sorted({*_BUILTIN, *_RUNNERS, *_entry_points()})


def is_runner_name(name: str) -> bool:
    """Whether ``name`` names a runner (so ``local/<name>/...`` selects it)."""
    return name in _RUNNERS or name in _BUILTIN or name in _entry_points()


def get_runner(name: str) -> type[Runner]:
    """The runner class registered under ``name`` (registered ones, built-ins, then entry points)."""
    found = _RUNNERS.get(name)
    if found is not None:
        return found
    target = _BUILTIN.get(name)
    if target is not None:
        module_name, _, attribute = target.partition(":")
        cls: type[Runner] = getattr(importlib.import_module(module_name), attribute)
        _RUNNERS[name] = cls
        return cls
    entry_point = _entry_points().get(name)
    if entry_point is not None:
        loaded = entry_point.load()
        register_runner(name, loaded)
        return _RUNNERS[name]
    raise ConfigurationError(
        f"no local runner {name!r}; known runners: {', '.join(runner_names())}. Register another with "
        "register_runner(name, cls) or the 'agentadapter.runners' entry point group"
    )


def runner_class(runner: RunnerSpec) -> type[Runner]:
    """A runner class from a name or a class."""
    if isinstance(runner, str):
        return get_runner(runner)
    if isinstance(runner, type) and issubclass(runner, Runner):
        return runner
    raise ConfigurationError(f"runner must be a runner name like 'mlx' or a Runner subclass, not {runner!r}")


# ------------------------------------------------------------------------------ loaded, shared models

_LOADED: dict[tuple[type[Runner], str, str, str], Runner] = {}
_loaded_lock = threading.Lock()


def _instance(
    cls: type[Runner], model_path: str, device_config: Mapping[str, Any], options: Mapping[str, Any]
) -> tuple[Runner, tuple[type[Runner], str, str, str] | None]:
    if not cls.shared:
        return cls(**options), None
    key = (cls, model_path, frozen_settings(device_config), frozen_settings(options))
    with _loaded_lock:
        runner = _LOADED.get(key)
        if runner is None or runner.closed:
            runner = _LOADED[key] = cls(**options)
    return runner, key


async def acquire_runner(
    runner: RunnerSpec, model_path: str, device_config: Mapping[str, Any] | None = None,
    runner_kwargs: Mapping[str, Any] | None = None,
) -> Runner:
    """A loaded runner for ``model_path``: the shared one when it exists, else a new one, loaded.

    Runners are shared per (class, model directory, device config, runner options); a runner class
    with ``shared = False`` gets a new instance every time. A load that fails is forgotten, so a
    later call tries again.
    """
    cls = runner_class(runner)
    device = dict(device_config or {})
    instance, key = _instance(cls, model_path, device, dict(runner_kwargs or {}))
    try:
        await instance.load(model_path, device)
    except asyncio.CancelledError:
        raise
    except BaseException:
        if key is not None:
            with _loaded_lock:
                if _LOADED.get(key) is instance:
                    del _LOADED[key]
        raise
    return instance


def loaded_runners() -> list[Runner]:
    """The shared runners currently holding a model."""
    with _loaded_lock:
        return [runner for runner in _LOADED.values() if not runner.closed]


async def unload_runners() -> None:
    """Clean up every shared runner (their models are freed; the next call loads again)."""
    with _loaded_lock:
        runners = list(_LOADED.values())
        _LOADED.clear()
    for runner in runners:
        await runner.cleanup()


# ------------------------------------------------------------------------------------ model names


def _search_paths(search_paths: Sequence[Path | str] | None) -> list[Path]:
    if search_paths is not None:
        return [Path(p) for p in search_paths]
    from agentadapter.config import get_settings

    return list(get_settings().local_model_paths)


def find_model_path(name: str, search_paths: Sequence[Path | str] | None = None) -> str | None:
    """``name`` when it is an existing path, else the first ``LOCAL_MODEL_PATHS`` directory holding it, else None."""
    candidate = Path(name).expanduser()
    if candidate.exists():
        return str(candidate)
    if candidate.is_absolute():
        return None
    for directory in _search_paths(search_paths):
        found = Path(directory).expanduser() / name
        if found.exists():
            return str(found)
    return None


def resolve_model_path(name: str, search_paths: Sequence[Path | str] | None = None) -> str:
    """The directory holding model ``name``: a path, a ``LOCAL_MODEL_PATHS`` entry, or the HF cache.

    Weights are never downloaded: a model found nowhere raises :class:`ConfigurationError` saying
    where it was looked for and how to make it available.
    """
    found = find_model_path(name, search_paths)
    if found is not None:
        return str(Path(found).resolve())
    cached = hf_cache_snapshot(name)
    if cached is not None:
        return cached
    paths = [str(p) for p in _search_paths(search_paths)]
    raise ConfigurationError(
        f"local model {name!r} was not found: it is not a directory, not in LOCAL_MODEL_PATHS "
        f"({', '.join(paths) or 'not set'}) and not in the Hugging Face cache. Weights are never downloaded "
        f"at run time: fetch them once (e.g. `hf download {name} --local-dir <models>/{Path(name).name}`) "
        "and add <models> to LOCAL_MODEL_PATHS, or pass the model's directory"
    )


def hf_cache_snapshot(name: str) -> str | None:
    """The cached snapshot of Hugging Face repository ``name`` (``org/model``), never downloading."""
    if name.count("/") != 1 or name.startswith((".", "/", "~")):
        return None
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return None
    try:
        return str(snapshot_download(name, local_files_only=True))
    except Exception:  # not cached, or not a repository name: the caller reports it
        return None
