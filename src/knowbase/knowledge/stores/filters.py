"""Metadata filters: a backend-neutral :class:`SearchFilter` (an expression tree, never SQL).

A filter restricts a search to the documents it matches; stores apply it inside the search
(a pre-filter), so ``k`` results come back whenever ``k`` matching chunks exist.

Fields (a document's own facts first, then its metadata):

=============  ====================================================================
``path``       the source path; ``=``, ``!=`` and ``in`` match a glob (``*``, ``?``, ``[...]``)
``type``       the file extension, lower case, without the dot (``md``, ``pdf``, ``csv``)
``language``   ``en``, ``zh`` ... as detected at ingest
``kind``       ``file`` or ``memory``
``title``      the document title
``size``       bytes of the source
``mtime``      the file's modification time (Unix seconds; compare with dates)
``ingested``   when this version was ingested (Unix seconds; compare with dates)
``added``      when the document was first ingested
anything else  a metadata key: front-matter fields, the loader's keys (``format``,
               ``columns`` of a CSV, ...) and metadata given at ingest (``--meta team=infra``);
               ``a.b`` reaches into nested mappings; ``meta.NAME`` forces a metadata lookup
=============  ====================================================================

Text syntax (``knowbase kb search --filter``)::

    team=infra and year>=2023
    type in (md, pdf) and not path=*/drafts/*
    (team=infra or team=web) and ingested>=2024-01-01
    language=zh, kind=memory          # a comma is "and" (the older key=value,key=value form)

Operators: ``=`` (also ``==``), ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``in (...)``, ``not in (...)``;
``and``, ``or``, ``not`` and parentheses (``not`` binds tightest, then ``and``, then ``or``).
Values are bare words or quoted strings (``'a b'``, ``"a b"``); a bare number compares as a
number (``"2023"`` in metadata equals ``2023``) and a bare ISO date (``2024-01-05``,
``2024-01-05T10:00``) as a date. A date compares by whole days: ``ingested>2024-01-05`` means
from 2024-01-06 on. A list value (front-matter ``tags``, a CSV's ``columns``) matches when any
element does. ``!=`` and ``not`` also match documents that lack the field.

Limits (checked before parsing): :data:`MAX_FILTER_CHARS` characters, :data:`MAX_DEPTH`
nested parentheses or ``not``, :data:`MAX_IN_VALUES` values in one ``in`` list.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import PurePath
from typing import Any, TypeAlias

from knowbase.errors import UserError
from knowbase.knowledge.types import DocumentRow

MAX_FILTER_CHARS = 4096
MAX_DEPTH = 32
MAX_IN_VALUES = 1000

Value: TypeAlias = str | int | float | date
OPS = ("=", "!=", "<", "<=", ">", ">=", "in", "not in")
BUILTIN_FIELDS = frozenset({"path", "type", "language", "kind", "title", "size", "mtime", "ingested", "added"})
_TIME_FIELDS = frozenset({"mtime", "ingested", "added"})


@dataclass(frozen=True, slots=True)
class Condition:
    """``field op value``; for ``in``/``not in`` the value is a tuple of values."""

    field: str
    op: str
    value: Value | tuple[Value, ...]

    def __str__(self) -> str:
        if self.op in ("in", "not in"):
            assert isinstance(self.value, tuple)
            return f"{_quote(self.field)} {self.op} ({', '.join(_show(v) for v in self.value)})"
        assert not isinstance(self.value, tuple)
        return f"{_quote(self.field)}{self.op}{_show(self.value)}"


@dataclass(frozen=True, slots=True)
class And:
    """Every item matches."""

    items: tuple[Expr, ...]

    def __str__(self) -> str:
        return " and ".join(f"({i})" if isinstance(i, Or) else str(i) for i in self.items)


@dataclass(frozen=True, slots=True)
class Or:
    """At least one item matches."""

    items: tuple[Expr, ...]

    def __str__(self) -> str:
        return " or ".join(str(i) for i in self.items)


@dataclass(frozen=True, slots=True)
class Not:
    """The item does not match."""

    item: Expr

    def __str__(self) -> str:
        return f"not ({self.item})" if isinstance(self.item, (And, Or)) else f"not {self.item}"


Expr: TypeAlias = Condition | And | Or | Not


@dataclass(frozen=True, slots=True)
class SearchFilter:
    """A document filter: an expression over document fields and metadata (see the module docstring).

    Build one with :meth:`parse` (text, a dict, or None), combine with ``&``, ``|``, ``~``.
    ``SearchFilter()`` matches everything.

    Example::

        >>> f = SearchFilter.parse("team=infra and year>=2023")
        >>> f.matches(DocumentRow(1, "/docs/a.md", "", metadata={"team": "infra", "year": 2024}))
        True
        >>> str(SearchFilter.parse({"type": ["md", "pdf"], "year": {">=": 2023}}))
        'type in (md, pdf) and year>=2023'
    """

    expr: Expr | None = None

    # --- building --------------------------------------------------------------------
    @classmethod
    def parse(cls, spec: SearchFilter | Mapping[str, Any] | str | None) -> SearchFilter | None:
        """A filter from text (the syntax above), a dict, or None (no filter).

        A dict maps a field to a value (equality; ``path`` a glob), a list (``in``) or a
        dict of operators (``{"year": {">=": 2023, "<": 2026}}``); its items are ANDed.

        Raises:
            UserError: bad syntax (``field="filter"``, ``position``: 0-based offset), an
                unknown operator, or a filter over its limits.
        """
        if spec is None or isinstance(spec, SearchFilter):
            return spec
        if isinstance(spec, str):
            return cls(parse_filter(spec)) if spec.strip() else None
        if isinstance(spec, Mapping):
            return cls(_from_mapping(spec))
        raise UserError(f"a filter is text or a dict, not {type(spec).__name__}", field="filter")

    def __and__(self, other: SearchFilter) -> SearchFilter:
        if self.expr is None or other.expr is None:
            return self if other.expr is None else other
        return SearchFilter(And((self.expr, other.expr)))

    def __or__(self, other: SearchFilter) -> SearchFilter:
        if self.expr is None or other.expr is None:
            return SearchFilter()
        return SearchFilter(Or((self.expr, other.expr)))

    def __invert__(self) -> SearchFilter:
        if self.expr is None:
            raise UserError("'not' of an empty filter matches nothing", field="filter")
        return SearchFilter(Not(self.expr))

    def __bool__(self) -> bool:
        return self.expr is not None

    def __str__(self) -> str:
        return "" if self.expr is None else str(self.expr)

    # --- reading ---------------------------------------------------------------------
    def fields(self) -> set[str]:
        """The field names the filter reads (``meta.`` prefixes kept)."""
        return {c.field for c in _conditions(self.expr)} if self.expr is not None else set()

    def matches(self, doc: DocumentRow) -> bool:
        """Whether a document passes (the reference semantics every store must follow)."""
        return True if self.expr is None else _eval(self.expr, doc)


# --- evaluation ---------------------------------------------------------------------------
def _conditions(expr: Expr) -> Iterator[Condition]:
    if isinstance(expr, Condition):
        yield expr
    elif isinstance(expr, Not):
        yield from _conditions(expr.item)
    else:
        for item in expr.items:
            yield from _conditions(item)


def _eval(expr: Expr, doc: DocumentRow) -> bool:
    if isinstance(expr, Condition):
        return _test(expr, doc)
    if isinstance(expr, Not):
        return not _eval(expr.item, doc)
    if isinstance(expr, And):
        return all(_eval(i, doc) for i in expr.items)
    return any(_eval(i, doc) for i in expr.items)


_MISSING = object()


def field_value(doc: DocumentRow, name: str) -> Any:
    """The value of field ``name`` for ``doc`` (see the module docstring), or ``_MISSING``."""
    if name.startswith("meta."):
        return _lookup(doc.metadata, name[5:])
    if name in BUILTIN_FIELDS:
        if name == "type":
            return PurePath(doc.path).suffix.lstrip(".").lower() if doc.kind == "file" else ""
        if name == "ingested":
            return doc.updated
        value = getattr(doc, name)
        return _MISSING if value is None else value
    return _lookup(doc.metadata, name)


def _lookup(meta: Mapping[str, Any], name: str) -> Any:
    if name in meta:
        return meta[name]
    value: Any = meta
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _test(cond: Condition, doc: DocumentRow) -> bool:
    value = field_value(doc, cond.field)
    if cond.op in ("!=", "not in"):
        positive = Condition(cond.field, "=" if cond.op == "!=" else "in", cond.value)
        return not _test(positive, doc)
    if value is _MISSING or value is None:
        return False
    wanted = cond.value if isinstance(cond.value, tuple) else (cond.value,)
    op = "=" if cond.op == "in" else cond.op
    values = value if isinstance(value, (list, tuple)) else [value]
    glob = cond.field == "path" and op == "="
    timed = cond.field in _TIME_FIELDS
    return any(_compare(v, op, w, glob=glob, timed=timed) for v in values for w in wanted)


def _compare(have: Any, op: str, want: Value, *, glob: bool, timed: bool) -> bool:
    if isinstance(want, date):  # datetime is a date too
        at = _as_datetime(have, unix=timed)
        if at is None:
            return False
        if isinstance(want, datetime):
            lo = hi = want if want.tzinfo else want.replace(tzinfo=UTC)
        else:
            lo = datetime(want.year, want.month, want.day, tzinfo=UTC)
            hi = lo + timedelta(days=1)
            return {"=": lo <= at < hi, "<": at < lo, "<=": at < hi, ">": at >= hi, ">=": at >= lo}[op]
        return _order(at, op, lo)
    if isinstance(want, (int, float)):
        num = _as_number(have)
        return num is not None and _order(num, op, float(want))
    text = _as_text(have)
    if glob:
        return fnmatch.fnmatchcase(text, want.replace("[^", "[!"))
    return _order(text, op, want)


def _order(a: Any, op: str, b: Any) -> bool:
    if op == "=":
        return bool(a == b)
    if op == "<":
        return bool(a < b)
    if op == "<=":
        return bool(a <= b)
    if op == ">":
        return bool(a > b)
    return bool(a >= b)


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        return float(value)
    return None


def _as_datetime(value: Any, *, unix: bool) -> datetime | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and unix:
        try:
            return datetime.fromtimestamp(float(value), tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        parsed = _as_date(value.strip())
        if isinstance(parsed, datetime):
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        if isinstance(parsed, date):
            return datetime(parsed.year, parsed.month, parsed.day, tzinfo=UTC)
    return None


# --- parsing ------------------------------------------------------------------------------
_NUMBER = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?")
_OPS_TEXT = ("==", "!=", "<=", ">=", "=", "<", ">")
_STOP = set(" \t\r\n()=!<>,'\"")


def _as_date(text: str) -> date | None:
    if not _DATE.fullmatch(text):
        return None
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        return datetime.fromisoformat(text.replace(" ", "T").replace("Z", "+00:00"))
    except ValueError:
        return None


def _typed(word: str) -> Value:
    if _NUMBER.fullmatch(word):
        number = float(word)
        if math.isfinite(number):
            return int(word) if re.fullmatch(r"[-+]?\d+", word) else number
    return _as_date(word) or word


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # word | string | op | ( | ) | , | end
    text: str
    pos: int


def _error(text: str, pos: int, what: str) -> UserError:
    return UserError(f"bad filter at position {pos + 1}: {what} (in {text!r})", field="filter", position=pos)


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "(),":
            out.append(_Token(ch, ch, i))
            i += 1
        elif ch in "=!<>":
            op = next((o for o in _OPS_TEXT if text.startswith(o, i)), None)
            if op is None:
                raise _error(text, i, f"unknown operator {ch!r} (use =, !=, <, <=, >, >=, in)")
            out.append(_Token("op", "=" if op == "==" else op, i))
            i += len(op)
        elif ch in "'\"":
            j, buf = i + 1, []
            while True:
                if j >= n:
                    raise _error(text, i, "unterminated quoted string")
                if text[j] == "\\" and j + 1 < n:
                    buf.append(text[j + 1])
                    j += 2
                elif text[j] == ch:
                    if j + 1 < n and text[j + 1] == ch:  # a doubled quote
                        buf.append(ch)
                        j += 2
                        continue
                    break
                else:
                    buf.append(text[j])
                    j += 1
            out.append(_Token("string", "".join(buf), i))
            i = j + 1
        else:
            j = i
            while j < n and text[j] not in _STOP:
                j += 1
            out.append(_Token("word", text[i:j], i))
            i = j
    out.append(_Token("end", "", n))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.at = 0
        self.depth = 0

    def peek(self) -> _Token:
        return self.toks[self.at]

    def take(self) -> _Token:
        tok = self.toks[self.at]
        self.at += 1
        return tok

    def keyword(self, word: str) -> bool:
        tok = self.peek()
        if tok.kind == "word" and tok.text.lower() == word:
            self.at += 1
            return True
        return False

    def fail(self, tok: _Token, what: str) -> UserError:
        found = "the end" if tok.kind == "end" else repr(tok.text)
        return _error(self.text, tok.pos, f"expected {what}, found {found}")

    def parse(self) -> Expr:
        expr = self.or_()
        tok = self.peek()
        if tok.kind != "end":
            raise self.fail(tok, "'and', 'or' or the end")
        return expr

    def or_(self) -> Expr:
        items = [self.and_()]
        while self.keyword("or"):
            items.append(self.and_())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_(self) -> Expr:
        items = [self.unary()]
        while True:
            if self.peek().kind == ",":
                self.at += 1
            elif not self.keyword("and"):
                break
            items.append(self.unary())
        return items[0] if len(items) == 1 else And(tuple(items))

    def nest(self, tok: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _error(self.text, tok.pos, f"nested deeper than {MAX_DEPTH} levels")

    def unary(self) -> Expr:
        tok = self.peek()
        if tok.kind == "word" and tok.text.lower() == "not" and self.toks[self.at + 1].kind not in ("op",):
            self.at += 1
            self.nest(tok)
            item = self.unary()
            self.depth -= 1
            return Not(item)
        if tok.kind == "(":
            self.at += 1
            self.nest(tok)
            expr = self.or_()
            self.depth -= 1
            close = self.take()
            if close.kind != ")":
                raise self.fail(close, "')'")
            return expr
        return self.condition()

    def condition(self) -> Expr:
        tok = self.take()
        if tok.kind not in ("word", "string") or (tok.kind == "word" and tok.text.lower() in ("and", "or")):
            raise self.fail(tok, "a field name")
        name = tok.text
        if not name:
            raise _error(self.text, tok.pos, "empty field name")
        negate = False
        if self.keyword("not"):
            negate = True
            if not self.keyword("in"):
                raise self.fail(self.peek(), "'in' after 'not'")
            return Condition(name, "not in", self.values())
        if self.keyword("in"):
            return Condition(name, "not in" if negate else "in", self.values())
        op = self.take()
        if op.kind != "op":
            raise self.fail(op, f"an operator after {name!r} (=, !=, <, <=, >, >=, in)")
        return Condition(name, op.text, self.value())

    def value(self) -> Value:
        tok = self.take()
        if tok.kind == "string":
            return tok.text
        if tok.kind == "word":
            return _typed(tok.text)
        raise self.fail(tok, "a value")

    def values(self) -> tuple[Value, ...]:
        tok = self.take()
        if tok.kind != "(":
            raise self.fail(tok, "'(' to start the list")
        out = [self.value()]
        while self.peek().kind == ",":
            self.at += 1
            out.append(self.value())
            if len(out) > MAX_IN_VALUES:
                raise _error(self.text, self.peek().pos, f"more than {MAX_IN_VALUES} values in one list")
        close = self.take()
        if close.kind != ")":
            raise self.fail(close, "',' or ')'")
        return tuple(out)


def parse_filter(text: str) -> Expr:
    """Parse the filter syntax of the module docstring into an expression tree.

    Raises:
        UserError: a syntax error, naming the 1-based position (``position`` holds the
            0-based offset), or text over :data:`MAX_FILTER_CHARS`.
    """
    if len(text) > MAX_FILTER_CHARS:
        raise UserError(f"filter is {len(text)} characters; the limit is {MAX_FILTER_CHARS}", field="filter")
    return _Parser(text).parse()


def _from_mapping(spec: Mapping[str, Any]) -> Expr:
    items: list[Expr] = []
    for name, value in spec.items():
        if isinstance(value, Mapping):
            for op, v in value.items():
                op = "=" if op == "==" else str(op)
                if op not in OPS:
                    raise UserError(f"unknown filter operator {op!r} for {name!r}; use one of {', '.join(OPS)}",
                                    field=str(name))
                items.append(Condition(str(name), op, _values(v, name) if op in ("in", "not in") else _scalar(v, name)))
        elif isinstance(value, (list, tuple, set, frozenset)):
            items.append(Condition(str(name), "in", _values(value, name)))
        else:
            items.append(Condition(str(name), "=", _scalar(value, name)))
    if not items:
        raise UserError("an empty filter dict; pass None for no filter", field="filter")
    return items[0] if len(items) == 1 else And(tuple(items))


def _scalar(value: Any, name: str) -> Value:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float, date)):
        return value
    raise UserError(f"filter value for {name!r} must be text, a number or a date, not {type(value).__name__}",
                    field=str(name))


def _values(value: Any, name: str) -> tuple[Value, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        return (_scalar(value, name),)
    out = tuple(_scalar(v, name) for v in value)
    if not out or len(out) > MAX_IN_VALUES:
        raise UserError(f"'in' for {name!r} needs 1 to {MAX_IN_VALUES} values", field=str(name))
    return out


def _quote(word: str) -> str:
    return word if word and not (set(word) & _STOP) and word.lower() not in ("and", "or", "not", "in") else _q(word)


def _q(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _show(value: Value) -> str:
    if isinstance(value, str):
        return _quote(value) if not (_NUMBER.fullmatch(value) or _as_date(value)) else _q(value)
    return value.isoformat() if isinstance(value, date) else repr(value)
