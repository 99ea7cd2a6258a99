"""Knowledge: what files say, cut to be found - content type detection, text extraction, chunking,
malware scanning, blob storage and the ranking pieces of hybrid search.

This package knows nothing of tenants, databases or agents: the application layer
(:mod:`agentadapter.service.files`, :mod:`agentadapter.service.archives`) stores files and chunks and
runs searches with these parts, and the ``file_search`` tool (:mod:`agentadapter.agents.tools.file_search`)
wraps a search it is handed. See ``docs/knowledge.md``.
"""

from __future__ import annotations

import importlib.util

from agentadapter.knowledge.chunking import Chunk, ChunkingOptions, chunk_document, estimate_tokens
from agentadapter.knowledge.detect import MEDIA_TYPES, detect_media_type
from agentadapter.knowledge.errors import (
    ExtractionError,
    KnowledgeError,
    MalwareFound,
    ScannerUnavailable,
    StorageError,
)
from agentadapter.knowledge.extract import Document, Extractor, Extractors, Section, default_extractors
from agentadapter.knowledge.scan import ClamdScanner
from agentadapter.knowledge.search import VectorMatrix, reciprocal_rank_fusion
from agentadapter.knowledge.storage import BlobStorage, LocalStorage, storage_from_url

__all__ = [
    "MEDIA_TYPES",
    "BlobStorage",
    "Chunk",
    "ChunkingOptions",
    "ClamdScanner",
    "Document",
    "ExtractionError",
    "Extractor",
    "Extractors",
    "KnowledgeError",
    "LocalStorage",
    "MalwareFound",
    "ScannerUnavailable",
    "Section",
    "StorageError",
    "VectorMatrix",
    "chunk_document",
    "default_extractors",
    "detect_media_type",
    "estimate_tokens",
    "missing_dependencies",
    "reciprocal_rank_fusion",
    "storage_from_url",
]


_DEPENDENCIES = {"filetype": "filetype", "pypdf": "pypdf", "docx": "python-docx", "selectolax": "selectolax",
                 "numpy": "numpy"}


def missing_dependencies() -> list[str]:
    """The packages of the ``knowledge`` extra that are not installed (their distribution names)."""
    return [package for module, package in _DEPENDENCIES.items() if importlib.util.find_spec(module) is None]
