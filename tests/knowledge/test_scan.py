"""Malware scanning through a real clamd: a signature found refuses the upload, an unreachable scanner refuses
every upload (nothing stored unscanned), clean files pass."""

from __future__ import annotations

import pytest

from agentadapter.knowledge import ClamdScanner, MalwareFound, ScannerUnavailable
from knowledge.servers import MALWARE, SIGNATURE, ClamdServer
from server.conftest import AppFactory
from services import free_port, stop_group


async def test_the_scanner_finds_the_signature_and_reports_an_absent_daemon(clamd_server: ClamdServer) -> None:
    scanner = ClamdScanner(clamd_server.address, timeout_s=20)
    assert await scanner.ping()
    await scanner.scan(b"a clean file" * 10_000)  # several INSTREAM chunks
    with pytest.raises(MalwareFound) as found:
        await scanner.scan(b"prefix " + MALWARE + b" suffix")
    assert found.value.signature.startswith(SIGNATURE)
    nobody = ClamdScanner(f"tcp://127.0.0.1:{free_port()}", timeout_s=5)
    assert not await nobody.ping()
    with pytest.raises(ScannerUnavailable, match="cannot be reached"):
        await nobody.scan(b"anything")


async def test_uploads_are_scanned_and_refused_while_the_scanner_is_down(
        clamd_server: ClamdServer, make_api: AppFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTADAPTER_CLAMD_ADDRESS", clamd_server.address)
    async with make_api() as api:
        clean = await api.request("POST", "/v1/files", files={"file": ("notes.txt", b"nothing to see")})
        assert clean.status_code == 201, clean.text
        infected = await api.request("POST", "/v1/files", files={"file": ("x.txt", b"hi " + MALWARE)})
        assert infected.status_code == 422
        error = infected.json()["error"]
        assert error["code"] == "malware_found" and error["details"]["signature"].startswith(SIGNATURE)
        listed = (await api.request("GET", "/v1/files")).json()["data"]
        assert [f["filename"] for f in listed] == ["notes.txt"]
        audit = (await api.request("GET", "/v1/audit-logs", params={"action": "file.refuse"})).json()["data"]
        assert len(audit) == 1

        stop_group(clamd_server.process)
        down = await api.request("POST", "/v1/files", files={"file": ("later.txt", b"fine, but unscanned")})
        assert down.status_code == 503 and down.json()["error"]["code"] == "scanner_unavailable"
        assert "retry-after" in down.headers
        assert len((await api.request("GET", "/v1/files")).json()["data"]) == 1
