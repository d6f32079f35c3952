"""Text files as people write them: UTF-8, with LF, CRLF or lone CR line endings.

Lines end where CommonMark ends them (str.splitlines would also split on form feeds, U+2028 and
the like), so that line numbers agree with markdown-it's line maps.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from runner.errors import UserError

LINE_BREAK = re.compile(r"\r\n|\r|\n")
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")


def lines_with_endings(text: str) -> list[str]:
    """`text`'s lines, each with its own line ending (the last one may have none)."""
    return _LINE.findall(text)


def ending(line: str) -> str:
    return line[len(line.rstrip("\r\n")) :]


def common_ending(lines: list[str]) -> str:
    """The most common line ending (LF for text without one), for the lines a program adds."""
    counts = Counter(ending(line) for line in lines)
    return max(("\n", "\r\n", "\r"), key=lambda end: counts[end])


def decode_utf8(data: bytes, path: str | Path) -> str:
    """The text of a file (a BOM kept); bytes that are not UTF-8 are a UserError saying where."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        before = data[: e.start].decode("utf-8")  # all good up to the bad byte
        breaks = list(LINE_BREAK.finditer(before))
        raise UserError(
            f"not UTF-8 text (byte 0x{data[e.start]:02x}); save the file as UTF-8",
            path=path,
            line=len(breaks) + 1,
            column=len(before) - (breaks[-1].end() if breaks else 0) + 1,
        ) from None
