"""Cheap language detection for English and Chinese text (no dependencies).

The knowledge base needs one bit of language information: is a text mostly Chinese
(so it needs word segmentation before BM25, and an answer in Chinese) or not. Counting
script classes is enough for that and costs one pass over a bounded prefix.

Example:
    >>> detect_language("Pod 是 Kubernetes 中最小的可部署单元。")
    'zh'
    >>> detect_language("A Pod is the smallest deployable unit.")
    'en'
"""

from __future__ import annotations

import re

__all__ = ["detect_language", "is_cjk", "is_cjk_ideograph", "CJK_CLASS"]

# Unicode blocks (Unicode 15 code charts): CJK Unified Ideographs and Extension A,
# Compatibility Ideographs, Extensions B-F (U+20000-U+2FA1F), CJK Symbols and
# Punctuation, Hiragana/Katakana, Hangul Syllables, Halfwidth and Fullwidth Forms.
_IDEOGRAPH_RANGES = (
    (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x2FA1F),
)
_OTHER_CJK_RANGES = (
    (0x3000, 0x303F), (0x3040, 0x30FF), (0xAC00, 0xD7AF), (0xFF00, 0xFFEF),
)

#: A regex character class matching every character :func:`is_cjk` accepts.
CJK_CLASS = ("[\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af"
             "\uf900-\ufaff\uff00-\uffef\U00020000-\U0002fa1f]")

_IDEOGRAPH_RE = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f]")
_LATIN_WORD_RE = re.compile(r"[A-Za-z\u00c0-\u024f]+")

# Texts longer than this are judged on an evenly spaced sample of this many characters.
_SAMPLE_CHARS = 20_000


def is_cjk_ideograph(ch: str) -> bool:
    """True for a Han ideograph (Chinese character, Japanese kanji, Korean hanja)."""
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _IDEOGRAPH_RANGES)


def is_cjk(ch: str) -> bool:
    """True for a CJK character: Han ideographs, kana, Hangul syllables, CJK punctuation
    (。，、「」...) and full-width forms (！？；...).

    These scripts are written without spaces between words, so the splitter may cut
    between any two of them.

    Args:
        ch: a single character.
    """
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _IDEOGRAPH_RANGES) or any(
        lo <= cp <= hi for lo, hi in _OTHER_CJK_RANGES)


def detect_language(text: str) -> str:
    """``"zh"`` when Chinese characters dominate ``text``, else ``"en"``.

    A Chinese word is one or two characters, so the rule compares the number of Han
    ideographs with the number of Latin-script words: ``zh`` when there are at least half
    as many ideographs as words. Code, YAML and English product names in a Chinese page
    (as in the Kubernetes zh-cn docs, some of which are half code) therefore do not flip
    it to English, while a Chinese term or two in English prose does not flip it to
    Chinese. Text with neither (digits, symbols, empty) is ``en``.

    Args:
        text: any text; only an evenly spaced sample of about 20,000 characters (ten
            windows) is read.

    Returns:
        ``"zh"`` or ``"en"``.
    """
    if len(text) > _SAMPLE_CHARS:
        step = len(text) // 10
        part = _SAMPLE_CHARS // 10
        text = "\n".join(text[i:i + part] for i in range(0, len(text), step))
    han = len(_IDEOGRAPH_RE.findall(text))
    if not han:
        return "en"
    words = len(_LATIN_WORD_RE.findall(text))
    return "zh" if 2 * han >= words else "en"
