"""Reading text files: encoding detection, binary detection, normalisation.

Encoding detection order (cheapest and surest first):

1. a byte-order mark (UTF-32, UTF-8-SIG, UTF-16 LE/BE);
2. UTF-8 (most files; also plain ASCII), tolerating one invalid byte per 1,000 (each
   becomes U+FFFD, with a warning) so a stray byte does not send a UTF-8 file to guessing;
3. Windows-1252 (a superset of the printable Latin-1), when the text it gives looks like
   Western European writing: every non-ASCII character a Latin-1 letter or common
   punctuation, accented letters mostly alone between ASCII letters (runs of three or
   more are what Cyrillic, Greek or CJK bytes look like in cp1252) and a minority of the
   letters. Statistical detectors mistake short French or German texts for exotic code
   pages (``CrÃ¨me`` read as cp775 gives ``CrĶme``); this rule comes first for that;
4. charset-normalizer's best guess (https://github.com/jawah/charset_normalizer), with a
   warning when it had several plausible answers that read differently or found the
   text chaotic;
5. for short Chinese texts, where statistical detection has too little to go on,
   GB18030 and Big5 are tried strictly and scored by how many of the decoded characters
   are common Chinese characters.

Binary content behind a text extension is refused: a known file signature (PDF, ZIP,
PNG, ELF...), NUL bytes that are not UTF-16, no encoding that decodes, or too many
control characters after decoding.

An explicit encoding (:func:`read_text` ``encoding=``) skips all detection: the bytes are
decoded with it strictly, and an error names the file and the first bad byte.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from pathlib import Path
from typing import NamedTuple

from knowbase.errors import InputFileError

__all__ = ["read_text", "decode_bytes", "decode_text", "DecodedText", "normalize_text", "BINARY_SIGNATURES"]


class DecodedText(NamedTuple):
    """A decoded text file: ``text`` (not normalised), the ``encoding`` used (a Python
    codec name) and ``warnings`` (e.g. an uncertain detection), each naming no file."""

    text: str
    encoding: str
    warnings: tuple[str, ...] = ()

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)

#: Magic numbers of common binary formats (file signatures, per each format's spec).
BINARY_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "PDF"), (b"PK\x03\x04", "ZIP/Office"), (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"), (b"\x7fELF", "ELF"),
    (b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"), (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"MZ", "Windows executable"), (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "OLE (old Office)"),
    (b"SQLite format 3\x00", "SQLite"), (b"\x00asm", "WebAssembly"), (b"RIFF", "RIFF media"),
)

_CHINESE_FAMILY = {"gb18030", "gbk", "gb2312", "hz", "big5", "big5hkscs", "cp950", "cp936"}

# About 300 of the most frequent Chinese characters, simplified and traditional forms
# (from the Jun Da Modern Chinese character frequency list), used only to choose
# between GB18030 and Big5 for short texts.
_COMMON_HAN = frozenset(
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过"
    "子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制"
    "机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正"
    "心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党"
    "程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角"
    "期根论运农指几九区强放决西被干做必战先回则任取据处府研容器节服务集群创删除配置网络存储"
    "這為個國們來時會對發動過說產種後學經進著電裡現實兩體機當點從業應開還義間樣與關線內數質氣"
    "變條沒結問題黨員總設長頭資邊級圖統較將組見計別論運農幾區強決戰則據處節務創刪網絡儲"
)

_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_BLANK_LINES_RE = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")
# Starts only at the beginning of a run of blanks: from inside a long run not followed by
# a newline every start would rescan the run (quadratic).
_TRAILING_WS_RE = re.compile(r"(?<![ \t])[ \t]++\n")

# Windows-1252 characters that Western European text uses: Latin-1 letters, the cp1252
# extras, common punctuation. Left out on purpose: superscripts and fractions, the
# currency sign and broken bar, which are Central European letters (ą ł Ľ ľ Ą Ş) in
# cp1250/ISO 8859-2, so text in those reads implausibly here.
_WESTERN_LETTERS = frozenset(
    "ÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖØÙÚÛÜÝÞßàáâãäåæçèéêëìíîïðñòóôõöøùúûüýþÿŒœŠšŽžŸ")
_WESTERN_OTHER = frozenset("‘’‚“”„–—…€•«»°·©®™§¶ªº¿¡£¢\xa0´¨¸¯±µ×÷†‡‰ˆ˜‹›")
_NON_ASCII_RUN_RE = re.compile(r"[^\x00-\x7f]+")
# Non-letters of cp1252 that Western text does not put before a letter inside a word (the
# apostrophe ’ and middle dot · it does: l’église, col·lecció).
_WORD_SYMBOLS = frozenset("‘“„‚–—…€•«»¶ªº¿¡£¢\xa0´¨¸¯±µ×÷†‡‰ˆ˜‹›§©®™")


def _fail(path: Path | str, reason: str) -> InputFileError:
    return InputFileError(f"{path}: {reason}", path=str(path), reason=reason)


def _binary_signature(data: bytes) -> str | None:
    for magic, name in BINARY_SIGNATURES:
        if data.startswith(magic):
            return name
    return None


def _textual(decoded: DecodedText, path: Path | str) -> DecodedText:
    """``decoded`` unless more than 1% of its first 32,768 characters are control characters
    (NUL, ESC...; tab, line breaks and form feed excepted): bytes behind a byte-order mark
    that are not text (found by a new user: an FF FE mark and binary junk was indexed as
    Chinese mojibake).

    Raises:
        InputFileError: ``reason`` starts with ``binary``.
    """
    head = decoded.text[:32768]
    if head and len(_CONTROL_RE.findall(head)) > max(1, len(head) // 100):
        raise _fail(path, f"binary content (control characters when read as {decoded.encoding}), not text")
    return decoded


def _looks_utf16(sample: bytes) -> str | None:
    """``utf-16-le``/``utf-16-be`` for BOM-less UTF-16: the byte order under which more
    characters decode to ASCII (the other order turns ASCII into U+xx00 code points),
    provided at least 5% do."""
    sample = sample[: len(sample) - len(sample) % 2]
    best: tuple[int, str] | None = None
    for enc in ("utf-16-le", "utf-16-be"):
        text = sample.decode(enc, errors="replace")
        ascii_count = sum(1 for c in text if " " <= c <= "~" or c in "\n\t")
        if ascii_count >= len(text) // 20 and (best is None or ascii_count > best[0]):
            best = (ascii_count, enc)
    return best[1] if best else None


def _han_score(text: str) -> float:
    han = [c for c in text if ord(c) > 0x2E7F]
    if not han:
        return 0.0
    if any(not (0x3000 <= ord(c) <= 0x303F or 0x4E00 <= ord(c) <= 0x9FFF or 0xFF00 <= ord(c) <= 0xFFEF)
           for c in han):
        return -1.0
    return sum(c in _COMMON_HAN for c in han) / len(han)


def _chinese_guess(data: bytes, first_guess: str | None) -> str | None:
    """Pick GB18030 or Big5 for a text whose statistical guess is unreliable."""
    best: tuple[float, str] | None = None
    for enc in ("gb18030", "big5"):
        try:
            text = data.decode(enc)
        except UnicodeDecodeError:
            continue
        score = _han_score(text) + (0.01 if first_guess and codecs.lookup(first_guess).name == enc else 0)
        if score > 0 and (best is None or score > best[0]):
            best = (score, enc)
    return best[1] if best else None


# Encodings preferred when charset-normalizer finds several equally plausible ones (short
# texts): the common encodings of Chinese, Japanese, Korean, then Western/Cyrillic/Central
# European Windows code pages.
_PREFERRED = ("utf_8", "utf_16", "utf_32", "gb18030", "big5", "cp932", "shift_jis", "euc_jp", "cp949",
              "euc_kr", "cp1252", "latin_1", "cp1251", "koi8_r", "cp1250", "iso8859_2", "cp1253",
              "cp1254", "cp1255", "cp1256")
_CHAOS_TOLERANCE = 0.15


def _western(data: bytes) -> bool:
    """Whether ``data`` read as Windows-1252 looks like Western European writing (see
    the module docstring, step 3)."""
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        return False
    accented = 0
    for c in text:
        if c > "\x7f":
            if c in _WESTERN_LETTERS:
                accented += 1
            elif c not in _WESTERN_OTHER:
                return False
    if not accented:
        return True
    letters = sum(1 for c in text if c.isalpha())
    if accented * 3 > letters:  # French, among the most accented, has about 1 in 25
        return False
    runs = _NON_ASCII_RUN_RE.findall(text)
    long_runs = sum(1 for r in runs if len(r) >= 3 and sum(c in _WESTERN_LETTERS for c in r) >= 2)
    if long_runs * 20 > len(runs):
        return False
    # Central European letters that cp1252 shows as symbols or capitals: 'du¿ym', '£ódŸ'
    # (Polish "dużym", "Łódź" in cp1250). A symbol inside or at the start of a word, or
    # a non-ASCII capital after a small letter, is odd in Western text.
    odd = 0
    for m in _NON_ASCII_RUN_RE.finditer(text):
        for k in range(m.start(), m.end()):
            c = text[k]
            before = text[k - 1] if k else " "
            after = text[k + 1] if k + 1 < len(text) else " "
            if c in _WESTERN_LETTERS:
                odd += c.isupper() and before.islower()
            elif c in _WORD_SYMBOLS:
                odd += after.isalpha() and (before.isalpha() or c not in "¿¡«“‘„‚")
    return odd <= max(1, accented // 20)


def _near(matches) -> list:
    """Matches whose chaos is within tolerance of the least and whose coherence is within
    0.1 of the most coherent of those."""
    if not matches:
        return []
    best = min(m.chaos for m in matches)
    near = [m for m in matches if m.chaos <= best + _CHAOS_TOLERANCE]
    coherent = max(m.coherence for m in near)
    return [m for m in near if m.coherence >= coherent - 0.1]


def _pick(matches) -> str | None:
    """The most coherent match whose chaos is within tolerance of the best, preferring
    common encodings on ties."""
    near = _near(matches)
    if not near:
        return None

    def key(m) -> tuple[float, int, float]:
        name = codecs.lookup(m.encoding).name.replace("-", "_")
        pref = _PREFERRED.index(name) if name in _PREFERRED else len(_PREFERRED)
        return (pref, m.chaos, -m.coherence)

    return min(near, key=key).encoding


def decode_bytes(data: bytes, *, path: Path | str = "<bytes>", encoding: str | None = None) -> tuple[str, str]:
    """``(text, encoding)`` of :func:`decode_text` (without its warnings)."""
    decoded = decode_text(data, path=path, encoding=encoding)
    return decoded.text, decoded.encoding


def _explicit(data: bytes, encoding: str, path: Path | str) -> DecodedText:
    try:
        name = codecs.lookup(encoding).name
    except LookupError as exc:
        raise _fail(path, f"unknown encoding {encoding!r}") from exc
    kind = _binary_signature(data)
    if kind:
        raise _fail(path, f"binary content ({kind} file signature), not text")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise _fail(path, f"undecodable text: not {name} ({exc.reason} at byte {exc.start})") from exc
    return DecodedText(text.removeprefix("\ufeff"), name)


def decode_text(data: bytes, *, path: Path | str = "<bytes>", encoding: str | None = None) -> DecodedText:
    """Decode a text file's bytes, detecting the encoding unless one is given.

    Args:
        data: the raw file content.
        path: used in error messages only.
        encoding: decode with this codec, strictly; no detection.

    Returns:
        :class:`DecodedText`; ``text`` is not normalised yet (see :func:`normalize_text`),
        ``warnings`` says when the detection was unsure.

    Raises:
        InputFileError: binary content (``reason`` starts with ``binary``) or no encoding
            that decodes the bytes (``reason`` starts with ``undecodable``).
    """
    if encoding:
        return _explicit(data, encoding, path)
    for bom, enc in _BOMS:
        if data.startswith(bom):
            try:
                decoded = DecodedText(data.decode(enc), ("utf-8-sig" if enc == "utf-8-sig" else
                                                         f"{enc}-{'le' if bom[0] == 0xFF else 'be'}"))
            except UnicodeDecodeError as exc:
                raise _fail(path, f"undecodable text: byte-order mark says {enc} but {exc.reason} "
                                  f"at byte {exc.start}") from exc
            return _textual(decoded, path)
    kind = _binary_signature(data)
    if kind:
        raise _fail(path, f"binary content ({kind} file signature), not text")
    sample = data[:65536]
    if sample.count(0) > max(1, len(sample) // 100):
        enc16 = _looks_utf16(sample)
        if enc16:
            try:
                text16 = data.decode(enc16)
            except UnicodeDecodeError:
                text16 = ""
            if text16 and len(_CONTROL_RE.findall(text16[:32768])) <= len(text16[:32768]) // 100:
                return DecodedText(text16, enc16)
        raise _fail(path, "binary content (NUL bytes), not text")
    try:
        return DecodedText(data.decode("utf-8"), "utf-8")
    except UnicodeDecodeError as exc:
        utf8_error = exc
    lenient = data.decode("utf-8", errors="replace")
    bad = lenient.count("\ufffd") - data.count("\ufffd".encode())
    if bad * 1000 <= len(data):
        # UTF-8 with a stray byte or two (a pasted cp1252 quote): keep it, mark the bytes.
        return DecodedText(lenient, "utf-8", (f"{bad} byte(s) not valid UTF-8 replaced by U+FFFD "
                                              f"(first at byte {utf8_error.start}); pass an explicit "
                                              "encoding if the file is not UTF-8",))
    if _western(data):
        return DecodedText(data.decode("cp1252"), "cp1252")
    from charset_normalizer import from_bytes

    matches = from_bytes(data)
    guess = _pick(matches)
    warnings: list[str] = []
    if guess is None or len(data) < 2048:
        # Too little text for statistics: try GB18030 and Big5 by common characters
        # (unless the guess reads as Japanese kana).
        try:
            kana = guess is not None and re.search("[\u3040-\u30ff]", data.decode(guess)) is not None
        except (UnicodeDecodeError, LookupError):
            kana = False
        if not kana:
            guess = _chinese_guess(data, guess) or guess
    if guess is None:
        raise _fail(path, f"undecodable text: not UTF-8 ({utf8_error.reason} at byte {utf8_error.start}) "
                          "and no other encoding fits (binary?)")
    try:
        text = data.decode(guess)
    except (UnicodeDecodeError, LookupError) as exc:
        raise _fail(path, f"undecodable text: best guess {guess} fails ({exc})") from exc
    name = codecs.lookup(guess).name
    others = _rivals(data, text, matches, name)
    if others:
        warnings.append(f"encoding uncertain: read as {name}, but {', '.join(others)} also fit "
                        "and read differently; pass an explicit encoding if the text looks wrong")
    return DecodedText(text, name, tuple(warnings))


def _rivals(data: bytes, text: str, matches, chosen: str) -> list[str]:
    """Other encodings as plausible as the chosen one (see :func:`_near`) whose reading of
    ``data`` differs from ``text``; at most three."""
    out: list[str] = []
    for m in _near(matches):
        name = codecs.lookup(m.encoding).name
        if name == chosen or name in out:
            continue
        try:
            if data.decode(name) == text:
                continue
        except (UnicodeDecodeError, LookupError):
            continue
        out.append(name)
        if len(out) == 3:
            break
    return out


def normalize_text(text: str) -> str:
    """Normalise extracted text: NFC, CRLF/CR to LF, NUL and other control characters
    removed (tab, newline and form feed kept; form feed becomes a newline), trailing
    spaces dropped, runs of blank lines collapsed to one blank line, outer whitespace
    stripped.

    Example:
        >>> normalize_text("a\\r\\n\\r\\n\\r\\n\\r\\nb\\x00c  \\r\\n")
        'a\\n\\nbc'
    """
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\f" in text:
        text = text.replace("\f", "\n")
    text = _CONTROL_RE.sub("", text)
    if not text.isascii() and not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    if " \n" in text or "\t\n" in text:
        text = _TRAILING_WS_RE.sub("\n", text)
    if "\n\n\n" in text or "\n \n" in text or "\n\t\n" in text:
        text = _BLANK_LINES_RE.sub("\n\n", text)
    return text.strip()


def read_text(path: Path, encoding: str | None = None) -> DecodedText:
    """Read and decode a text file (not normalised).

    Args:
        path: the file.
        encoding: its encoding; None detects it (see the module docstring).

    Returns:
        :class:`DecodedText` ``(text, encoding, warnings)``.

    Raises:
        InputFileError: unreadable (``permission denied``...), binary or undecodable.
    """
    try:
        data = path.read_bytes()
    except PermissionError as exc:
        raise _fail(path, "permission denied") from exc
    except OSError as exc:
        raise _fail(path, f"cannot read: {exc.strerror or exc}") from exc
    decoded = decode_text(data, path=path, encoding=encoding)
    text = decoded.text
    controls = len(_CONTROL_RE.findall(text[:65536]))
    if controls > max(8, len(text[:65536]) // 50):
        raise _fail(path, "binary content (control characters), not text")
    return decoded
