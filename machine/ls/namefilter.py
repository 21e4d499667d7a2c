"""`ls --filter name=REGEX` without Python's backtracking regex engine.

docker-machine matched names with Go's regexp (RE2: linear time, no back-references or look-arounds).
Python's `re` backtracks: `(a+)+$` against a 29-character name took 20 s of CPU, and 500 nested
parentheses raised RecursionError. Here the pattern is parsed by `re`'s own parser (same syntax), then
matched by computing, for each node and start position, the set of positions where it can end, memoised:
polynomial in the name's length (at most 63), with a hard step budget. What RE2 refuses (back-references,
look-arounds, atomic groups, possessive repeats) is refused here too, with a clear message.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

try:  # Python 3.11+
    from re import _constants as sre  # type: ignore[attr-defined]
    from re import _parser as sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - older layouts
    import sre_constants as sre  # type: ignore[no-redef]
    import sre_parse  # type: ignore[no-redef]

from machine.errors import UsageError

MAX_PATTERN = 512
MAX_DEPTH = 60
MAX_NODES = 2000
STEP_BUDGET = 2_000_000
HINT = "name= takes a regular expression (Go/RE2 syntax, as docker-machine), e.g. --filter name='^dev'."


@dataclass(eq=False)
class Node:
    kind: str  # char | seq | alt | rep | at
    test: Callable[[str], bool] | None = None
    children: list[Node] = field(default_factory=list)
    low: int = 0
    high: int = 0
    anchor: object = None


def _char_test(op: object, av: object, icase: bool) -> Callable[[str], bool]:
    def fold(test: Callable[[str], bool]) -> Callable[[str], bool]:
        return (lambda ch: test(ch) or test(ch.lower()) or test(ch.upper())) if icase else test

    if op is sre.ANY:
        return lambda ch: ch != "\n"
    if op is sre.LITERAL:
        return fold(lambda ch, c=chr(av): ch == c)  # type: ignore[arg-type]
    if op is sre.NOT_LITERAL:
        inner = fold(lambda ch, c=chr(av): ch == c)  # type: ignore[arg-type]
        return lambda ch: not inner(ch)
    if op is sre.IN:
        negate = False
        tests: list[Callable[[str], bool]] = []
        for sub_op, sub_av in av:  # type: ignore[union-attr]
            if sub_op is sre.NEGATE:
                negate = True
            elif sub_op is sre.RANGE:
                lo, hi = sub_av
                tests.append(fold(lambda ch, lo=lo, hi=hi: lo <= ord(ch) <= hi))
            elif sub_op is sre.LITERAL:
                tests.append(fold(lambda ch, c=chr(sub_av): ch == c))
            elif sub_op is sre.CATEGORY:
                tests.append(_category(sub_av))
            else:
                raise _unsupported(str(sub_op))
        return (lambda ch: not any(t(ch) for t in tests)) if negate else (lambda ch: any(t(ch) for t in tests))
    raise _unsupported(str(op))


def _category(cat: object) -> Callable[[str], bool]:
    word = lambda ch: ch.isalnum() or ch == "_"  # noqa: E731
    table: dict[object, Callable[[str], bool]] = {
        sre.CATEGORY_DIGIT: str.isdecimal, sre.CATEGORY_NOT_DIGIT: lambda ch: not ch.isdecimal(),
        sre.CATEGORY_SPACE: str.isspace, sre.CATEGORY_NOT_SPACE: lambda ch: not ch.isspace(),
        sre.CATEGORY_WORD: word, sre.CATEGORY_NOT_WORD: lambda ch: not word(ch),
    }
    if cat not in table:
        raise _unsupported(str(cat))
    return table[cat]


def _unsupported(what: str) -> UsageError:
    return UsageError(f"Name filters do not support {what.lower().replace('_', ' ')}",
                      "Back-references, look-arounds, atomic groups and possessive repeats are not supported (as in "
                      "docker-machine's Go regular expressions). " + HINT)


class _Builder:
    def __init__(self) -> None:
        self.count = 0

    def seq(self, items: object, icase: bool, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise UsageError(f"Name filter nests deeper than {MAX_DEPTH} levels", HINT)
        return self._node(Node("seq", children=[self.item(op, av, icase, depth) for op, av in items]))  # type: ignore

    def _node(self, node: Node) -> Node:
        self.count += 1
        if self.count > MAX_NODES:
            raise UsageError("Name filter is too complex", HINT)
        return node

    def item(self, op: object, av: object, icase: bool, depth: int) -> Node:
        if op is sre.SUBPATTERN:
            _group, add, remove, body = av  # type: ignore[misc]
            flags_icase = (icase or bool(add & re.IGNORECASE)) and not (remove & re.IGNORECASE)
            return self.seq(body, flags_icase, depth + 1)
        if op is sre.BRANCH:
            return self._node(Node("alt", children=[self.seq(b, icase, depth + 1) for b in av[1]]))  # type: ignore
        if op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
            low, high, body = av  # type: ignore[misc]
            high = -1 if high is sre.MAXREPEAT else high
            return self._node(Node("rep", children=[self.seq(body, icase, depth + 1)], low=low, high=high))
        if op is sre.AT:
            return self._node(Node("at", anchor=av))
        if op in (sre.ANY, sre.LITERAL, sre.NOT_LITERAL, sre.IN):
            return self._node(Node("char", test=_char_test(op, av, icase)))
        raise _unsupported(str(op))


class _Match:
    """One search of one name: memoised end positions per (node, start)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.memo: dict[tuple[int, int], frozenset[int]] = {}
        self.steps = 0

    def ends(self, node: Node, pos: int) -> frozenset[int]:
        key = (id(node), pos)
        found = self.memo.get(key)
        if found is None:
            self.steps += 1
            if self.steps > STEP_BUDGET:
                raise UsageError("Name filter is too complex to match", HINT)
            found = self._compute(node, pos)
            self.memo[key] = found
        return found

    def _compute(self, node: Node, pos: int) -> frozenset[int]:
        name = self.name
        if node.kind == "char":
            return frozenset((pos + 1,)) if pos < len(name) and node.test(name[pos]) else frozenset()  # type: ignore
        if node.kind == "at":
            return frozenset((pos,)) if self._anchor_holds(node.anchor, pos) else frozenset()
        if node.kind == "alt":
            return frozenset().union(*(self.ends(child, pos) for child in node.children))
        if node.kind == "seq":
            current = frozenset((pos,))
            for child in node.children:
                current = frozenset().union(*(self.ends(child, p) for p in current))
                if not current:
                    break
            return current
        return self._repeat(node, pos)

    def _repeat(self, node: Node, pos: int) -> frozenset[int]:
        """Ends after low..high repetitions. The sets of positions after k repetitions form a deterministic
        sequence: it reaches the empty set or cycles, so only its first distinct members are computed."""
        body = node.children[0]
        history: list[frozenset[int]] = [frozenset((pos,))]
        first_seen = {history[0]: 0}
        cycle_start = -1  # -1: the sequence ended in the empty set
        while True:
            self.steps += 1
            if self.steps > STEP_BUDGET:
                raise UsageError("Name filter is too complex to match", HINT)
            if node.high >= 0 and len(history) > node.high:
                break
            nxt = frozenset().union(*(self.ends(body, p) for p in history[-1]))
            if nxt in first_seen:
                cycle_start = first_seen[nxt]
                break
            first_seen[nxt] = len(history)
            history.append(nxt)
            if not nxt:
                break
        period = len(history) - cycle_start if cycle_start >= 0 else 0

        def after(k: int) -> frozenset[int]:
            if k < len(history):
                return history[k]
            return history[cycle_start + (k - cycle_start) % period] if period else frozenset()

        last = node.high if node.high >= 0 else node.low + len(history) + period
        last = min(last, node.low + len(history) + period)  # beyond this, after(k) only repeats
        return frozenset().union(*(after(k) for k in range(node.low, last + 1)))

    def _anchor_holds(self, anchor: object, pos: int) -> bool:
        name = self.name
        if anchor in (sre.AT_BEGINNING, sre.AT_BEGINNING_STRING, sre.AT_BEGINNING_LINE):
            return pos == 0
        if anchor in (sre.AT_END, sre.AT_END_STRING, sre.AT_END_LINE):
            return pos == len(name)

        def word(i: int) -> bool:
            return 0 <= i < len(name) and (name[i].isalnum() or name[i] == "_")

        boundary = word(pos - 1) != word(pos)
        if anchor in (sre.AT_BOUNDARY, sre.AT_LOC_BOUNDARY, sre.AT_UNI_BOUNDARY):
            return boundary
        if anchor in (sre.AT_NON_BOUNDARY, sre.AT_LOC_NON_BOUNDARY, sre.AT_UNI_NON_BOUNDARY):
            return not boundary
        raise _unsupported(str(anchor))


@dataclass(eq=False)
class NamePattern:
    pattern: str
    root: Node

    def search(self, name: str) -> bool:
        """True when the pattern matches anywhere in `name` (as Go's MatchString and Python's re.search)."""
        match = _Match(name)
        return any(match.ends(self.root, start) for start in range(len(name) + 1))


def compile_filter(pattern: str) -> NamePattern:
    """The name filter `pattern`, checked; a UsageError says what is wrong with it."""
    shown = "name=" + (pattern if len(pattern) <= 60 else pattern[:57] + "...")
    if len(pattern) > MAX_PATTERN:
        raise UsageError(f"Filter {shown!r} is longer than {MAX_PATTERN} characters", HINT)
    try:
        parsed = sre_parse.parse(pattern)
    except RecursionError:
        raise UsageError(f"Filter {shown!r} nests too deeply", HINT) from None
    except (re.error, OverflowError, ValueError) as e:
        raise UsageError(f"Invalid regular expression in filter {shown!r}: {e}", HINT) from None
    icase = bool(parsed.state.flags & re.IGNORECASE)
    return NamePattern(pattern, _Builder().seq(list(parsed), icase, 0))
