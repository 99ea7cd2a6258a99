"""Size caps for what tools send back to a model, with the truncation always stated.

A model cannot tell a short answer from a cut one unless it is told, so every cap here appends a
line saying how much was kept. Shared by the built-in tools (shell, http_fetch, web_search, MCP).
"""

from __future__ import annotations

__all__ = ["cap_text", "decode_head", "truncation_note"]


def truncation_note(what: str, shown: int, total: int, unit: str = "characters") -> str:
    return f"[{what} truncated: showing the first {shown} of {total} {unit}]"


def cap_text(text: str, limit: int, *, what: str = "result") -> str:
    """``text`` if it fits in ``limit`` characters, else its head and a note saying it was cut."""
    if limit <= 0 or len(text) <= limit:
        return text
    return f"{text[:limit]}\n{truncation_note(what, limit, len(text))}"


def decode_head(data: bytes, truncated: bool) -> str:
    """UTF-8 text of ``data``; when it is the head of something longer, without a character cut in half."""
    text = data.decode("utf-8", errors="replace")
    return text.rstrip("\ufffd") if truncated else text
