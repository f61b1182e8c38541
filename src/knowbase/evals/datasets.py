"""Test sets a person writes by hand, in YAML or JSON Lines.

Three kinds of item (the kind is inferred from the keys, or given as ``kind:``):

* ``kb`` -- a knowledge-base question: ``question``; ``expected_sources`` (file names or
  paths, matched as path suffixes, so ``deployment.md`` or
  ``concepts/workloads/controllers/deployment.md``); ``key_facts`` that the answer must
  contain (each a string or a list of alternatives); or ``unanswerable: true`` when the
  knowledge base should say it does not know. ``reference`` is an optional reference
  answer (used by the judge and by fine-tuning data).
* ``sql`` -- a Text2SQL question: ``question`` and the gold ``sql`` or ``expected_rows``
  (a list of rows, each a list of values).
* ``classification`` -- ``text`` and ``label``.

Every item may have ``id`` (default ``<kind>-<line>``) and ``tags``. A YAML file is a list
of items or a mapping with ``items:`` (and optional ``name``, ``description``, ``labels``
for classification). A JSONL file has one item per line; blank lines are skipped.

Example (YAML)::

    name: k8s-en
    items:
      - id: deploy-surge
        question: What is the default maxSurge of a Deployment's rolling update?
        expected_sources: [concepts/workloads/controllers/deployment.md]
        key_facts: ["25%"]
      - question: What is the capital of France?
        unanswerable: true

Limits apply before anything is built: :data:`MAX_FILE_BYTES`, :data:`MAX_ITEMS`,
:data:`MAX_YAML_EVENTS`; YAML anchors and aliases are refused (an alias bomb expands a
small file into a huge structure). Every error names the file, the line and the field.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from knowbase.errors import InputFileError

__all__ = ["EvalItem", "EvalSet", "EvalSetError", "load_testset", "parse_items", "KINDS"]

KINDS = ("kb", "sql", "classification")
MAX_FILE_BYTES = 20 * 1024 * 1024
"""Largest test-set file read (bytes)."""
MAX_ITEMS = 20_000
"""Most items in one test set."""
MAX_YAML_EVENTS = 2_000_000
"""Most YAML parser events (scalars, sequence and mapping starts...) before composing."""
MAX_TEXT_CHARS = 100_000
"""Longest string value of an item (characters)."""

_COMMON = {"id", "kind", "tags", "lang", "note"}
_KEYS: dict[str, set[str]] = {
    "kb": _COMMON | {"question", "expected_sources", "key_facts", "unanswerable", "reference"},
    "sql": _COMMON | {"question", "sql", "expected_rows", "reference", "ordered"},
    "classification": _COMMON | {"text", "label"},
}
_TOP_KEYS = {"name", "description", "labels", "items"}


class EvalSetError(InputFileError):
    """A test set is malformed (``path``, ``line`` 1-based or None, ``field`` or None)."""


@dataclass(frozen=True, slots=True)
class EvalItem:
    """One test item.

    Attributes:
        id: unique within the set.
        kind: ``kb``, ``sql`` or ``classification``.
        line: 1-based line of the item in its file (0 when built in code).
        question: the question (kb, sql).
        expected_sources: path suffixes of the documents that answer it (kb).
        key_facts: facts the answer must contain; each a tuple of alternatives (kb).
        unanswerable: the knowledge base should abstain (kb).
        reference: a reference answer, or None.
        sql: the gold SQL (sql), or None.
        expected_rows: the expected result rows (sql), or None.
        ordered: compare rows in order (default: only when the gold SQL has ORDER BY).
        text: the text to classify (classification).
        label: the expected label (classification).
        tags: free labels for grouping.
        lang: the item's language when given (``en``, ``zh``...).
    """

    id: str
    kind: str
    line: int = 0
    question: str = ""
    expected_sources: tuple[str, ...] = ()
    key_facts: tuple[tuple[str, ...], ...] = ()
    unanswerable: bool = False
    reference: str | None = None
    sql: str | None = None
    expected_rows: tuple[tuple[Any, ...], ...] | None = None
    ordered: bool | None = None
    text: str = ""
    label: str | None = None
    tags: tuple[str, ...] = ()
    lang: str | None = None

    @property
    def prompt(self) -> str:
        """What is sent to the system under test: the question, or the text to classify."""
        return self.text if self.kind == "classification" else self.question

    def to_dict(self) -> dict[str, Any]:
        """The item as written in a test set (only the fields that are set)."""
        out: dict[str, Any] = {"id": self.id, "kind": self.kind}
        if self.kind == "classification":
            out.update(text=self.text, label=self.label)
        else:
            out["question"] = self.question
        if self.expected_sources:
            out["expected_sources"] = list(self.expected_sources)
        if self.key_facts:
            out["key_facts"] = [f[0] if len(f) == 1 else list(f) for f in self.key_facts]
        if self.unanswerable:
            out["unanswerable"] = True
        for name in ("reference", "sql", "ordered", "lang"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.expected_rows is not None:
            out["expected_rows"] = [list(r) for r in self.expected_rows]
        if self.tags:
            out["tags"] = list(self.tags)
        return out


@dataclass(frozen=True, slots=True)
class EvalSet:
    """A loaded test set: ``items`` in file order, plus its ``name`` and ``labels``."""

    name: str
    items: tuple[EvalItem, ...]
    path: str = ""
    description: str = ""
    labels: tuple[str, ...] = ()

    def kinds(self) -> list[str]:
        """The item kinds present, in :data:`KINDS` order."""
        present = {i.kind for i in self.items}
        return [k for k in KINDS if k in present]

    def class_labels(self) -> list[str]:
        """Classification labels: the declared ``labels``, else the distinct item labels in order."""
        if self.labels:
            return list(self.labels)
        seen: dict[str, None] = {}
        for item in self.items:
            if item.kind == "classification" and item.label is not None:
                seen.setdefault(item.label, None)
        return list(seen)

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[EvalItem]:
        return iter(self.items)


# --- loading ----------------------------------------------------------------------------
def load_testset(path: str | Path) -> EvalSet:
    """Read a test set from ``.yaml``/``.yml`` or ``.jsonl``/``.json`` (by suffix; other
    suffixes are tried as YAML, which also reads JSON).

    Raises:
        EvalSetError: unreadable, too large, malformed, an unknown or missing key, a
            duplicate id (``path``, ``line``, ``field``).
    """
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise EvalSetError(f"{p}: cannot read test set: {exc.strerror or exc}", path=str(p), line=None,
                           field=None, reason="unreadable") from exc
    if size > MAX_FILE_BYTES:
        raise EvalSetError(f"{p}: test set is {size} bytes, over the {MAX_FILE_BYTES}-byte limit", path=str(p),
                           line=None, field=None, reason="too large")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalSetError(f"{p}: cannot read test set as UTF-8: {exc}", path=str(p), line=None, field=None,
                           reason="unreadable") from exc
    if p.suffix.lower() == ".jsonl":
        raw, top = _read_jsonl(text, str(p)), dict[str, Any]()
    else:
        raw, top = _read_yaml(text, str(p))
    name = str(top.get("name") or p.stem)
    labels = top.get("labels") or []
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise EvalSetError(f"{p}: 'labels' must be a list of strings", path=str(p), line=None, field="labels")
    return EvalSet(name=name, items=tuple(parse_items(raw, path=str(p))), path=str(p),
                   description=str(top.get("description") or ""), labels=tuple(labels))


def _err(path: str, line: int | None, message: str, fld: str | None = None) -> EvalSetError:
    where = f"{path}:{line}" if line else path
    return EvalSetError(f"{where}: {message}", path=path, line=line, field=fld)


def _read_jsonl(text: str, path: str) -> list[tuple[int, Any]]:
    out: list[tuple[int, Any]] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if len(out) >= MAX_ITEMS:
            raise _err(path, n, f"more than {MAX_ITEMS} items")
        try:
            out.append((n, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise _err(path, n, f"not valid JSON: {exc.msg} (column {exc.colno})") from exc
        except RecursionError as exc:
            raise _err(path, n, "JSON nested too deeply") from exc
    return out


def _read_yaml(text: str, path: str) -> tuple[list[tuple[int, Any]], dict[str, Any]]:
    import yaml

    try:
        for count, event in enumerate(yaml.parse(text, Loader=yaml.SafeLoader), start=1):
            if count > MAX_YAML_EVENTS:
                raise _err(path, event.start_mark.line + 1, f"over {MAX_YAML_EVENTS} YAML nodes")
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise _err(path, event.start_mark.line + 1, "YAML anchors and aliases are not allowed in a test set")
        loader = yaml.SafeLoader(text)
        try:
            root = loader.get_single_node()
            if root is None:
                return [], {}
            top: dict[str, Any] = {}
            if isinstance(root, yaml.MappingNode):
                item_nodes = None
                for key_node, value_node in root.value:
                    key = loader.construct_object(key_node, deep=True)
                    if key not in _TOP_KEYS:
                        raise _err(path, key_node.start_mark.line + 1,
                                   f"unknown top-level key {key!r} (expected {', '.join(sorted(_TOP_KEYS))})", str(key))
                    if key == "items":
                        item_nodes = value_node
                    else:
                        top[key] = loader.construct_object(value_node, deep=True)
                if item_nodes is None:
                    raise _err(path, root.start_mark.line + 1, "a mapping at the top needs an 'items:' list", "items")
                root = item_nodes
            if not isinstance(root, yaml.SequenceNode):
                raise _err(path, root.start_mark.line + 1, "expected a list of items (or a mapping with 'items:')")
            if len(root.value) > MAX_ITEMS:
                raise _err(path, root.start_mark.line + 1, f"more than {MAX_ITEMS} items")
            items = [(node.start_mark.line + 1, loader.construct_object(node, deep=True)) for node in root.value]
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise _err(path, line, f"not valid YAML: {exc.problem or exc.context}") from exc
    except yaml.YAMLError as exc:
        raise _err(path, None, f"not valid YAML: {exc}") from exc
    return items, top


def _infer_kind(obj: Mapping[str, Any]) -> str:
    if "kind" in obj:
        return str(obj["kind"])
    if "text" in obj or "label" in obj:
        return "classification"
    if "sql" in obj or "expected_rows" in obj:
        return "sql"
    return "kb"


def _string(obj: Mapping[str, Any], key: str, path: str, line: int, *, required: bool = False) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise _err(path, line, f"missing {key!r}", key)
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _err(path, line, f"{key!r} must be a string, got {type(value).__name__}", key)
    text = str(value)
    if len(text) > MAX_TEXT_CHARS:
        raise _err(path, line, f"{key!r} is longer than {MAX_TEXT_CHARS} characters", key)
    if required and not text.strip():
        raise _err(path, line, f"{key!r} is empty", key)
    return text


def _strings(obj: Mapping[str, Any], key: str, path: str, line: int) -> tuple[str, ...]:
    value = obj.get(key)
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool)
                                              for v in value):
        raise _err(path, line, f"{key!r} must be a string or a list of strings", key)
    return tuple(str(v) for v in value if str(v).strip())


def _key_facts(obj: Mapping[str, Any], path: str, line: int) -> tuple[tuple[str, ...], ...]:
    value = obj.get("key_facts")
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise _err(path, line, "'key_facts' must be a list (each fact a string or a list of alternatives)", "key_facts")
    facts: list[tuple[str, ...]] = []
    for fact in value:
        alts = fact if isinstance(fact, list) else [fact]
        if not alts or not all(isinstance(a, (str, int, float)) and not isinstance(a, bool) for a in alts):
            raise _err(path, line, f"key fact {fact!r} must be a string or a list of strings", "key_facts")
        facts.append(tuple(str(a) for a in alts))
    return tuple(facts)


def _rows(obj: Mapping[str, Any], path: str, line: int) -> tuple[tuple[Any, ...], ...] | None:
    value = obj.get("expected_rows")
    if value is None:
        return None
    if not isinstance(value, list):
        raise _err(path, line, "'expected_rows' must be a list of rows", "expected_rows")
    rows = []
    for row in value:
        cells = row if isinstance(row, list) else [row]
        if not all(c is None or isinstance(c, (str, int, float, bool)) for c in cells):
            raise _err(path, line, f"row {row!r} of 'expected_rows' must hold plain values", "expected_rows")
        rows.append(tuple(cells))
    return tuple(rows)


def parse_items(raw: Sequence[tuple[int, Any]], *, path: str = "<items>") -> list[EvalItem]:
    """Build items from ``(line, object)`` pairs (what the readers produce).

    Raises:
        EvalSetError: a malformed item (names ``path``, ``line`` and ``field``).
    """
    items: list[EvalItem] = []
    seen: dict[str, int] = {}
    for line, obj in raw:
        if not isinstance(obj, dict):
            raise _err(path, line, f"an item must be a mapping of keys, got {type(obj).__name__}")
        kind = _infer_kind(obj)
        if kind not in KINDS:
            raise _err(path, line, f"unknown kind {kind!r} (expected {', '.join(KINDS)})", "kind")
        unknown = sorted(str(k) for k in obj if k not in _KEYS[kind])
        if unknown:
            raise _err(path, line, f"unknown key {unknown[0]!r} for a {kind} item (allowed: "
                                   f"{', '.join(sorted(_KEYS[kind]))})", unknown[0])
        item_id = _string(obj, "id", path, line) or f"{kind}-{line}"
        if item_id in seen:
            raise _err(path, line, f"duplicate id {item_id!r} (first on line {seen[item_id]})", "id")
        seen[item_id] = line
        tags = _strings(obj, "tags", path, line)
        lang = _string(obj, "lang", path, line)
        if kind == "classification":
            item = EvalItem(id=item_id, kind=kind, line=line, text=_string(obj, "text", path, line, required=True) or "",
                            label=_string(obj, "label", path, line, required=True), tags=tags, lang=lang)
        elif kind == "sql":
            sql, rows = _string(obj, "sql", path, line), _rows(obj, path, line)
            if sql is None and rows is None:
                raise _err(path, line, "a sql item needs 'sql' (gold SQL) or 'expected_rows'", "sql")
            ordered = obj.get("ordered")
            if ordered is not None and not isinstance(ordered, bool):
                raise _err(path, line, "'ordered' must be true or false", "ordered")
            item = EvalItem(id=item_id, kind=kind, line=line,
                            question=_string(obj, "question", path, line, required=True) or "",
                            sql=sql, expected_rows=rows, ordered=ordered,
                            reference=_string(obj, "reference", path, line), tags=tags, lang=lang)
        else:
            unanswerable = obj.get("unanswerable", False)
            if not isinstance(unanswerable, bool):
                raise _err(path, line, "'unanswerable' must be true or false", "unanswerable")
            sources = _strings(obj, "expected_sources", path, line)
            facts = _key_facts(obj, path, line)
            if unanswerable and (sources or facts):
                raise _err(path, line, "an unanswerable item cannot have expected_sources or key_facts",
                           "expected_sources" if sources else "key_facts")
            item = EvalItem(id=item_id, kind=kind, line=line,
                            question=_string(obj, "question", path, line, required=True) or "",
                            expected_sources=tuple(s.replace("\\", "/").lstrip("/") for s in sources),
                            key_facts=facts, unanswerable=unanswerable,
                            reference=_string(obj, "reference", path, line), tags=tags, lang=lang)
        items.append(item)
    return items


def dump_items(items: Sequence[EvalItem], *, name: str | None = None, header: str = "") -> str:
    """YAML text of a test set (``name:`` and ``items:``), with ``header`` as leading comments."""
    import yaml

    body: dict[str, Any] = {}
    if name:
        body["name"] = name
    body["items"] = [i.to_dict() for i in items]
    comments = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    return comments + str(yaml.safe_dump(body, allow_unicode=True, sort_keys=False, width=110))

