"""CommonMark block structure with markdown-it-py, tuned for large files.

A tasks.md of 5,000 tasks is some 80,000 block tokens. At that size markdown-it's own Python
overhead is most of the parse, and the parser here cuts it where the result cannot change:
- markdown-it tries its block rules in order at every block start, and again at every paragraph
  line to see whether something interrupts the paragraph. Most rules give up on the line's first
  character (a fence needs a backtick or a tilde, a heading a `#`), yet each try is a Python call.
  Here only the rules that can start with that character are asked, in the same order.
- Some rules can be told cheaply that they will not match: a table needs a `|` in its header row
  and a next line, and a thematic break has nothing on its line but its marker, spaces and tabs.
  At a line indented as code only the code rule can match. Rules whose construct needs characters
  the text lacks (a table's `|`) are not asked at all.
- The setext heading rule and the paragraph rule scan the same lines, one after the other; here
  they are one rule that scans them once.
- Every rule logs each try at DEBUG level, a call or two even with logging off; the rules here
  are copies whose logger does nothing.
- A token is a dataclass whose `__init__` fills thirteen fields through defaults, factories and a
  `__post_init__`; here it is made empty and filled in place.
- The block loop (`tokenize`), the list and paragraph rules (which run once per list item) and
  the cutting of a paragraph's lines (`getLines`, for lines without tabs in their indentation)
  are copies with their helper calls and per-line checks written inline.

The tokens are the ones plain markdown-it makes (tests compare them on generated documents and on
real ones, with markdown-it-py 3 and 4), in less than half the time. Where plain markdown-it raises
IndexError (a quote whose last line is a bare `>` without a newline, after a table or an HTML block
in it: its `getLines` reads past the text), this parser returns tokens.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from types import FunctionType, MappingProxyType
from typing import Literal

from markdown_it import MarkdownIt
from markdown_it.ruler import Rule
from markdown_it.rules_block import StateBlock, lheading, paragraph
from markdown_it.rules_core import normalize
from markdown_it.rules_core.state_core import StateCore
from markdown_it.token import Token

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
        rule.fn = _PORTS.get(rule.name) or _unlogged(rule.fn)
    # At a line indented four columns past the block's indent every rule but `code` gives up (each
    # checks that first), and `code` takes it; `code` ends no other block, so it is in no chain.
    code = next(rule.fn for rule in rules if rule.name == "code")
    # The paragraph rule here does the setext heading rule's work too (it comes just before).
    names = [rule.name for rule in rules]
    assert names.index("lheading") + 1 == names.index("paragraph"), names
    rules = [rule for rule in rules if rule.name not in ("code", "lheading")]
    chains = {""} | {name for rule in rules for name in rule.alt}
    tables = {chain: _by_first_char([r for r in rules if not chain or chain in r.alt]) for chain in chains}
    # Callers only iterate a chain until a rule matches, so one rule standing for the chain will do.
    dispatch = defaultdict(list, {chain: [_dispatcher(*table)] for chain, table in tables.items()})
    ruler.getRules = dispatch.__getitem__  # type: ignore[method-assign]
    md.block.tokenize = _tokenizer(code, *tables[""])  # type: ignore[method-assign]
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
        if state.sCount[line] - state.blkIndent >= 4:
            return False  # indented code
        pos = state.bMarks[line] + state.tShift[line]
        tried = by_char.get(state.src[pos], anywhere) if pos < state.eMarks[line] else anywhere
        for fn in tried:  # noqa: SIM110 - any() over a generator is 10 % slower on this hot path
            if fn(state, line, end, silent):
                return True
        return False

    return rule


def _tokenizer(
    code: BlockRule, by_char: dict[str, tuple[BlockRule, ...]], anywhere: tuple[BlockRule, ...]
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
            if sCount[line] - state.blkIndent >= 4:
                code(state, line, endLine, False)
            else:
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


def _on_header_rows(fn: BlockRule) -> BlockRule:
    """`fn` (the table rule), asked only at a line with a `|` that a non-blank line follows (its
    delimiter row); the rule gives up on a header row without a `|`, whatever comes next."""

    def rule(state: StateBlock, line: int, end: int, silent: bool) -> bool:
        following = line + 1
        if following >= end or state.bMarks[following] + state.tShift[following] >= state.eMarks[following]:
            return False
        if state.src.find("|", state.bMarks[line] + state.tShift[line], state.eMarks[line]) < 0:
            return False
        return fn(state, line, end, silent)

    return rule


_MARKER_LINE = re.compile(r"(?:-[- \t]*|\*[* \t]*|_[_ \t]*)\Z")


def _on_marker_lines(fn: BlockRule) -> BlockRule:
    """`fn`, asked only where a line has nothing but its first character (`-`, `*` or `_`),
    spaces and tabs."""

    def rule(state: StateBlock, line: int, end: int, silent: bool) -> bool:
        pos = state.bMarks[line] + state.tShift[line]
        if not _MARKER_LINE.match(state.src, pos, state.eMarks[line]):
            return False
        return fn(state, line, end, silent)

    return rule


# Rules that can be told cheaply they will not match at a line, and how.
_GUARDS: dict[str, Callable[[BlockRule], BlockRule]] = {
    "table": _on_header_rows,
    "hr": _on_marker_lines,  # a thematic break
}


class _Silent:
    def debug(self, *args: object) -> None:
        pass


def _unlogged(fn: BlockRule) -> BlockRule:
    """A copy of a markdown-it rule whose module logger, if it has one, does nothing."""
    if not isinstance(fn, FunctionType) or "LOGGER" not in fn.__globals__:
        return fn
    scope = {**fn.__globals__, "LOGGER": _Silent()}
    return FunctionType(fn.__code__, scope, fn.__name__, fn.__defaults__, fn.__closure__)


# A list marker, then a space, a tab or the line's end.
_ORDERED_MARKER = re.compile(r"[0-9]{1,9}[.)](?![^ \t])")
_BULLET_MARKER = re.compile(r"[-*+](?![^ \t])")
_SPACES = re.compile(r"[ \t]*")
try:  # markdown-it-py 4 trims paragraphs by CommonMark's whitespace, 3 by Python's
    from markdown_it.common.utils import MD_TRIM_CHARS as _TRIM
except ImportError:
    _TRIM = None  # type: ignore[assignment]


def _list(state: StateBlock, startLine: int, endLine: int, silent: bool) -> bool:
    """markdown-it's list rule, without GFM task lists (an option these parsers do not set), with
    its helpers and its reads of the state inline: it runs once per list item and per line that
    might end a paragraph."""
    src, bMarks, eMarks, tShift, sCount = state.src, state.bMarks, state.eMarks, state.tShift, state.sCount
    count = sCount[startLine]
    if count - state.blkIndent >= 4:
        return False  # indented code
    if state.listIndent >= 0 and count - state.listIndent >= 4 and count < state.blkIndent:
        return False  # a paragraph's continuation, in items indented like stairs
    terminating = silent and state.parentType == "paragraph" and count >= state.blkIndent
    start = bMarks[startLine] + tShift[startLine]
    maximum = eMarks[startLine]
    # A bullet marker is one of three characters, which no ordered marker starts with.
    ordered = src[start : start + 1] not in ("*", "-", "+")
    marker = (_ORDERED_MARKER if ordered else _BULLET_MARKER).match(src, start, maximum)
    if marker is None:
        return False
    if ordered:
        markerValue = int(src[start : marker.end() - 1])
        if terminating and markerValue != 1:
            return False  # a list that interrupts a paragraph starts at 1
    posAfterMarker = marker.end()
    if terminating and _SPACES.match(src, posAfterMarker).end() >= maximum:
        return False  # an empty item does not interrupt a paragraph
    markerChar = src[posAfterMarker - 1]
    if silent:
        return True

    tokens = state.tokens
    listTokIdx = len(tokens)
    if ordered:
        token = state.push("ordered_list_open", "ol", 1)
        if markerValue != 1:
            token.attrs = {"start": markerValue}
    else:
        token = state.push("bullet_list_open", "ul", 1)
    token.map = listLines = [startLine, 0]
    token.markup = markerChar

    nextLine = startLine
    prevEmptyEnd = False
    tight = True
    (terminator,) = state.md.block.ruler.getRules("list")
    tokenize = state.md.block.tokenize
    bsCount = state.bsCount
    oldParentType = state.parentType
    state.parentType = "list"
    while nextLine < endLine:
        pos = posAfterMarker
        maximum = eMarks[nextLine]
        initial = offset = sCount[nextLine] + posAfterMarker - (bMarks[startLine] + tShift[startLine])
        while pos < maximum:
            ch = src[pos]
            if ch == "\t":
                offset += 4 - (offset + bsCount[nextLine]) % 4
            elif ch == " ":
                offset += 1
            else:
                break
            pos += 1
        contentStart = pos
        indentAfterMarker = 1 if contentStart >= maximum else offset - initial
        if indentAfterMarker > 4:
            indentAfterMarker = 1  # the rest is an indented code block
        indent = initial + indentAfterMarker

        token = state.push("list_item_open", "li", 1)
        token.markup = markerChar
        token.map = itemLines = [startLine, 0]
        if ordered:
            token.info = src[start : posAfterMarker - 1]

        oldTight = state.tight
        oldTShift = tShift[startLine]
        oldSCount = sCount[startLine]
        oldListIndent = state.listIndent
        state.listIndent = state.blkIndent
        state.blkIndent = indent
        state.tight = True
        tShift[startLine] = contentStart - bMarks[startLine]
        sCount[startLine] = offset
        following = startLine + 1
        if contentStart >= maximum and bMarks[following] + tShift[following] >= eMarks[following]:
            state.line = min(state.line + 2, endLine)  # an empty item, then a blank line: the list ends
        else:
            tokenize(state, startLine, endLine)
        if not state.tight or prevEmptyEnd:
            tight = False
        # An item that ends with a blank line makes the list loose, unless it is the last one.
        last = state.line - 1
        prevEmptyEnd = state.line - startLine > 1 and bMarks[last] + tShift[last] >= eMarks[last]
        state.blkIndent = state.listIndent
        state.listIndent = oldListIndent
        tShift[startLine] = oldTShift
        sCount[startLine] = oldSCount
        state.tight = oldTight

        token = state.push("list_item_close", "li", -1)
        token.markup = markerChar
        nextLine = startLine = state.line
        itemLines[1] = nextLine
        if nextLine >= endLine:
            break
        if sCount[nextLine] < state.blkIndent or sCount[nextLine] - state.blkIndent >= 4:
            break
        if terminator(state, nextLine, endLine, True):
            break
        # The list goes on with an item of its own kind and marker.
        start = bMarks[nextLine] + tShift[nextLine]
        maximum = eMarks[nextLine]
        marker = (_ORDERED_MARKER if ordered else _BULLET_MARKER).match(src, start, maximum)
        if marker is None:
            break
        posAfterMarker = marker.end()
        if markerChar != src[posAfterMarker - 1]:
            break

    if ordered:
        token = state.push("ordered_list_close", "ol", -1)
    else:
        token = state.push("bullet_list_close", "ul", -1)
    token.markup = markerChar
    listLines[1] = nextLine
    state.line = nextLine
    state.parentType = oldParentType
    if tight:  # the items' paragraphs are hidden (markTightParagraphs)
        level = state.level + 2
        i = listTokIdx + 2
        length = len(tokens) - 2
        while i < length:
            if tokens[i].level == level and tokens[i].type == "paragraph_open":
                tokens[i + 2].hidden = True
                tokens[i].hidden = True
                i += 2
            i += 1
    return True


_UNDERLINE = re.compile(r"(?:=+|-+)[ \t]*\Z")
_LHEADING, _PARAGRAPH = _unlogged(lheading), _unlogged(paragraph)


def _paragraph(state: StateBlock, startLine: int, endLine: int, silent: bool) -> bool:
    """markdown-it's setext heading rule (lheading) and paragraph rule, in one, with their reads of
    the state inline.

    markdown-it asks lheading first: it scans the lines that follow for an underline, up to a blank
    line or one that ends a paragraph. Failing that, the paragraph rule scans the same lines again,
    which it does at every paragraph of a list. Here they are scanned once. The two rules bound
    their scans differently (by `endLine` and by `lineMax`) only in a state markdown-it's own rules
    never make; there they run as they are.
    """
    if endLine != state.lineMax:
        return _LHEADING(state, startLine, endLine, silent) or _PARAGRAPH(state, startLine, endLine, silent)
    src, bMarks, eMarks, tShift, sCount = state.src, state.bMarks, state.eMarks, state.tShift, state.sCount
    (terminator,) = state.md.block.ruler.getRules("paragraph")
    oldParentType = state.parentType
    state.parentType = "paragraph"
    underline = None
    nextLine = startLine + 1
    while nextLine < endLine:
        if bMarks[nextLine] + tShift[nextLine] >= eMarks[nextLine]:
            break  # a blank line
        count = sCount[nextLine]
        if count - state.blkIndent > 3:
            nextLine += 1  # an indented line continues a paragraph (lazily)
            continue
        if count >= state.blkIndent:
            underline = _UNDERLINE.match(src, bMarks[nextLine] + tShift[nextLine], eMarks[nextLine])
            if underline:
                break
        if count < 0:
            nextLine += 1  # a quote's line, checked by the quote's rule
            continue
        if terminator(state, nextLine, endLine, True):
            break
        nextLine += 1
    content = state.getLines(startLine, nextLine, state.blkIndent, False).strip(_TRIM)
    if underline:
        marker = src[underline.start()]
        tag = "h1" if marker == "=" else "h2"
        state.line = nextLine + 1
        token = state.push("heading_open", tag, 1)
        token.markup = marker
        token.map = [startLine, state.line]
        token = state.push("inline", "", 0)
        token.content = content
        token.map = [startLine, nextLine]
        token.children = []
        token = state.push("heading_close", tag, -1)
        token.markup = marker
    else:
        state.line = nextLine
        token = state.push("paragraph_open", "p", 1)
        token.map = [startLine, nextLine]
        token = state.push("inline", "", 0)
        token.content = content
        token.map = [startLine, nextLine]
        token.children = []
        state.push("paragraph_close", "p", -1)
    # (markdown-it leaves "paragraph" after a paragraph, which no rule reads before setting its own)
    state.parentType = oldParentType
    return True


_PORTS: dict[str, BlockRule] = {"list": _list, "paragraph": _paragraph}


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
        if end == begin + 1 and not keepLastLF:  # one line, as most paragraphs are: nothing to join
            start = bMarks[begin]
            if "\t" not in src[start : start + indent]:
                return src[start + min(indent, tShift[begin]) : eMarks[begin]]
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
