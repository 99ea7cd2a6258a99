"""The application layer stays below the faces, and its errors reach API clients unchanged.

The import checks read every module's source (imports inside functions and ``TYPE_CHECKING``
blocks included), so a lazy import of a face from ``service/`` fails here as surely as a top-level one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import agentadapter
from agentadapter.server.errors import SERVICE_STATUS, error_body, from_service
from agentadapter.service.errors import (
    Conflict,
    InvalidInput,
    NotAllowed,
    NotFound,
    PaymentRequired,
    ServiceError,
    Unavailable,
)
from agentadapter.service.executor import ExecutorUnavailable

PACKAGE = Path(agentadapter.__file__).parent


def _imports(package: str) -> dict[str, set[str]]:
    """Every module of ``package`` (a folder of agentadapter) and the absolute module names it imports."""
    found: dict[str, set[str]] = {}
    for path in sorted((PACKAGE / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[str(path.relative_to(PACKAGE))] = names
    return found


def _offending(package: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    return {module: sorted(n for n in names if n.startswith(forbidden) or n in {f.rstrip(".") for f in forbidden})
            for module, names in _imports(package).items()
            if any(n.startswith(forbidden) or n in {f.rstrip(".") for f in forbidden} for n in names)}


def test_the_scan_sees_imports_at_every_depth() -> None:
    # The check below is only as good as this: a face imported inside a function of service/ is seen.
    imported = _imports("service")["service/tenancy.py"]
    assert "agentadapter.service.provider_keys" in imported  # imported inside service_facades()


def test_the_application_layer_imports_no_face_and_no_web_framework() -> None:
    assert _offending("service", ("agentadapter.server.", "agentadapter.worker.", "agentadapter.cli",
                                  "fastapi.", "starlette.")) == {}


def test_the_faces_do_not_import_each_other() -> None:
    assert _offending("server", ("agentadapter.worker.", "agentadapter.cli")) == {}
    assert _offending("worker", ("agentadapter.server.", "agentadapter.cli")) == {}


@pytest.mark.parametrize(("error", "status", "type_"), [
    (InvalidInput("tools[0]: unknown tool 'x'", code="unknown_tool", param="tools[0]"), 422, "invalid_request_error"),
    (NotAllowed("not yours", code="insufficient_permissions"), 403, "permission_error"),
    (NotFound("unknown provider 'x'", code="provider_not_found"), 404, "not_found_error"),
    (Conflict("run r has already ended", code="run_finished", param="run_id"), 409, "conflict_error"),
    (PaymentRequired("no credit left"), 402, "billing_error"),
    (Unavailable("Redis does not answer", code="shared_state_unavailable", retry_after_s=7), 503, "api_error"),
    (ExecutorUnavailable("the broker did not take the run", code="broker_unavailable"), 503, "api_error"),
])
def test_each_domain_error_has_one_status_and_keeps_its_words(error: ServiceError, status: int, type_: str) -> None:
    answer = from_service(error)
    assert (answer.status, answer.type) == (status, type_)
    body = error_body(answer.type, answer.message, code=answer.code, param=answer.param, details=answer.details)
    assert body["error"]["message"] == error.message and body["error"]["code"] == error.code
    assert body["error"]["param"] == error.param
    if isinstance(error, Unavailable):
        assert answer.headers == {"Retry-After": str(error.retry_after_s)}
    else:
        assert answer.headers is None


def test_every_domain_error_class_is_mapped() -> None:
    assert set(SERVICE_STATUS) == set(ServiceError.__subclasses__())
