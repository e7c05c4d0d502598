"""How errors become one line: quoted inside a message (a file we refuse, a load that failed) or
shown whole (the CLI's error line, a batch summary row)."""

from __future__ import annotations


def first_line(error: BaseException, limit: int = 200) -> str:
    """The first line of ``error``'s message, at most ``limit`` characters; its type name when the
    message is empty (torch's bare asserts, some decoders' ``KeyError()``)."""
    lines = str(error).strip().splitlines()
    return lines[0][:limit] if lines else type(error).__name__


def squeezed(text: str, limit: int) -> str:
    """A whole message on one line (whitespace runs become one space), cut at ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + " ..."
