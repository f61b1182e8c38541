"""Tokenisation for BM25: the same function prepares chunks for the FTS5 index and queries.

English (and any non-CJK text) follows the default English pipeline of the ``bm25s``
library (Lù 2024, https://github.com/xhluca/bm25s): lowercase, tokens matching
``(?u)\\b\\w\\w+\\b``, the 33 Lucene English stopwords removed, then the Snowball English
stemmer (PyStemmer, as the bm25s README uses). Chinese runs are segmented with jieba in
its default (precise, HMM on) mode; single-character CJK function words in
:data:`STOPWORDS_ZH` are dropped. Mixed text (Chinese pages full of English API names)
is handled run by run, so ``Pod 的生命周期`` gives ``["pod", "生命周期"]``.

The tokens are joined by spaces and stored in an FTS5 table whose ``unicode61`` tokenizer
then only splits on the spaces (see :mod:`knowbase.knowledge.store`), so SQLite's BM25
(k1=1.2, b=0.75) counts exactly these tokens.

Example::

    >>> tokenize("The Pods are running")
    ['pod', 'run']
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence
from functools import lru_cache

# Lucene's English stopword set (the ``english`` list of bm25s, 33 words).
STOPWORDS_EN = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there these "
    "they this to was will with".split()
)
# Chinese function characters that carry no topic (a short, conservative list).
STOPWORDS_ZH = frozenset("的 了 和 是 在 与 及 或 也 就 都 而 被 把 对 于 之 其 为 以 将 从 这 那 个 中 上 下 不 有 我 你 他 它".split())

_WORD = re.compile(r"(?u)\b\w\w+\b")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef]+")
_JIEBA_LOCK = threading.Lock()
_jieba = None


def _segmenter():  # jieba builds its prefix dictionary on first use (about 1 s); once per process
    global _jieba
    if _jieba is None:
        with _JIEBA_LOCK:
            if _jieba is None:
                import logging

                import jieba

                jieba.setLogLevel(logging.WARNING)
                jieba.initialize()
                _jieba = jieba
    return _jieba


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def has_cjk(text: str) -> bool:
    """True when ``text`` contains any CJK ideograph."""
    return _CJK.search(text) is not None


def _latin_tokens(text: str) -> list[str]:
    words = [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS_EN]
    return _stemmer().stemWords(words) if words else []


def warm_segmenter() -> None:
    """Load jieba's dictionary in a background thread (about 0.8 s of one core), so that a
    Chinese query's tokenization overlaps other work instead of waiting for it. No-op once
    loaded."""
    if _jieba is None:
        threading.Thread(target=_segmenter, name="knowbase-jieba-load", daemon=True).start()


def tokenize(text: str, *, cjk: bool = True) -> list[str]:
    """BM25 tokens of ``text`` (English stemmed, Chinese segmented), in order.

    Args:
        text: any text; empty gives ``[]``.
        cjk: False drops the Chinese parts without segmenting them (the Latin tokens are
            the same as with True). Enough for matching the terms of a question without
            Chinese, and it spares loading jieba's dictionary.

    Returns:
        list of tokens; each contains only word characters and no spaces.
    """
    if not has_cjk(text):
        return _latin_tokens(text)
    if not cjk:
        return _latin_tokens(_CJK.sub(" ", text))
    out: list[str] = []
    pos = 0
    for match in _CJK.finditer(text):
        if match.start() > pos:
            out.extend(_latin_tokens(text[pos:match.start()]))
        for word in _segmenter().lcut(match.group(), HMM=True):
            if word not in STOPWORDS_ZH:
                out.append(word)
        pos = match.end()
    if pos < len(text):
        out.extend(_latin_tokens(text[pos:]))
    return out


def tokenize_many(texts: Iterable[str]) -> list[list[str]]:
    """:func:`tokenize` for each text."""
    return [tokenize(t) for t in texts]


def fts_query(tokens: Iterable[str]) -> str:
    """An FTS5 MATCH expression: any of the (distinct) tokens, each quoted as a string.

    Returns ``""`` when there are no tokens (the caller must then skip the query).
    """
    seen = dict.fromkeys(t.replace('"', '""') for t in tokens if t)
    return " OR ".join(f'"{t}"' for t in seen)


# Words that make a sentence a question but say nothing about its topic; left out of the
# coverage signal (and of the BM25 query). English words pass through the BM25 stemmer first.
_QUESTION_WORDS_EN = ("what which who whom whose when where why how do does did can could should would shall may "
                      "might must i you we they he she me my your our us them please tell explain describe mean "
                      "happen happens get use used using many much often long")
_QUESTION_WORDS_ZH = "什么 怎么 怎样 怎么样 如何 哪里 哪儿 哪些 哪个 为什么 为何 吗 呢 是否 多少 多久 几 请问 请 告诉 介绍 一下 可以 能 会"


@lru_cache(maxsize=1)
def question_words() -> frozenset[str]:
    """BM25 tokens of common question words (English stemmed, Chinese as is)."""
    return frozenset(tokenize(_QUESTION_WORDS_EN)) | frozenset(_QUESTION_WORDS_ZH.split())


def topic_tokens(query_tokens: Sequence[str]) -> list[str]:
    """``query_tokens`` without question words (all of them when nothing else is left)."""
    qw = question_words()
    kept = [t for t in query_tokens if t not in qw]
    return kept or list(query_tokens)


def query_tokens(query: str) -> list[str]:
    """BM25 tokens of a search query: :func:`tokenize`, less Chinese question words.

    English question words are already stop words (bm25s's English list); Chinese ones
    (什么, 如何, 哪些...) are not, and in a corpus where the topic word is everywhere
    (``Pod`` in Kubernetes docs) a rarer question word would otherwise decide the ranking.
    """
    tokens = tokenize(query)
    zh = _zh_question_words()
    kept = [t for t in tokens if t not in zh]
    return kept or tokens


@lru_cache(maxsize=1)
def _zh_question_words() -> frozenset[str]:
    return frozenset(_QUESTION_WORDS_ZH.split())


#: The version of :func:`tokenize` recorded in a knowledge base's meta; a search index built
#: with another version is rebuilt.
TOKENIZER_VERSION = "bm25s-en-snowball+jieba/1"
