"""Malware scanning of uploads through ClamAV's daemon, ``clamd``, by its INSTREAM command.

:class:`ClamdScanner` opens a connection per scan (a Unix socket path, ``unix:///path`` or
``tcp://host:port``), sends ``zINSTREAM``, the bytes in length-prefixed chunks and a zero-length
end, and reads one answer: ``stream: OK``, ``stream: <signature> FOUND`` (:class:`MalwareFound`), or an
error. Every failure to get an answer - no daemon, a refused connection, a timeout, a size limit
(clamd's ``StreamMaxLength``), an unexpected reply - is :class:`ScannerUnavailable`: with a scanner
configured, an upload that could not be scanned is refused, never stored unscanned.
"""

from __future__ import annotations

import asyncio
import struct
from urllib.parse import urlsplit

from agentadapter.knowledge.errors import MalwareFound, ScannerUnavailable

__all__ = ["ClamdScanner"]

_CHUNK = 64 * 1024


class ClamdScanner:
    """Scans bytes with a clamd at ``address``; ``timeout_s`` bounds one whole scan."""

    def __init__(self, address: str, *, timeout_s: float = 30.0) -> None:
        self.address = address
        self.timeout_s = timeout_s
        parts = urlsplit(address)
        if parts.scheme == "tcp":
            if not parts.hostname or not parts.port:
                raise ValueError(f"clamd address {address!r}: a tcp:// address needs a host and a port")
            self._tcp: tuple[str, int] | None = (parts.hostname, parts.port)
            self._path = ""
        elif parts.scheme in ("unix", ""):
            self._tcp = None
            self._path = parts.path if parts.scheme == "unix" else address
            if not self._path:
                raise ValueError(f"clamd address {address!r}: give a socket path, unix:///path or tcp://host:port")
        else:
            raise ValueError(f"clamd address {address!r}: give a socket path, unix:///path or tcp://host:port")

    def __repr__(self) -> str:
        return f"ClamdScanner({self.address!r})"

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._tcp is not None:
            return await asyncio.open_connection(*self._tcp)
        return await asyncio.open_unix_connection(self._path)

    async def _exchange(self, data: bytes) -> str:
        reader, writer = await self._open()
        try:
            writer.write(b"zINSTREAM\0")
            for offset in range(0, len(data), _CHUNK):
                piece = data[offset:offset + _CHUNK]
                writer.write(struct.pack("!L", len(piece)) + piece)
                await writer.drain()
            writer.write(struct.pack("!L", 0))
            await writer.drain()
            reply = await reader.readuntil(b"\0")
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass  # the daemon may close first after its answer
        return reply.rstrip(b"\0").decode("utf-8", errors="replace").strip()

    async def ping(self) -> bool:
        """Whether the daemon answers ``PING``."""
        try:
            async with asyncio.timeout(self.timeout_s):
                reader, writer = await self._open()
                try:
                    writer.write(b"zPING\0")
                    await writer.drain()
                    return (await reader.readuntil(b"\0")).rstrip(b"\0") == b"PONG"
                finally:
                    writer.close()
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return False

    async def scan(self, data: bytes) -> None:
        """Return when clean; raise :class:`MalwareFound` or :class:`ScannerUnavailable`."""
        try:
            async with asyncio.timeout(self.timeout_s):
                reply = await self._exchange(data)
        except TimeoutError as exc:
            raise ScannerUnavailable(f"the malware scanner at {self.address} did not answer within "
                                     f"{self.timeout_s:g} s; retry later") from exc
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            raise ScannerUnavailable(f"the malware scanner at {self.address} cannot be reached "
                                     f"({type(exc).__name__}: {exc}); uploads wait until it answers") from exc
        if reply.endswith("OK") and "FOUND" not in reply:
            return
        if reply.endswith("FOUND"):
            signature = reply.removeprefix("stream:").removesuffix("FOUND").strip()
            raise MalwareFound(f"the malware scanner found {signature} in the file; it was not stored",
                               signature=signature)
        raise ScannerUnavailable(f"the malware scanner at {self.address} could not scan the file: {reply}")
