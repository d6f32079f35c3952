"""CommonMark block structure with markdown-it-py, tuned for large files.

A tasks.md of 5,000 tasks is some 80,000 block tokens. At that size markdown-it's own Python
overhead is most of the parse, and the parser here cuts it where the result cannot change:
- markdown-it tries its block rules in order at every block start, and again at every paragraph
  line to see whether something interrupts the paragraph. Most rules give up on the line's first
  character (a fence needs a backtick or a tilde, a heading a `#`), yet each try is a Python call.
  Here only the rules that can start with that character are asked, in the same order.
- Some rules can be told cheaply that they will not match: a setext heading and a table need a
  next line, and a thematic break has nothing on its line but its marker, spaces and tabs. Rules
  whose construct needs characters the text lacks (a table's `|`) are not asked at all.
- Every rule logs each try at DEBUG level, a call or two even with logging off; the rules here
  are copies whose logger does nothing. The list rule reads an option per item through a
  Python-level Mapping.get; here it is a dict's.
- A token is a dataclass whose `__init__` fills thirteen fields through defaults, factories and a
  `__post_init__`; here it is made empty and filled in place.
- The block loop (`tokenize`) and the cutting of a paragraph's lines (`getLines`) are written
  with the per-line checks inline, the latter for lines without tabs in their indentation.

The tokens are the ones plain markdown-it makes (tests compare them on generated documents and on
real ones, with markdown-it-py 3 and 4), in less than half the time.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from types import FunctionType, MappingProxyType
from typing import Literal

from markdown_it import MarkdownIt
from markdown_it.ruler import Rule
from markdown_it.rules_block import StateBlock
from markdown_it.rules_core import normalize
from markdown_it.rules_core.state_core import StateCore
from markdown_it.token import Token
from markdown_it.utils import OptionsDict

BlockRule = Callable[[StateBlock, int, int, bool], bool]

# The characters a rule's construct can start with; every other rule may start with anything.
_FIRST_CHARS = {
    "fence": "`~",
    "blockquote": ">",
    "hr": "*-_",
    "list": "*-+0123456789",
    "reference": "[",
    "html_block": "<",
    "heading": "#",
}


# Rules that cannot match in a text without these characters: every table's header row has a "|",
# and a link reference definition's label is followed by a colon.
_NEEDS = {"table": "|", "reference": "]:"}


class BlockParser:
    """A CommonMark parser (optionally with GFM tables) that makes block tokens with line maps.

    Inline content is not parsed: an `inline` token's `content` is its text. A token's `attrs` and
    `meta` are one shared read-only empty mapping unless a rule gave it its own: copy them before
    changing them (or pickling, or `json.dumps` of `as_dict()`).
    """

    def __init__(self, *, tables: bool) -> None:
        self._rules = ("table",) if tables else ()
        self._parsers: dict[frozenset[str], MarkdownIt] = {}

    def parse(self, text: str) -> list[Token]:
        md = self._parser(frozenset(name for name, needed in _NEEDS.items() if needed not in text))
        core = StateCore(text, md, {})
        if "\r" in text or "\0" in text:
            normalize(core)  # CR and CRLF to "\n", NUL to U+FFFD, as MarkdownIt.parse does first
        tokens: list[Token] = []
        if core.src:
            state = _State(core.src, md, core.env, tokens)
            md.block.tokenize(state, state.line, state.lineMax)
        return tokens

    def _parser(self, unused: frozenset[str]) -> MarkdownIt:
        md = self._parsers.get(unused)
        if md is None:
            md = self._parsers[unused] = _markdown_it(self._rules, unused)
        return md


def _markdown_it(enabled: tuple[str, ...], disabled: frozenset[str]) -> MarkdownIt:
    md = MarkdownIt("commonmark").enable(list(enabled)).disable(list(disabled))
    ruler = md.block.ruler
    rules = [rule for rule in ruler.__rules__ if rule.enabled]
    for rule in rules:
        rule.fn = _unlogged(rule.fn)
    chains = {""} | {name for rule in rules for name in rule.alt}
    tables = {chain: _by_first_char([r for r in rules if not chain or chain in r.alt]) for chain in chains}
    # Callers only iterate a chain until a rule matches, so one rule standing for the chain will do.
    dispatch = defaultdict(list, {chain: [_dispatcher(*table)] for chain, table in tables.items()})
    ruler.getRules = dispatch.__getitem__  # type: ignore[method-assign]
    md.block.tokenize = _tokenizer(*tables[""])  # type: ignore[method-assign]
    md.options = _Options(md.options)
    return md


RuleTable = tuple[dict[str, tuple[BlockRule, ...]], tuple[BlockRule, ...]]


def _by_first_char(rules: list[Rule[BlockRule]]) -> RuleTable:
    """The rules to try at a line, by its first character, and at a line with another one."""
    fns = {r.name: _GUARDS[r.name](r.fn) if r.name in _GUARDS else r.fn for r in rules}
    anywhere = tuple(fns[r.name] for r in rules if r.name not in _FIRST_CHARS)
    chars = {c for r in rules for c in _FIRST_CHARS.get(r.name, "")}
    by_char = {c: tuple(fns[r.name] for r in rules if c in _FIRST_CHARS.get(r.name, c)) for c in chars}
    return by_char, anywhere


def _dispatcher(by_char: dict[str, tuple[BlockRule, ...]], anywhere: tuple[BlockRule, ...]) -> BlockRule:
    def rule(state: StateBlock, line: int, end: int, silent: bool) -> bool:
        pos = state.bMarks[line] + state.tShift[line]
        tried = by_char.get(state.src[pos], anywhere) if pos < state.eMarks[line] else anywhere
        for fn in tried:  # noqa: SIM110 - any() over a generator is 10 % slower on this hot path
            if fn(state, line, end, silent):
                return True
        return False

    return rule


def _tokenizer(
    by_char: dict[str, tuple[BlockRule, ...]], anywhere: tuple[BlockRule, ...]
) -> Callable[[StateBlock, int, int], None]:
    """markdown-it's ParserBlock.tokenize, with the dispatch and the line checks written inline."""

    def tokenize(state: StateBlock, startLine: int, endLine: int) -> None:
        src, bMarks, eMarks = state.src, state.bMarks, state.eMarks
        tShift, sCount = state.tShift, state.sCount
        maxNesting = state.md.options.maxNesting
        lineMax = state.lineMax
        line = startLine
        hasEmptyLines = False
        while line < endLine:
            while line < lineMax and bMarks[line] + tShift[line] >= eMarks[line]:
                line += 1  # skip empty lines
            state.line = line
            if line >= endLine:
                break
            if sCount[line] < state.blkIndent:
                break  # the end of a nested block (a list item's, a quote's)
            if state.level >= maxNesting:
                state.line = endLine
                break
            for rule in by_char.get(src[bMarks[line] + tShift[line]], anywhere):
                if rule(state, line, endLine, False):
                    break
            else:
                raise RuntimeError("none of the block rules matched")
            if state.line <= line:
                raise RuntimeError("block rule didn't increment state.line")
            state.tight = not hasEmptyLines
            line = state.line
            # A paragraph might "eat" one newline after it in nested lists.
            if line - 1 < endLine and bMarks[line - 1] + tShift[line - 1] >= eMarks[line - 1]:
                hasEmptyLines = True
            if line < endLine and bMarks[line] + tShift[line] >= eMarks[line]:
                hasEmptyLines = True
                line += 1
                state.line = line

    return tokenize


def _after_a_line(fn: BlockRule) -> BlockRule:
    """`fn`, asked only where a non-blank line follows (a setext underline, a delimiter row)."""

    def rule(state: StateBlock, line: int, end: int, silent: bool) -> bool:
        following = line + 1
        if following >= end or state.bMarks[following] + state.tShift[following] >= state.eMarks[following]:
            return False
        return fn(state, line, end, silent)

    return rule


_UNDERLINE = re.compile(r"(?:=+|-+)[ \t]*$")


def _before_an_underline(fn: BlockRule) -> BlockRule:
    """`fn`, asked only where a line of `=` or `-` follows before the next blank line: the setext
    heading rule looks no further, and its search is costly (it asks every rule that can end a
    paragraph at each line)."""

    def rule(state: StateBlock, line: int, end: int, silent: bool) -> bool:
        src, bMarks, eMarks, tShift = state.src, state.bMarks, state.eMarks, state.tShift
        following = line + 1
        while following < end:
            pos, last = bMarks[following] + tShift[following], eMarks[following]
            if pos >= last:
                return False  # a blank line: the paragraph ends without an underline
            if _UNDERLINE.match(src, pos, last):
                return fn(state, line, end, silent)
            following += 1
        return False

    return rule


def _on_marker_lines(fn: BlockRule) -> BlockRule:
    """`fn`, asked only where a line has nothing but its first character, spaces and tabs."""

    def rule(state: StateBlock, line: int, end: int, silent: bool) -> bool:
        pos = state.bMarks[line] + state.tShift[line]
        if state.src[pos : state.eMarks[line]].strip(state.src[pos] + " \t"):
            return False
        return fn(state, line, end, silent)

    return rule


# Rules that can be told cheaply they will not match at a line, and how.
_GUARDS: dict[str, Callable[[BlockRule], BlockRule]] = {
    "lheading": _before_an_underline,
    "table": _after_a_line,
    "hr": _on_marker_lines,  # a thematic break
}


class _Options(OptionsDict):
    """markdown-it's options, with `get` at a dict's speed: the list rule asks for one per item."""

    def __init__(self, options: OptionsDict) -> None:
        super().__init__(options)  # type: ignore[arg-type]
        self.get = self._options.get  # type: ignore[method-assign, assignment]


class _Silent:
    def debug(self, *args: object) -> None:
        pass


def _unlogged(fn: BlockRule) -> BlockRule:
    """A copy of a markdown-it rule whose module logger, if it has one, does nothing."""
    if not isinstance(fn, FunctionType) or "LOGGER" not in fn.__globals__:
        return fn
    scope = {**fn.__globals__, "LOGGER": _Silent()}
    return FunctionType(fn.__code__, scope, fn.__name__, fn.__defaults__, fn.__closure__)


# A rule that gives a token attributes or meta data assigns a new dict (the list and table rules
# do); the two that add to the dict they find (GitHub alerts, task list classes) run only with
# options these parsers do not set. Read-only, so that any other would fail, not change all tokens.
_NONE: dict = MappingProxyType({})  # type: ignore[assignment]
_new_token = Token.__new__  # a Token with its fields unset, filled by _State.push


class _State(StateBlock):
    def getLines(self, begin: int, end: int, indent: int, keepLastLF: bool) -> str:
        """markdown-it's, faster where no line has a tab in its first `indent` characters.

        There each of those characters, up to the line's text (`tShift`), is one column of
        indentation, so a line's text starts `min(indent, tShift)` characters in.
        """
        src, bMarks, eMarks, tShift = self.src, self.bMarks, self.eMarks, self.tShift
        parts = []
        for line in range(begin, end):
            start = bMarks[line]
            if "\t" in src[start : start + indent]:
                return super().getLines(begin, end, indent, keepLastLF)
            last = eMarks[line] + 1 if line + 1 < end or keepLastLF else eMarks[line]
            parts.append(src[start + min(indent, tShift[line]) : last])
        return "".join(parts)

    def push(self, ttype: str, tag: str, nesting: Literal[-1, 0, 1]) -> Token:
        if nesting < 0:
            self.level -= 1  # a closing token stands at its opening token's level
        token = _new_token(Token)
        token.type = ttype
        token.tag = tag
        token.nesting = nesting
        token.attrs = _NONE
        token.map = None
        token.level = self.level
        token.children = None
        token.content = ""
        token.markup = ""
        token.info = ""
        token.meta = _NONE
        token.block = True
        token.hidden = False
        if nesting > 0:
            self.level += 1
        self.tokens.append(token)
        return token
