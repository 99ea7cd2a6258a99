"""Limits on untrusted input: what a JSON request body or an API YAML document may hold.

Every request body is checked here before anything else reads it (the ``JSONBodyGuard`` middleware
calls :class:`PayloadChecker`), and every YAML document a tenant sends (a workflow's ``yaml`` text)
is loaded by :func:`load_untrusted_yaml`. Both refuse, with the JSON path of the culprit where
there is one: nesting deeper than ``max_depth`` (Python's json module and most code that walks
JSON recurse, and what is stored must be readable back), more than ``max_nodes`` values, strings
longer than ``max_string_chars``, NaN and +/-Infinity (not JSON; PostgreSQL's ``jsonb`` refuses
them), NUL characters and lone surrogates in any string or key (PostgreSQL cannot store them and
they break re-encoding). YAML also gets no aliases (the billion-laughs expansion), no tags beyond
JSON's types (a timestamp stays the text it was written as; ``!!binary``, ``!!set``, ``!!omap`` are
refused) and string keys only.

Bodies larger than ``offload_bytes`` are checked in worker processes (or threads when
``processes`` is 0), so that a stream of hostile bodies never stalls the event loop: in a process
the server parses nothing it then refuses, and only learns the verdict. A workflow's YAML is loaded
there too; its value comes back as JSON and is handed to :func:`load_untrusted_yaml` through a
context variable. This module imports no web framework, so that worker processes start quickly.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import itertools
import json
import logging
import math
import multiprocessing
import re
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.events import AliasEvent
from yaml.nodes import Node, ScalarNode
from yaml.resolver import Resolver

__all__ = [
    "CheckedBody", "InvalidJSON", "PayloadChecker", "PayloadLimits", "PayloadRefused", "UntrustedYAMLError",
    "check_json", "check_value", "enter_request_payloads", "exit_request_payloads", "load_untrusted_yaml",
    "request_payloads",
]

logger = logging.getLogger("agentadapter.server")


@dataclass(frozen=True, slots=True)
class PayloadLimits:
    """What one body or document may hold (``AGENTADAPTER_MAX_BODY_*`` in the server settings)."""

    max_depth: int = 64
    """Deepest nesting of arrays and objects (the body itself is level 1)."""
    max_nodes: int = 100_000
    """Most values (objects, arrays, strings, numbers, ...) in one body or document."""
    max_string_chars: int = 524_288
    """Longest string or key, in characters."""


class PayloadRefused(Exception):
    """A body or document over a limit: the status, a code, a message that says what to do, and where."""

    def __init__(self, message: str, *, code: str, param: str | None = None, status: int = 422,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        self.status = status
        self.details = details


class InvalidJSON(Exception):
    """The body is not JSON at all (a syntax error); the message is the parser's, with its position."""


class UntrustedYAMLError(yaml.YAMLError):
    """A YAML document refused by :func:`load_untrusted_yaml` (a ``YAMLError``, so callers that catch
    PyYAML's errors report it the same way)."""


# -- JSON ------------------------------------------------------------------------------------------------

# A JSON string, or an unterminated one up to the end: every match succeeds once started and
# nothing backtracks, so stripping strings is linear even on bodies built to defeat a regex.
_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\[\s\S]?)*+(?:"|\Z)')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_BRACKET_STEP = [0] * 256
for _opening in b"[{":
    _BRACKET_STEP[_opening] = 1
for _closing in b"]}":
    _BRACKET_STEP[_closing] = -1


def _bracket_depth(raw: bytes) -> int:
    """The deepest bracket nesting outside strings, without parsing (and so without recursion)."""
    brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    return max(itertools.accumulate(map(_BRACKET_STEP.__getitem__, brackets)), default=0)


def check_json(raw: bytes, limits: PayloadLimits) -> Any:
    """The parsed body, once it is within ``limits``; :class:`PayloadRefused` or :class:`InvalidJSON` if not.

    The depth is measured on the raw bytes before parsing: the json module recurses once per level
    and would fail (or exhaust the stack) on a body a hundred thousand levels deep.
    """
    # No deeper than the number of opening brackets: a body with few of them (most) skips the measure.
    depth = 0 if raw.count(b"[") + raw.count(b"{") <= limits.max_depth else _bracket_depth(raw)
    if depth > limits.max_depth:
        raise PayloadRefused(
            f"the request body nests arrays and objects {depth} levels deep; at most {limits.max_depth} are "
            "accepted - flatten it", code="body_too_deep", details={"depth": depth, "max_depth": limits.max_depth})
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidJSON(str(exc)) from exc
    except UnicodeDecodeError as exc:
        raise PayloadRefused(f"the request body is not UTF-8 text ({exc.reason} at byte {exc.start}); send JSON "
                             "encoded in UTF-8", code="invalid_encoding") from exc
    except ValueError as exc:  # a number of more than 4300 digits: int() refuses to convert it
        raise PayloadRefused(f"the request body holds a number too long to read ({exc}); send it as a string",
                             code="number_too_long") from exc
    check_value(value, limits, what="the request body")
    return value


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

_Where = tuple[Any, ...] | None
"""A location as a linked chain ``(parent, key)``: cheap to build for every value, spelled out only on error."""


def _path(where: _Where) -> str | None:
    keys: list[Any] = []
    while where is not None:
        where, key = where
        keys.append(key)
    text = ""
    for key in reversed(keys):
        if isinstance(key, int):
            text += f"[{key}]"
        elif isinstance(key, str) and _IDENTIFIER.fullmatch(key):
            text += f".{key}" if text else key
        else:
            text += f"[{json.dumps(str(key)[:64])}]"
    return text or None


def _at(where: _Where) -> str:
    path = _path(where)
    return f" at {path}" if path else ""


def _check_string(text: str, where: _Where, limits: PayloadLimits, what: str, *, key: bool) -> None:
    kind = "key" if key else "string"
    if len(text) > limits.max_string_chars:
        raise PayloadRefused(
            f"{what} holds a {kind} of {len(text)} characters{_at(where)}; at most {limits.max_string_chars} are "
            "accepted", code="string_too_long", param=_path(where),
            details={"length": len(text), "max_string_chars": limits.max_string_chars})
    found = _UNSTORABLE.search(text)
    if found is not None:
        char = found.group()
        if char == "\x00":
            raise PayloadRefused(f"{what} holds a NUL character (\\u0000) in a {kind}{_at(where)}; remove it: it "
                                 "cannot be stored", code="nul_character", param=_path(where))
        raise PayloadRefused(
            f"{what} holds a lone surrogate (\\u{ord(char):04x}) in a {kind}{_at(where)}; send valid Unicode "
            "(a surrogate must be half of a pair)", code="lone_surrogate", param=_path(where))


def check_value(value: Any, limits: PayloadLimits, *, what: str = "the value") -> None:
    """Refuse (:class:`PayloadRefused`) a parsed value over ``limits`` or holding what JSON cannot store.

    Iterative, so it cannot recurse too deep itself. Types are compared exactly: only what a JSON
    parser makes (dict, list, str, int, float, bool, None) is accepted.
    """
    nodes = 0
    stack: list[tuple[Any, _Where, int]] = [(value, None, 1)]
    while stack:
        item, where, depth = stack.pop()
        nodes += 1
        if nodes > limits.max_nodes:
            raise PayloadRefused(f"{what} holds more than {limits.max_nodes} values; send less",
                                 code="too_many_values", details={"max_nodes": limits.max_nodes})
        kind = type(item)
        if kind is str:
            _check_string(item, where, limits, what, key=False)
        elif kind is dict or kind is list:
            if depth > limits.max_depth:
                raise PayloadRefused(f"{what} nests arrays and objects deeper than {limits.max_depth} levels"
                                     f"{_at(where)}; flatten it", code="body_too_deep", param=_path(where),
                                     details={"max_depth": limits.max_depth})
            if kind is dict:
                for key, child in item.items():
                    place = (where, key)
                    if type(key) is not str:
                        raise PayloadRefused(f"{what} has a mapping key that is not a string ({key!r}){_at(where)};"
                                             " quote it", code="non_string_key", param=_path(where))
                    _check_string(key, place, limits, what, key=True)
                    stack.append((child, place, depth + 1))
            else:
                stack.extend((child, (where, index), depth + 1) for index, child in enumerate(item))
        elif kind is float:
            if not math.isfinite(item):
                raise PayloadRefused(f"{what} holds {item!r}{_at(where)}: NaN and Infinity are not JSON numbers; "
                                     "send a finite number (or null)", code="non_finite_number", param=_path(where))
        elif item is not None and kind is not bool and kind is not int:
            raise PayloadRefused(f"{what} holds a {kind.__name__}{_at(where)}, which is not a JSON type",
                                 code="unsupported_type", param=_path(where))


# -- YAML ------------------------------------------------------------------------------------------------

class _JSONConstructor(SafeConstructor):
    """YAML's safe types narrowed to JSON's: timestamps stay text, binary/set/ordered-map tags are refused."""

    def construct_timestamp_text(self, node: Node) -> Any:
        return self.construct_scalar(node)  # type: ignore[arg-type]

    def refuse_tag(self, node: Node) -> Any:
        raise ConstructorError(None, None, f"the tag {node.tag} has no JSON equivalent; write a plain value",
                               node.start_mark)


_JSONConstructor.yaml_constructors = {
    **SafeConstructor.yaml_constructors,
    "tag:yaml.org,2002:timestamp": _JSONConstructor.construct_timestamp_text,
    **{f"tag:yaml.org,2002:{tag}": _JSONConstructor.refuse_tag for tag in ("binary", "set", "omap", "pairs")},
}


class _BoundedComposer(Composer):
    """PyYAML's composer with no aliases and a cap on nodes, depth and scalar size, checked as it goes."""

    limits: PayloadLimits
    _nodes: int
    _depth: int
    # Provided by the parser each loader class is mixed with (libyaml's or PyYAML's own).
    check_event: Callable[..., bool]
    peek_event: Callable[[], Any]

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(AliasEvent):
            event = self.peek_event()
            raise UntrustedYAMLError(
                f"aliases are not accepted (*{event.anchor}, line {event.start_mark.line + 1}); write the value out "
                "where it is used")
        self._nodes += 1
        if self._nodes > self.limits.max_nodes:
            raise UntrustedYAMLError(f"the document holds more than {self.limits.max_nodes} values; send less")
        self._depth += 1
        try:
            if self._depth > self.limits.max_depth:
                mark = self.peek_event().start_mark
                raise UntrustedYAMLError(f"the document nests deeper than {self.limits.max_depth} levels (line "
                                         f"{mark.line + 1}); flatten it")
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if isinstance(node, ScalarNode) and len(node.value) > self.limits.max_string_chars:
            raise UntrustedYAMLError(f"the document holds a scalar of {len(node.value)} characters (line "
                                     f"{node.start_mark.line + 1}); at most {self.limits.max_string_chars} are "
                                     "accepted")
        return node


def _loader_class() -> type:
    # libyaml's parser when it is there (several times faster), composed by the bounded composer
    # above: its own composer resolves aliases in C, with no hook to refuse them.
    if yaml.__with_libyaml__:
        from yaml._yaml import CParser

        class _CLoader(_BoundedComposer, CParser, _JSONConstructor, Resolver):
            def __init__(self, stream: str, limits: PayloadLimits) -> None:
                CParser.__init__(self, stream)
                _JSONConstructor.__init__(self)
                Resolver.__init__(self)
                self.anchors = {}
                self.limits, self._nodes, self._depth = limits, 0, 0

        return _CLoader
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class _PyLoader(Reader, Scanner, Parser, _BoundedComposer, _JSONConstructor, Resolver):
        def __init__(self, stream: str, limits: PayloadLimits) -> None:
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)
            Composer.__init__(self)
            _JSONConstructor.__init__(self)
            Resolver.__init__(self)
            self.limits, self._nodes, self._depth = limits, 0, 0

    return _PyLoader


_Loader = _loader_class()


def _load_yaml(text: str, limits: PayloadLimits) -> Any:
    if len(text) > limits.max_string_chars:
        raise UntrustedYAMLError(f"the document is {len(text)} characters long; at most {limits.max_string_chars} "
                                 "are accepted")
    loader = _Loader(text, limits)
    try:
        value = loader.get_single_data()
    except ValueError as exc:  # an integer too long for int(), or a date out of range
        raise UntrustedYAMLError(f"a value cannot be read: {exc}") from exc
    finally:
        loader.dispose()
    try:
        check_value(value, limits, what="the document")
    except PayloadRefused as exc:
        raise UntrustedYAMLError(exc.message) from exc
    return value


@dataclass(slots=True)
class _RequestPayloads:
    limits: PayloadLimits
    yaml_loaded: dict[bytes, tuple[bool, Any]] = field(default_factory=dict)
    """sha256 of a YAML text -> (loaded, its value) or (failed, the error message), loaded off the loop."""


_REQUEST: contextvars.ContextVar[_RequestPayloads | None] = contextvars.ContextVar(
    "agentadapter_request_payloads", default=None)


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def load_untrusted_yaml(text: str, limits: PayloadLimits | None = None) -> Any:
    """Load YAML a tenant sent: JSON types only, within the request's limits; :class:`UntrustedYAMLError` if not.

    A document already loaded off the event loop for this request (a large body) is taken from
    there; any other is loaded here.
    """
    request = _REQUEST.get()
    if request is not None:
        found = request.yaml_loaded.pop(_digest(text), None)
        if found is not None:
            loaded, value = found
            if not loaded:
                raise UntrustedYAMLError(value)
            return value
    return _load_yaml(text, limits or (request.limits if request is not None else PayloadLimits()))


# -- off the event loop ----------------------------------------------------------------------------------

@dataclass(slots=True)
class CheckedBody:
    """What the guard learnt of a request body: ``value`` when it was parsed in this process."""

    parsed: bool
    value: Any = None
    yaml_loaded: dict[bytes, tuple[bool, Any]] = field(default_factory=dict)


@contextlib.contextmanager
def request_payloads(limits: PayloadLimits, checked: CheckedBody | None = None) -> Iterator[None]:
    """The limits (and YAML loaded off the loop) that :func:`load_untrusted_yaml` uses while serving a request."""
    token = enter_request_payloads(limits, checked)
    try:
        yield
    finally:
        _REQUEST.reset(token)


def enter_request_payloads(limits: PayloadLimits, checked: CheckedBody | None = None) -> contextvars.Token[Any]:
    """What :func:`request_payloads` does on entry, for a caller on the hot path that resets the token itself
    (``exit_request_payloads``) rather than pay for a generator-based context manager per request."""
    return _REQUEST.set(_RequestPayloads(limits, dict(checked.yaml_loaded) if checked and checked.yaml_loaded
                                         else {}))


def exit_request_payloads(token: contextvars.Token[Any]) -> None:
    _REQUEST.reset(token)


_Verdict = tuple[Any, ...]


def _verdict(raw: bytes, limits: PayloadLimits, yaml_field: str | None) -> _Verdict:
    """The check of one body, as plain picklable data: it runs in a worker process (or thread).

    ``("ok", yaml)`` where ``yaml`` is None or ``(digest, loaded, JSON text or error message)``;
    ``("invalid_json", message)``; ``("refused", status, code, message, param, details)``.
    """
    try:
        value = check_json(raw, limits)
    except InvalidJSON as exc:
        return ("invalid_json", str(exc))
    except PayloadRefused as exc:
        return ("refused", exc.status, exc.code, exc.message, exc.param, exc.details)
    text = value.get(yaml_field) if yaml_field and isinstance(value, dict) else None
    if not isinstance(text, str):
        return ("ok", None)
    try:
        loaded = _load_yaml(text, limits)
    except yaml.YAMLError as exc:
        return ("ok", (_digest(text), False, str(exc)))
    return ("ok", (_digest(text), True, json.dumps(loaded)))


def _warm() -> None:
    """Nothing: submitted once so that a worker process has started before the first real body."""


class PayloadChecker:
    """Checks request bodies: small ones inline, larger ones in worker processes (started on first need)."""

    def __init__(self, limits: PayloadLimits, *, offload_bytes: int = 16_384, processes: int = 2) -> None:
        self.limits = limits
        self.offload_bytes = offload_bytes
        self.processes = processes
        self._pool: Executor | None = None

    def _executor(self) -> Executor:
        if self._pool is None:
            # spawn: the server has threads (the loop's executor, database drivers) that fork would copy mid-state.
            self._pool = ProcessPoolExecutor(max_workers=self.processes,
                                             mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    async def check(self, raw: bytes, *, yaml_field: str | None = None) -> CheckedBody:
        """Check ``raw``; raises :class:`PayloadRefused` or :class:`InvalidJSON`. ``yaml_field`` names a
        top-level string holding a YAML document, loaded with the check when it runs off the loop."""
        if len(raw) < self.offload_bytes:
            return CheckedBody(parsed=True, value=check_json(raw, self.limits))
        if self.processes == 0:
            verdict = await asyncio.to_thread(_verdict, raw, self.limits, yaml_field)
        else:
            verdict = await self._in_process(raw, yaml_field)
        if verdict[0] == "invalid_json":
            raise InvalidJSON(verdict[1])
        if verdict[0] == "refused":
            _, status, code, message, param, details = verdict
            raise PayloadRefused(message, code=code, param=param, status=status, details=details)
        checked = CheckedBody(parsed=False)
        if verdict[1] is not None:
            digest, loaded, payload = verdict[1]
            checked.yaml_loaded[digest] = (True, json.loads(payload)) if loaded else (False, payload)
        return checked

    async def _in_process(self, raw: bytes, yaml_field: str | None) -> _Verdict:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor(), _verdict, raw, self.limits, yaml_field)
        except BrokenProcessPool as exc:
            # A worker died (killed for memory, most likely by this very body): start afresh for the next
            # request, and tell this one to retry rather than check it here, in the server's own process.
            logger.error("a request body checker process died; starting new ones")
            self._discard_pool()
            raise PayloadRefused("the server could not check the request body (its checker process stopped); retry "
                                 "the request, with a smaller body if it fails again", code="body_check_failed",
                                 status=503) from exc

    def _discard_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    async def warm(self) -> None:
        """Start the worker processes now rather than on the first large body."""
        if self.processes:
            await asyncio.get_running_loop().run_in_executor(self._executor(), _warm)

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, True, cancel_futures=True)
