"""The knowledge layer's errors (drawn in :mod:`agentadapter.errors`).

Each carries a stable ``code`` so that the application layer can say to a caller which file failed and
why (an encrypted PDF, a scanned image without text, an unknown type) rather than store an empty document.
"""

from __future__ import annotations

from agentadapter.errors import AgentAdapterError

__all__ = ["ExtractionError", "KnowledgeError", "MalwareFound", "ScannerUnavailable", "StorageError"]


class KnowledgeError(AgentAdapterError):
    """Files, extraction, scanning or storage failed; ``code`` says how."""

    default_code = "knowledge_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code


class ExtractionError(KnowledgeError):
    """A file's text cannot be read: ``encrypted``, ``no_text`` (a scan without OCR), ``unsupported_type``,
    ``corrupt``, ``too_large``."""

    default_code = "extraction_failed"


class MalwareFound(KnowledgeError):
    """The malware scanner found a signature in an upload; ``signature`` names it."""

    default_code = "malware_found"

    def __init__(self, message: str, *, signature: str) -> None:
        super().__init__(message)
        self.signature = signature


class ScannerUnavailable(KnowledgeError):
    """A configured malware scanner cannot be reached or failed: uploads wait until it answers."""

    default_code = "scanner_unavailable"
    retryable = True


class StorageError(KnowledgeError):
    """The file storage could not write, read or delete a blob."""

    default_code = "storage_error"
