"""Reading text files: encoding detection, binary detection, normalisation.

Encoding detection order (cheapest and surest first):

1. a byte-order mark (UTF-32, UTF-8-SIG, UTF-16 LE/BE);
2. UTF-8 (most files; also plain ASCII), tolerating one invalid byte per 1,000 (each
   becomes U+FFFD) so a stray byte does not send a UTF-8 file to guessing;
3. charset-normalizer's best guess (https://github.com/jawah/charset_normalizer);
4. for short Chinese texts, where statistical detection has too little to go on,
   GB18030 and Big5 are tried strictly and scored by how many of the decoded characters
   are common Chinese characters.

Binary content behind a text extension is refused: a known file signature (PDF, ZIP,
PNG, ELF...), NUL bytes that are not UTF-16, no encoding that decodes, or too many
control characters after decoding.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from pathlib import Path

from knowbase.errors import InputFileError

__all__ = ["read_text", "decode_bytes", "normalize_text", "BINARY_SIGNATURES"]

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
_TRAILING_WS_RE = re.compile(r"[ \t]+\n")


def _fail(path: Path | str, reason: str) -> InputFileError:
    return InputFileError(f"{path}: {reason}", path=str(path), reason=reason)


def _binary_signature(data: bytes) -> str | None:
    for magic, name in BINARY_SIGNATURES:
        if data.startswith(magic):
            return name
    return None


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


def _pick(matches) -> str | None:
    """The most coherent match whose chaos is within tolerance of the best, preferring
    common encodings on ties."""
    if not matches:
        return None
    best = min(m.chaos for m in matches)
    near = [m for m in matches if m.chaos <= best + _CHAOS_TOLERANCE]
    coherent = max(m.coherence for m in near)
    near = [m for m in near if m.coherence >= coherent - 0.1]

    def key(m) -> tuple[float, int, float]:
        name = codecs.lookup(m.encoding).name.replace("-", "_")
        pref = _PREFERRED.index(name) if name in _PREFERRED else len(_PREFERRED)
        return (pref, m.chaos, -m.coherence)

    return min(near, key=key).encoding


def decode_bytes(data: bytes, *, path: Path | str = "<bytes>") -> tuple[str, str]:
    """Decode a text file's bytes.

    Args:
        data: the raw file content.
        path: used in error messages only.

    Returns:
        ``(text, encoding)``; ``text`` is not normalised yet (see :func:`normalize_text`).

    Raises:
        InputFileError: binary content (``reason`` starts with ``binary``) or no encoding
            that decodes the bytes (``reason`` starts with ``undecodable``).
    """
    for bom, enc in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(enc), ("utf-8-sig" if enc == "utf-8-sig" else
                                          f"{enc}-{'le' if bom[0] == 0xFF else 'be'}")
            except UnicodeDecodeError as exc:
                raise _fail(path, f"undecodable text: byte-order mark says {enc} but {exc.reason} "
                                  f"at byte {exc.start}") from exc
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
                return text16, enc16
        raise _fail(path, "binary content (NUL bytes), not text")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        utf8_error = exc
    lenient = data.decode("utf-8", errors="replace")
    if lenient.count("\ufffd") * 1000 <= len(data):
        # UTF-8 with a stray byte or two (a pasted cp1252 quote): keep it, mark the bytes.
        return lenient, "utf-8"
    from charset_normalizer import from_bytes

    guess = _pick(from_bytes(data))
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
    return text, codecs.lookup(guess).name


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


def read_text(path: Path) -> tuple[str, str]:
    """Read and decode a text file (not normalised).

    Returns:
        ``(text, encoding)``.

    Raises:
        InputFileError: unreadable (``permission denied``...), binary or undecodable.
    """
    try:
        data = path.read_bytes()
    except PermissionError as exc:
        raise _fail(path, "permission denied") from exc
    except OSError as exc:
        raise _fail(path, f"cannot read: {exc.strerror or exc}") from exc
    text, encoding = decode_bytes(data, path=path)
    controls = len(_CONTROL_RE.findall(text[:65536]))
    if controls > max(8, len(text[:65536]) // 50):
        raise _fail(path, "binary content (control characters), not text")
    return text, encoding
