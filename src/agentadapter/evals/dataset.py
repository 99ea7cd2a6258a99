"""Datasets: the cases an experiment runs, read from YAML, JSONL or CSV or built in Python.

A :class:`Case` has an ``input`` (a prompt, or a list of OpenAI-style messages), an optional
``expected`` output, free ``metadata``, and optionally evaluator specs of its own (a tool-call
expectation that only this case has). A :class:`Dataset` is a name, its cases and the evaluator
specs every case gets. Its :attr:`Dataset.version` is a content hash (SHA-256 of the canonical JSON
of its cases and evaluators), so the same cases give the same version wherever they came from, and a
changed case gives a new one. Parsing never interpolates anything and never reads a path named inside
the data: a dataset is data, which the service takes from tenants as it is.

File shapes:

- YAML: ``{name, description, evaluators: [...], cases: [{id, input, expected, metadata}]}``, or a
  bare list of cases;
- JSONL: one case object per line (blank lines and ``#`` comments skipped);
- CSV: a header row; ``input`` is required, ``expected`` and ``id`` are optional, every other column
  goes into ``metadata`` (an ``expected`` that parses as JSON is read as JSON, so ``42`` is a number).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from agentadapter.errors import InvalidRequestError

__all__ = ["Case", "Dataset", "DatasetFormat", "dataset_from_document", "load_dataset", "parse_dataset"]

DatasetFormat = Literal["yaml", "jsonl", "csv", "json"]

MAX_CASES = 100_000
"""A dataset larger than this is refused: split it (an experiment holds every result in memory)."""

_CASE_KEYS = {"id", "input", "expected", "metadata", "evaluators"}


@dataclass(slots=True, frozen=True)
class Case:
    """One input to run, and what a good answer looks like."""

    input: Any
    """A prompt, or a list of messages (``{"role", "content"}`` dicts)."""
    expected: Any = None
    """The expected output (text, a number, an object), for the evaluators that compare with it."""
    id: str = ""
    """Unique within its dataset (``case-1``, ... when not given)."""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    evaluators: tuple[Mapping[str, Any], ...] = ()
    """Evaluator specs for this case only, besides the dataset's."""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "input": self.input}
        if self.expected is not None:
            data["expected"] = self.expected
        if self.metadata:
            data["metadata"] = dict(self.metadata)
        if self.evaluators:
            data["evaluators"] = [dict(e) for e in self.evaluators]
        return data

    @property
    def input_text(self) -> str:
        """The input as one text (a list of messages: their contents, one per line)."""
        if isinstance(self.input, str):
            return self.input
        if isinstance(self.input, list):
            return "\n".join(str(m.get("content", "")) if isinstance(m, Mapping) else str(m) for m in self.input)
        return json.dumps(self.input, sort_keys=True, default=str)


@dataclass(slots=True, frozen=True)
class Dataset:
    """Named cases with the evaluator specs that apply to all of them; ``version`` is their content hash."""

    name: str
    cases: tuple[Case, ...]
    description: str = ""
    evaluators: tuple[Mapping[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise InvalidRequestError("a dataset needs a non-empty name")
        if not self.cases:
            raise InvalidRequestError(f"dataset {self.name!r} has no cases; give at least one")
        if len(self.cases) > MAX_CASES:
            raise InvalidRequestError(f"dataset {self.name!r} has {len(self.cases)} cases; at most {MAX_CASES} "
                                      "are allowed, split it")
        seen: set[str] = set()
        for case in self.cases:
            if case.id in seen:
                raise InvalidRequestError(f"dataset {self.name!r}: case id {case.id!r} appears twice; ids must be "
                                          "unique")
            seen.add(case.id)

    @classmethod
    def of(cls, name: str, cases: Iterable[Case | Mapping[str, Any] | str], *, description: str = "",
           evaluators: Sequence[Mapping[str, Any]] = ()) -> Dataset:
        """A dataset from cases, case dicts or plain prompts (ids ``case-1``, ... where missing)."""
        built = [_case(item, index) for index, item in enumerate(cases, 1)]
        return cls(name=name, cases=tuple(built), description=description,
                   evaluators=tuple(_spec(e, f"evaluators[{i}]") for i, e in enumerate(evaluators)))

    @property
    def version(self) -> str:
        """The first 16 hex digits of the SHA-256 of the cases and evaluators (canonical JSON)."""
        body = {"cases": [c.to_dict() for c in self.cases], "evaluators": [dict(e) for e in self.evaluators]}
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def __len__(self) -> int:
        return len(self.cases)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "version": self.version,
                "evaluators": [dict(e) for e in self.evaluators], "cases": [c.to_dict() for c in self.cases]}


def _spec(value: Any, where: str) -> Mapping[str, Any]:
    if isinstance(value, str):
        return {"type": value}
    if not isinstance(value, Mapping) or not isinstance(value.get("type"), str):
        raise InvalidRequestError(f"{where}: an evaluator is a name or an object with a 'type' "
                                  f"(exact, contains, regex, ...), not {value!r}")
    return dict(value)


def _case(item: Case | Mapping[str, Any] | str, index: int) -> Case:
    if isinstance(item, Case):
        return item if item.id else Case(item.input, item.expected, f"case-{index}", item.metadata, item.evaluators)
    if isinstance(item, str):
        return Case(item, id=f"case-{index}")
    if not isinstance(item, Mapping):
        raise InvalidRequestError(f"case {index}: a case is an object with an 'input' (or a prompt string), "
                                  f"not {type(item).__name__}")
    unknown = sorted(set(item) - _CASE_KEYS)
    if unknown:
        raise InvalidRequestError(f"case {index}: unknown field(s) {', '.join(unknown)}; a case has "
                                  f"{', '.join(sorted(_CASE_KEYS))}")
    value = item.get("input")
    if value is None or value == "" or value == []:
        raise InvalidRequestError(f"case {index}: 'input' is required (a prompt or a list of messages)")
    if not isinstance(value, str | list):
        raise InvalidRequestError(f"case {index}: 'input' must be a prompt or a list of messages, "
                                  f"not {type(value).__name__}")
    metadata = item.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise InvalidRequestError(f"case {index}: 'metadata' must be an object")
    evaluators = item.get("evaluators") or []
    if not isinstance(evaluators, list):
        raise InvalidRequestError(f"case {index}: 'evaluators' must be a list")
    case_id = item.get("id")
    return Case(input=value, expected=item.get("expected"),
                id=str(case_id) if case_id not in (None, "") else f"case-{index}",
                metadata=dict(metadata),
                evaluators=tuple(_spec(e, f"case {index}: evaluators[{i}]") for i, e in enumerate(evaluators)))


def dataset_from_document(data: Any, name: str = "dataset") -> Dataset:
    """A dataset from a loaded YAML or JSON document (an object with ``cases``, or a list of cases)."""
    if isinstance(data, list):
        return Dataset.of(name, data)
    if not isinstance(data, Mapping):
        raise InvalidRequestError("a dataset is an object with 'cases' (or a list of cases)")
    unknown = sorted(set(data) - {"name", "description", "evaluators", "cases"})
    if unknown:
        raise InvalidRequestError(f"unknown dataset field(s) {', '.join(unknown)}; a dataset has name, description, "
                                  "evaluators and cases")
    cases = data.get("cases")
    if not isinstance(cases, list):
        raise InvalidRequestError("a dataset needs 'cases': a list of cases")
    evaluators = data.get("evaluators") or []
    if not isinstance(evaluators, list):
        raise InvalidRequestError("a dataset's 'evaluators' must be a list")
    return Dataset.of(str(data.get("name") or name), cases, description=str(data.get("description") or ""),
                      evaluators=evaluators)


def _csv_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_dataset(text: str, fmt: DatasetFormat, *, name: str = "dataset") -> Dataset:
    """A dataset from text in ``fmt`` (``yaml``, ``json``, ``jsonl`` or ``csv``); ``name`` when the text has none."""
    if fmt in ("yaml", "json"):
        try:
            data = yaml.safe_load(text) if fmt == "yaml" else json.loads(text)
        except (yaml.YAMLError, ValueError) as exc:
            raise InvalidRequestError(f"the dataset is not valid {fmt.upper()}: {exc}") from exc
        return dataset_from_document(data, name)
    if fmt == "jsonl":
        cases: list[Any] = []
        for number, line in enumerate(text.splitlines(), 1):
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            try:
                cases.append(json.loads(stripped))
            except ValueError as exc:
                raise InvalidRequestError(f"line {number} of the dataset is not JSON: {exc}") from exc
        return Dataset.of(name, cases)
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or "input" not in reader.fieldnames:
            raise InvalidRequestError("a CSV dataset needs a header row with an 'input' column")
        rows = []
        for row in reader:
            case: dict[str, Any] = {"input": row.get("input") or ""}
            if row.get("id"):
                case["id"] = row["id"]
            if row.get("expected") not in (None, ""):
                case["expected"] = _csv_value(row["expected"])
            extra = {k: v for k, v in row.items() if k not in ("input", "expected", "id") and k is not None}
            if extra:
                case["metadata"] = extra
            rows.append(case)
        return Dataset.of(name, rows)
    raise InvalidRequestError(f"unknown dataset format {fmt!r}; use yaml, json, jsonl or csv")


_SUFFIXES: dict[str, DatasetFormat] = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".jsonl": "jsonl",
                                       ".ndjson": "jsonl", ".csv": "csv"}


def load_dataset(path: str | Path) -> Dataset:
    """Read a dataset file; its format from its suffix, its name (when the file gives none) from its stem."""
    file_path = Path(path)
    fmt = _SUFFIXES.get(file_path.suffix.lower())
    if fmt is None:
        raise InvalidRequestError(f"cannot tell the format of {str(file_path)!r}: name it .yaml, .json, .jsonl or "
                                  ".csv")
    try:
        text = file_path.read_text("utf-8")
    except OSError as exc:
        raise InvalidRequestError(
            f"cannot read dataset file {str(file_path)!r}: {exc.strerror}; check the path") from exc
    return parse_dataset(text, fmt, name=file_path.stem)
