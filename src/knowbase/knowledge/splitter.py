"""Structure-aware recursive splitting of a :class:`Document` into :class:`Chunk` s.

The algorithm, in the spirit of LangChain's ``RecursiveCharacterTextSplitter`` but on
offsets and in the embedder's tokens:

1. **Regions.** The text is cut at every section and page boundary, so each region has
   one heading path and one page. A chunk never spans two pages.
2. **Recursive split.** A region larger than ``chunk_size`` is split at the first level
   that cuts it: paragraphs (blank lines), lines, sentences (``. ! ?`` followed by a
   space, and ``。！？；`` anywhere, so Chinese text without spaces splits too),
   clauses (``, ; : ，、：``), words (spaces), then characters.
3. **Packing.** The pieces are packed greedily into chunks of at most ``chunk_size``
   tokens; consecutive chunks of one region share about ``chunk_overlap`` tokens of
   trailing pieces. Small neighbouring regions merge into one chunk when they are on the
   same page and under the same parent heading (siblings, or a heading's intro and its
   first subsection).
4. **Tables.** A table's rows (:attr:`Document.tables`) are cut apart from its header row
   into their own region; every chunk that holds rows but not the header row gets the
   header row and a newline in front of its text (:attr:`Chunk.repeated` characters; the
   offsets still give the rows), and its rows are packed into what the header leaves of
   the budget. A header longer than half a chunk is not repeated.
5. **Verification.** Sizes are *estimated* while splitting (see below) and every chunk
   is then measured once with ``count_tokens``; a chunk over ``max_tokens`` is split
   again with the corrected estimate, so none exceeds the embedder's limit.

Token estimates come from per-character weights (a Han character, a punctuation mark
and the start of a word count 1; each further letter of a word 0.1), summed with numpy
prefix sums so any span is estimated in O(1), then scaled by a per-document ratio
calibrated against ``count_tokens`` on a sample and refined by every measured chunk.
``count_tokens`` is thus called about once per chunk, plus twice per document.

Offsets are exact: ``doc.text[chunk.start:chunk.end] == chunk.text[chunk.repeated:]`` for
every chunk (chunks are trimmed of surrounding whitespace; ``repeated`` is 0 except for
table chunks, above). Chunk starts and ends strictly increase,
so no chunk contains another.
"""

from __future__ import annotations

import bisect
import re
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from knowbase.errors import ConfigError
from knowbase.knowledge.types import Chunk, Document, Page, Section, Table

__all__ = ["split_document", "split_text"]

# Separators, strongest first. A match's end is a cut point. Each is linear in the text:
# runs are matched possessively and a run of sentence marks only from its first mark.
_LEVELS: tuple[re.Pattern[str], ...] = (
    re.compile(r"\n[ \t]*\n\s*"),                                    # paragraphs
    re.compile(r"\n\s*"),                                            # lines
    re.compile(r"(?<![.!?])[.!?]++[\"'”’)\]]*+\s+|[。！？；]++[”’」』）)\"']*+\s*"),  # sentences
    re.compile(r"[,;:]\s+|[，、：；]\s*"),                              # clauses
    re.compile(r"\s+"),                                              # words
)

_SCALE = 10  # weights are integers in tenths of a token
_MIN_FILL = 0.5  # a chunk may end early at a stronger boundary once this full


_SPACE, _WORD, _CJK, _PUNCT = 0, 1, 2, 3


@lru_cache(maxsize=1)
def _class_table() -> np.ndarray:
    """Character class of every BMP code point (uint8, shape ``(65536,)``): space, word
    character, CJK (Han, kana, Hangul, CJK and full-width punctuation) or other."""
    cps = np.arange(0x10000, dtype=np.uint32)
    space = (cps <= 32) | (cps == 0xA0) | ((cps >= 0x2000) & (cps <= 0x200B)) | (cps == 0x3000)
    cjk = (((cps >= 0x3000) & (cps <= 0x30FF)) | ((cps >= 0x3400) & (cps <= 0x4DBF))
           | ((cps >= 0x4E00) & (cps <= 0x9FFF)) | ((cps >= 0xAC00) & (cps <= 0xD7AF))
           | ((cps >= 0xF900) & (cps <= 0xFAFF)) | ((cps >= 0xFF00) & (cps <= 0xFFEF))) & ~space
    word = (((cps >= 48) & (cps <= 57)) | ((cps >= 65) & (cps <= 90)) | ((cps >= 97) & (cps <= 122))
            | ((cps >= 0xC0) & ~cjk & ~space & ((cps < 0x2000) | (cps > 0x2BFF))))
    table = np.full(0x10000, _PUNCT, dtype=np.uint8)
    table[word] = _WORD
    table[cjk] = _CJK
    table[space] = _SPACE
    table.setflags(write=False)
    return table


def _weights(text: str) -> array:
    """Cumulative estimate weights: ``cum[e] - cum[s]`` is the span's weight in tenths
    of a token (before calibration). Length ``len(text) + 1``, 4 bytes per character."""
    cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    cls = _class_table()[np.minimum(cps, 0xFFFF)]
    astral = cps > 0xFFFF
    if astral.any():
        cls[astral] = np.where((cps[astral] >= 0x20000) & (cps[astral] <= 0x2FA1F), _CJK, _PUNCT)
    word = cls == _WORD
    start = word.copy()
    start[1:] &= ~word[:-1]
    w = np.zeros(len(cps) + 1, dtype=np.int32)  # < 2**31: 10 per character at most, texts < 200 M chars
    w[1:] = (((cls >= _CJK) | start) * _SCALE) + (word & ~start)
    np.cumsum(w, out=w)
    return array("i", w.tobytes())


@dataclass
class _Region:
    start: int
    end: int
    path: tuple[str, ...]
    page: int | None
    table: Table | None = None  # the table whose rows (not header) this region holds


class _Splitter:
    """One document's splitting state (estimator calibration, counters)."""

    def __init__(self, text: str, count_tokens: Callable[[str], int], chunk_size: int, chunk_overlap: int,
                 max_tokens: int) -> None:
        self.text = text
        self.count = count_tokens
        self.chunk_size = chunk_size
        self.overlap = chunk_overlap
        self.max_tokens = max_tokens
        self.cum = _weights(text)
        self.calls = 0
        # Constant tokens per call (special tokens such as [CLS]/[SEP]).
        self.offset = self.measure("")
        self.ratio = 1.0 / _SCALE  # tokens per weight unit, calibrated below
        self._real = 0.0
        self._units = 0.0
        self._calibrate()

    # --- estimation --------------------------------------------------------------------
    def measure(self, text: str) -> int:
        """``count_tokens(text)``, counted."""
        self.calls += 1
        return int(self.count(text))

    def _calibrate(self) -> None:
        sample_end = min(len(self.text), 4000)
        if sample_end < len(self.text):
            cut = self.text.rfind(" ", 2000, sample_end)
            sample_end = cut if cut > 0 else sample_end
        units = self.cum[sample_end] - self.cum[0]
        if units <= 0:
            return
        real = self.measure(self.text[:sample_end]) - self.offset
        if real > 0:
            self._observe(real, units)

    def _observe(self, real: float, units: float) -> None:
        self._real += real
        self._units += units
        if self._units > 0 and self._real > 0:
            self.ratio = self._real / self._units

    def units(self, start: int, end: int) -> float:
        return self.cum[end] - self.cum[start]

    def est(self, start: int, end: int) -> float:
        """Estimated tokens of ``text[start:end]`` without the constant offset."""
        return self.units(start, end) * self.ratio

    # --- splitting ---------------------------------------------------------------------
    def split(self, start: int, end: int, budget: float, level: int = 0,
              end_level: int = -1) -> list[tuple[int, int, int]]:
        """Cut ``[start, end)`` into contiguous pieces of at most ``budget`` estimated
        tokens, at the strongest separators that suffice.

        Returns:
            ``[(start, end, boundary)]`` where ``boundary`` is the level of the cut after
            the piece (0 paragraph ... 5 character; ``end_level`` for the last piece).
        """
        if self.est(start, end) <= budget:
            return [(start, end, end_level)]
        while level < len(_LEVELS):
            cuts = [m.end() for m in _LEVELS[level].finditer(self.text, start, end) if start < m.end() < end]
            if cuts:
                out: list[tuple[int, int, int]] = []
                prev = start
                for cut in cuts + [end]:
                    if cut > prev:
                        out.extend(self.split(prev, cut, budget, level + 1, level if cut < end else end_level))
                    prev = cut
                return out
            level += 1
        return self._hard_cut(start, end, budget, end_level)

    def _hard_cut(self, start: int, end: int, budget: float, end_level: int) -> list[tuple[int, int, int]]:
        """Cut by characters: each piece the longest prefix within ``budget``."""
        out = []
        pos = start
        limit_units = max(budget / self.ratio, 1.0) if self.ratio > 0 else float(end - start)
        while pos < end:
            target = self.cum[pos] + limit_units
            nxt = bisect.bisect_right(self.cum, target, pos, end + 1) - 1
            nxt = min(max(nxt, pos + 1), end)
            out.append((pos, nxt, len(_LEVELS) if nxt < end else end_level))
            pos = nxt
        return out

    @staticmethod
    def _cut_after(cur: list[tuple[int, int, float, int]], budget: float) -> int:
        """Index of the last piece of the span to emit from ``cur`` (whose total exceeds
        ``budget``): the strongest boundary among cuts leaving the span at least
        ``_MIN_FILL`` full, the fullest cut when none does."""
        best, best_level, fullest = -1, len(_LEVELS) + 1, 0
        total = 0.0
        for j in range(len(cur) - 1):
            total += cur[j][2]
            if total > budget:
                break
            fullest = j
            if total >= _MIN_FILL * budget and cur[j][3] <= best_level:
                best, best_level = j, cur[j][3]
        return best if best >= 0 else fullest

    def pack(self, pieces: list[tuple[int, int, int]], budget: float, *,
             no_overlap_before: int = 0) -> list[tuple[int, int]]:
        """Pack contiguous pieces into spans of at most ``budget`` estimated tokens.

        A span ends at the strongest boundary (paragraph, line, sentence...) that keeps
        it at least half full; each new span starts with trailing pieces of the previous
        one worth at most ``chunk_overlap`` tokens (never its first piece, never pieces
        starting before ``no_overlap_before``: text of another section).
        """
        spans: list[tuple[int, int]] = []
        cur: list[tuple[int, int, float, int]] = []
        total = 0.0
        for s, e, level in pieces:
            size = self.est(s, e)
            cur.append((s, e, size, level))
            total += size
            while total > budget and len(cur) > 1:
                j = self._cut_after(cur, budget)
                done, rest = cur[:j + 1], cur[j + 1:]
                spans.append((done[0][0], done[-1][1]))
                rest_total = sum(p[2] for p in rest)
                tail: list[tuple[int, int, float, int]] = []
                kept = 0.0
                for piece in reversed(done[1:]):
                    if (kept + piece[2] > self.overlap or piece[0] < no_overlap_before
                            or kept + piece[2] + rest_total > budget):
                        break
                    tail.insert(0, piece)
                    kept += piece[2]
                cur, total = tail + rest, kept + rest_total
        if cur:
            spans.append((cur[0][0], cur[-1][1]))
        return spans

    def trim(self, start: int, end: int) -> tuple[int, int]:
        piece = self.text[start:end]
        left = len(piece) - len(piece.lstrip())
        right = len(piece.rstrip())
        return start + left, start + right

    def verified(self, start: int, end: int, budget: float, depth: int = 0,
                 max_tokens: int | None = None) -> list[tuple[int, int, int]]:
        """Measure a candidate span; re-split it while it exceeds ``max_tokens`` (default
        the embedder's limit).

        Returns ``[(start, end, tokens)]``.
        """
        limit = self.max_tokens if max_tokens is None else max_tokens
        start, end = self.trim(start, end)
        if start >= end:
            return []
        tokens = self.measure(self.text[start:end])
        units = self.units(start, end)
        if units > 0 and tokens > self.offset:
            self._observe(tokens - self.offset, units)
        if tokens <= limit or end - start <= 1:
            return [(start, end, tokens)]
        # Too long: the estimate was off. Recalibrated ratio, and a smaller budget each
        # time round, guarantee progress down to single characters.
        local = budget * min(0.9, limit / tokens) / (1 + depth)
        out: list[tuple[int, int, int]] = []
        for s, e in self.pack(self.split(start, end, local), local):
            out.extend(self.verified(s, e, local, depth + 1, limit))
        return out


def _regions(doc: Document, tables: list[Table]) -> list[_Region]:
    """Cut the text at section and page boundaries and where the rows of ``tables``
    begin and end; drop whitespace-only regions."""
    n = len(doc.text)
    points = {0, n}
    spans: list[Section | Page] = [*doc.sections, *doc.pages]
    for span in spans:
        points.add(max(0, min(n, span.start)))
        points.add(max(0, min(n, span.end)))
    for table in tables:
        points.add(table.header_end)
        points.add(table.end)
    table_starts = [t.header_end for t in tables]
    bounds = sorted(points)
    sections = sorted(doc.sections, key=lambda s: (s.start, -s.end))
    sec_starts = [s.start for s in sections]
    pages = sorted(doc.pages, key=lambda p: p.start)
    page_starts = [p.start for p in pages]

    def covering(spans, starts, pos):
        i = bisect.bisect_right(starts, pos) - 1
        while i >= 0:
            if spans[i].start <= pos < spans[i].end:
                return spans[i]
            i -= 1
        return None

    out: list[_Region] = []
    text = doc.text
    for a, b in zip(bounds, bounds[1:]):
        if a >= b or not text[a:b].strip():
            continue
        section = covering(sections, sec_starts, a)
        page = covering(pages, page_starts, a)
        out.append(_Region(a, b, section.path if section is not None else (),
                           page.number if page is not None else None, _table_at(tables, table_starts, a)))
    return out


def _table_at(tables: list[Table], starts: list[int], pos: int) -> Table | None:
    """The table (sorted, not overlapping) whose rows after the header hold ``pos``."""
    i = bisect.bisect_right(starts, pos) - 1
    if i >= 0 and tables[i].header_end <= pos < tables[i].end:
        return tables[i]
    return None


def _mergeable(prev: tuple[str, ...], nxt: tuple[str, ...]) -> bool:
    """Siblings (same parent heading), or a heading's text followed by its subsection."""
    return prev[:-1] == nxt[:-1] or nxt[:len(prev)] == prev


@dataclass
class _Candidate:
    """A span to become one chunk (before measuring): ``section`` labels the chunk,
    ``last_path`` is the section of its last region (what the next region must follow)."""

    start: int
    end: int
    est: float
    section: tuple[str, ...]
    page: int | None
    last_path: tuple[str, ...]

    def accepts(self, region: _Region, size: float, budget: float) -> bool:
        """Whether ``size`` more tokens of ``region`` may join this span."""
        return (self.page == region.page and _mergeable(self.last_path, region.path)
                and self.est + size <= budget)


def split_document(doc: Document, *, count_tokens: Callable[[str], int], chunk_size: int = 200,
                   chunk_overlap: int = 30, max_tokens: int = 256) -> list[Chunk]:
    """Split a document into chunks for embedding and retrieval.

    Args:
        doc: the document (its ``sections`` and ``pages`` guide the split).
        count_tokens: the embedder's token counter (e.g. ``embedder.count_tokens``),
            called about once per chunk.
        chunk_size: target chunk size in tokens (clamped to ``max_tokens``).
        chunk_overlap: tokens shared by consecutive chunks of one section.
        max_tokens: hard limit in tokens, the embedder's maximum sequence length: no
            chunk measures more.

    Returns:
        Chunks in text order with ``index`` from 0, ``start``/``end`` character offsets
        (``doc.text[start:end] == text``), ``section`` (the heading path where the chunk
        starts, or the first non-empty one of merged small sections), ``page`` (paged
        sources), ``tokens`` (as measured by ``count_tokens``) and ``path``.

    Raises:
        ConfigError: ``chunk_size`` or ``max_tokens`` below 1, or ``chunk_overlap``
            negative or not smaller than ``chunk_size``.

    Example:
        >>> from knowbase.models.fake import fake_count_tokens
        >>> doc = Document(path="a.txt", text="One. Two. Three. Four.")
        >>> [c.text for c in split_document(doc, count_tokens=fake_count_tokens,
        ...                                 chunk_size=5, chunk_overlap=0)]
        ['One. Two.', 'Three. Four.']
    """
    if chunk_size < 1 or max_tokens < 1:
        raise ConfigError(f"chunk_size ({chunk_size}) and max_tokens ({max_tokens}) must be at least 1",
                          chunk_size=chunk_size, max_tokens=max_tokens)
    chunk_size = min(chunk_size, max_tokens)
    if chunk_overlap < 0 or chunk_overlap >= chunk_size:
        raise ConfigError(f"chunk_overlap ({chunk_overlap}) must be between 0 and chunk_size ({chunk_size}) - 1",
                          chunk_size=chunk_size, chunk_overlap=chunk_overlap)
    if not doc.text.strip():
        return []
    sp = _Splitter(doc.text, count_tokens, chunk_size, chunk_overlap, max_tokens)
    budget = max(chunk_size - sp.offset, 1)
    n = len(doc.text)
    # Tables whose header is repeated, and what the header costs (its tokens and newline).
    tables: list[Table] = []
    reserve: dict[Table, int] = {}
    for table in sorted(doc.tables, key=lambda t: t.start):
        if not (0 <= table.start < table.header_end < table.end <= n) or (tables and table.start < tables[-1].end):
            continue
        cost = sp.measure(doc.text[table.start:table.header_end] + "\n") - sp.offset
        if 0 < cost <= budget // 2:
            tables.append(table)
            reserve[table] = cost
    table_starts = [t.header_end for t in tables]

    def extra(pos: int) -> int:
        """Tokens a chunk starting at ``pos`` spends on a repeated table header."""
        table = _table_at(tables, table_starts, pos)
        return reserve[table] if table is not None else 0

    candidates: list[_Candidate] = []
    pending: _Candidate | None = None  # the last candidate, open to merging with what follows
    for region in _regions(doc, tables):
        size = sp.est(region.start, region.end)
        room = budget - (reserve[region.table] if region.table is not None else 0)
        if size <= room:
            if pending is not None and pending.accepts(region, size, budget):
                pending.end = region.end
                pending.est += size
                pending.last_path = region.path
                pending.section = pending.section or region.path
                continue
            if pending is not None:
                candidates.append(pending)
            pending = _Candidate(region.start, region.end, size + extra(region.start), region.path, region.page,
                                 region.path)
            continue
        pieces = sp.split(region.start, region.end, room)
        lead = region.path
        if pending is not None:
            if pending.accepts(region, sp.est(pieces[0][0], pieces[0][1]), budget):
                # A small section before a large one opens the large one's first chunk.
                pieces.insert(0, (pending.start, region.start, -1))
                lead = pending.section or region.path
            else:
                candidates.append(pending)
        spans = sp.pack(pieces, room, no_overlap_before=region.start)
        for s, e in spans:
            path = lead if s < region.start else region.path
            candidates.append(_Candidate(s, e, sp.est(s, e) + extra(s), path, region.page, region.path))
        pending = candidates.pop()
    if pending is not None:
        candidates.append(pending)

    chunks: list[Chunk] = []
    for cand in candidates:
        cost = extra(sp.trim(cand.start, cand.end)[0])
        for s, e, tokens in sp.verified(cand.start, cand.end, budget - cost, max_tokens=max(max_tokens - cost, 1)):
            if chunks and e <= chunks[-1].end:
                continue  # only overlap left after trimming: nothing new
            while chunks and s == chunks[-1].start:
                # The overlap of a span whose first piece was blank trims to the previous
                # chunk's start: this chunk contains that one, which goes.
                chunks.pop()
            if chunks and s < chunks[-1].start:
                # Overlap reaching back past a re-split neighbour: start after it instead.
                s, e = sp.trim(chunks[-1].end, e)
                tokens = sp.measure(doc.text[s:e])
            text = doc.text[s:e]
            holder = _table_at(tables, table_starts, s)
            if holder is not None:
                framed = doc.text[holder.start:holder.header_end] + "\n" + text
                framed_tokens = sp.measure(framed)
                if framed_tokens <= max_tokens:
                    text, tokens = framed, framed_tokens
            chunks.append(Chunk(text=text, start=s, end=e, index=len(chunks), section=cand.section,
                                page=cand.page, tokens=tokens, path=doc.path))
    return chunks


def split_text(text: str, *, count_tokens: Callable[[str], int], chunk_size: int = 200,
               chunk_overlap: int = 30, max_tokens: int = 256) -> list[Chunk]:
    """:func:`split_document` for a bare string (no sections, no pages)."""
    return split_document(Document(path="", text=text), count_tokens=count_tokens, chunk_size=chunk_size,
                          chunk_overlap=chunk_overlap, max_tokens=max_tokens)
