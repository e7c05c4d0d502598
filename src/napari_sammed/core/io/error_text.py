"""One way to quote an error inside a one-line message (a file we refuse, a load that failed)."""

from __future__ import annotations


def first_line(error: BaseException, limit: int = 200) -> str:
    """The first line of ``error``'s message, at most ``limit`` characters; its type name when the
    message is empty (torch's bare asserts, some decoders' ``KeyError()``)."""
    lines = str(error).strip().splitlines()
    return lines[0][:limit] if lines else type(error).__name__
