"""The tuned block parser makes exactly the tokens plain markdown-it makes."""

from __future__ import annotations

import gc
import sys
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from runner.markdown import BlockParser
from runner.tasks import parse_tasks
from tests.conftest import SHARED, needs_shared

# Line starts that open, continue or interrupt every kind of block, and text that opens none.
_STARTS = [
    "",
    " ",
    "  ",
    "    ",
    "\t",
    "- ",
    "* ",
    "+ ",
    "1. ",
    "2) ",
    "10. ",
    "> ",
    ">",
    "# ",
    "### ",
    "#x",
    "```",
    "~~~",
    "``` py",
    "<!--",
    "-->",
    "<div>",
    "</div>",
    "<p>",
    "---",
    "***",
    "___",
    "- - -",
    "===",
    "--",
    "| a | b |",
    "|---|---|",
    ":-- | --:",
    "a | b",
    "[x]: /url",
    "9) ",
    "123456789. ",
    "1234567890. ",
    "0) ",
    "-\t",
    "2.\t",
    "-     ",
    "[ ] ",
    "[x] ",
    "[-] ",
    "- [ ] ",
    "  - [x] ",
    "* [ ]* ",
    "text ",
    "_Requirements: 1.1_",
    "\\- ",
    "`code` ",
    "<",
]
_ENDS = ["", "word", "two words", " ", "-", "==", "|", "`", "~", ">"]
_BREAKS = ["\n", "\r\n", "\r"]

lines = st.tuples(st.sampled_from(_STARTS), st.sampled_from(_STARTS), st.sampled_from(_ENDS)).map("".join)
documents = st.lists(st.tuples(lines, st.sampled_from(_BREAKS)), max_size=25).map(
    lambda pairs: "".join(line + brk for line, brk in pairs)
)


def _plain(tables: bool) -> MarkdownIt:
    md = MarkdownIt("commonmark").disable(["inline", "text_join"])
    return md.enable("table") if tables else md


def _tokens(md: MarkdownIt | BlockParser, text: str) -> list[dict]:
    return [tok.as_dict() for tok in md.parse(text)]


TUNED = {tables: BlockParser(tables=tables) for tables in (True, False)}
PLAIN = {tables: _plain(tables) for tables in (True, False)}


@settings(max_examples=400, deadline=None)
@given(documents, st.booleans())
def test_tokens_match_plain_markdown_it(text: str, tables: bool) -> None:
    assert _tokens(TUNED[tables], text) == _tokens(PLAIN[tables], text)


# Where the copied list and paragraph rules decide: an item that may or may not interrupt a
# paragraph, marker widths and the spaces after them, and what a paragraph's text is trimmed of.
_EDGES = [
    "a\n* \n",
    "a\n+\n",
    "a\n1. \n",
    "a\n2. b\n",
    "a\n1) b\n",
    "- a\n+ b\n* c\n",
    "1. a\n1) b\n",
    "7. a\n8. b\n\n9. c\n",
    "-\tb\n\t\tc\n",
    "-      code\n",
    "-\n\n  a\n",
    "- a\n - b\n  - c\n   - d\n    - e\n",
    "\x1ca\x85\n",
    "\u2003a\u00a0\n",
    "> - a\n> b\n",
]


@pytest.mark.parametrize("text", _EDGES)
def test_tokens_match_at_the_edges_of_lists_and_paragraphs(text: str) -> None:
    for tables in (True, False):
        assert _tokens(TUNED[tables], text) == _tokens(PLAIN[tables], text)


@needs_shared
@pytest.mark.parametrize("tables", [True, False])
def test_tokens_match_on_every_corpus_and_seed_file(tables: bool) -> None:
    files = sorted(SHARED.rglob("*.md"))
    assert files
    for path in files:
        text = path.read_text(encoding="utf-8-sig")
        assert _tokens(TUNED[tables], text) == _tokens(PLAIN[tables], text), path


def test_parsing_leaves_garbage_collection_as_it_was() -> None:
    parse_tasks("- [ ] 1. Collect\n")
    assert gc.isenabled()
    gc.disable()
    try:
        parse_tasks("- [ ] 1. Collect, with the collector off\n")
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_parses_in_parallel_threads_turn_the_collector_back_on() -> None:
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible, mid-parse included

    def parse(k: int) -> None:
        for n in range(3000):
            parse_tasks(f"- [ ] task {k}-{n}\n")

    try:
        threads = [threading.Thread(target=parse, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert gc.isenabled()


def test_a_bare_quote_marker_ending_the_text_is_parsed_where_markdown_it_raises() -> None:
    # markdown-it-py 4.3.0 raises IndexError here (its getLines reads past the text's end).
    types = [t["type"] for t in _tokens(TUNED[False], "> - <!--\n>")]
    assert types == [
        "blockquote_open",
        "bullet_list_open",
        "list_item_open",
        "html_block",
        "list_item_close",
        "bullet_list_close",
        "blockquote_close",
    ]
