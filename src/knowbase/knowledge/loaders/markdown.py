"""Markdown loader: front matter, headings as sections, Hugo/Jekyll markup removed.

What reaches :attr:`Document.text`:

* front matter (YAML ``---`` or TOML ``+++``) becomes metadata; its ``title`` becomes the
  title and, with ``description``, the first lines of the text. YAML is checked before it
  is loaded (:func:`knowbase.safety.files.check_yaml`: nesting, aliases, nodes after alias
  expansion; over a limit the file is refused), and front matter larger than
  ``max_metadata_bytes`` as JSON is ignored with a warning;
* HTML comments are removed (the Kubernetes zh-cn pages keep the English original in
  ``<!-- -->``; it must not be indexed twice), except inside fenced code;
* Hugo shortcodes: ``{{< glossary_tooltip text="Pod" ... >}}`` keeps its visible text,
  paired ones (``{{< note >}}...{{< /note >}}``) keep their inner text, ``{{< comment >}}``
  blocks are dropped, ``{{% heading "whatsnext" %}}`` becomes the heading it renders;
  Liquid/Jekyll tags ``{% ... %}`` are removed outside code;
* ATX and setext headings open sections (path = enclosing headings), heading anchors
  ``{#id}`` are removed;
* links, images, emphasis and inline-code markers are reduced to their text; known HTML
  tags are stripped; soft line breaks inside a paragraph are joined (with nothing
  between two Chinese characters, with a space otherwise);
* fenced code blocks keep their text (fence lines dropped).
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import re
from pathlib import Path
from typing import Any

from knowbase.knowledge.language import CJK_CLASS, detect_language
from knowbase.knowledge.loaders._builder import TextBuilder
from knowbase.knowledge.loaders._text import normalize_text, read_text
from knowbase.knowledge.loaders.options import LoadOptions
from knowbase.knowledge.types import Document
from knowbase.safety.files import FileLimitError, FileLimits, check_yaml

__all__ = ["MarkdownLoader", "markdown_to_document", "strip_comments_and_shortcodes"]

# --- front matter ------------------------------------------------------------------------
_YAML_FM_RE = re.compile(r"\A---[ \t]*\n(.*?)\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)
_TOML_FM_RE = re.compile(r"\A\+\+\+[ \t]*\n(.*?)\n\+\+\+[ \t]*(?:\n|\Z)", re.S)


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (_dt.date, _dt.datetime, _dt.time)):
        return value.isoformat()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _front_matter(text: str, path: str = "<markdown>",
                  limits: FileLimits | None = None) -> tuple[dict[str, Any], str, list[str]]:
    """``(metadata, body, warnings)``; a malformed or oversized block is dropped with a
    warning.

    Raises:
        FileLimitError: YAML over a limit of :func:`~knowbase.safety.files.check_yaml`.
    """
    limits = limits or FileLimits()
    m = _YAML_FM_RE.match(text)
    kind = "YAML"
    if m is None:
        m = _TOML_FM_RE.match(text)
        kind = "TOML"
    if m is None:
        return {}, text, []
    body = text[m.end():]
    try:
        if kind == "YAML":
            import yaml

            check_yaml(m.group(1), path, limits)
            data = yaml.load(m.group(1), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        else:
            import tomllib

            data = tomllib.loads(m.group(1))
    except FileLimitError:
        raise
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return {}, body, [f"front matter ignored: invalid {kind} ({first})"]
    if not isinstance(data, dict):
        return {}, body, [] if data is None else [f"front matter ignored: {kind} is not a mapping"]
    meta = _json_safe(data)
    size = len(json.dumps(meta, ensure_ascii=False).encode("utf-8"))
    if size > limits.max_metadata_bytes:
        return {}, body, [f"front matter ignored: {size:,} bytes as JSON > {limits.max_metadata_bytes:,} "
                          "(limit max_metadata_bytes)"]
    return meta, body, []


# --- comments and shortcodes ---------------------------------------------------------------
# Every pattern here is linear in its input: a lazy body never runs past the next opening
# delimiter (so an unclosed opener scans only to the next opener, not to the end of the
# text), runs are matched possessively (``++``) or only from their first character.
_COMMENT_OPEN_RE = re.compile(r"\{\{<\s*+comment\s*+>\}\}")
_COMMENT_CLOSE_RE = re.compile(r"\{\{<\s*+/comment\s*+>\}\}")
_SHORTCODE_RE = re.compile(r"\{\{([<%])\s*+(?:(/)\s*+)?([\w-]++)((?:[^{}>%]|[>%](?!\}\}))*+)[>%]\}\}")
_ESCAPED_SHORTCODE_RE = re.compile(r"\{\{([<%])/\*((?:[^*{]|\*(?!/)|\{(?!\{))*+)\*/([>%])\}\}")
_ATTR_RE = re.compile(r'(?<![\w-])([\w-]++)\s*+=\s*+(?:"([^"]*+)"|\'([^\']*+)\'|(\S++))')
_POSITIONAL_RE = re.compile(r'^\s*"([^"]*)"|^\s*(\S+)')
_LIQUID_RE = re.compile(r"(?<!\{)\{%(?:[^%{]|%(?!\})|\{(?!%))*+%\}(?!\})")

#: Names of the Kubernetes site's ``heading`` shortcode (i18n/en.toml, i18n/zh-cn.toml).
HEADINGS = {
    "en": {"prerequisites": "Before you begin", "whatsnext": "What's next", "objectives": "Objectives",
           "cleanup": "Clean up", "synopsis": "Synopsis", "options": "Options", "seealso": "See also",
           "options_from_parent": "Options inherited from parent commands", "body": "Body",
           "parameters": "Parameters", "response": "Response", "httprequest": "HTTP Request"},
    "zh": {"prerequisites": "准备开始", "whatsnext": "接下来", "objectives": "教程目标",
           "cleanup": "清理现场", "synopsis": "概要", "options": "选项", "seealso": "另请参见",
           "options_from_parent": "从父命令继承而来的选项", "body": "主体", "parameters": "参数",
           "response": "响应", "httprequest": "HTTP 请求"},
}


def _attrs(args: str) -> dict[str, str]:
    return {m.group(1): next(g for g in m.groups()[1:] if g is not None) for m in _ATTR_RE.finditer(args)}


def _positional(args: str) -> str:
    m = _POSITIONAL_RE.match(args)
    return (m.group(1) if m.group(1) is not None else m.group(2)) if m else ""


def _render_shortcode(m: re.Match[str], lang: str) -> str:
    closing, name, args = m.group(2), m.group(3).lower(), m.group(4)
    if closing:
        return ""
    if name == "glossary_tooltip":
        return _attrs(args).get("text", "")
    if name == "heading":
        key = _positional(args)
        return HEADINGS.get(lang, HEADINGS["en"]).get(key, HEADINGS["en"].get(key, key.capitalize()))
    if name == "feature-state":
        a = _attrs(args)
        version = a.get("for_k8s_version", "")
        state = a.get("state", "")
        return f"FEATURE STATE: Kubernetes {version} [{state}]".replace("  ", " ") if (version or state) else ""
    if name in ("figure", "link", "relref", "ref"):
        a = _attrs(args)
        return a.get("caption") or a.get("text") or a.get("alt") or ""
    return ""


def _strip_html_comments(text: str) -> str:
    """Remove ``<!-- ... -->`` outside fenced code; a line that held only a comment is
    dropped. An unclosed comment is left as text."""
    out: list[str] = []
    fence = ""
    comment_from = -1  # index in ``lines`` where an open comment began
    lines = text.split("\n")
    for i, line in enumerate(lines):
        original = line
        if comment_from >= 0:
            end = line.find("-->")
            if end < 0:
                continue
            line = line[end + 3:]
            comment_from = -1
            if not line.strip():
                continue
        if fence:
            out.append(line)
            if line.strip().startswith(fence) and not line.strip().strip(fence[0]):
                fence = ""
            continue
        head = line.lstrip()
        if head.startswith(("```", "~~~")):
            fence = head[:3]
            out.append(line)
            continue
        if "<!--" in line:  # one pass over the line, however many comments it holds
            kept: list[str] = []
            pos = 0
            while (start := line.find("<!--", pos)) >= 0:
                kept.append(line[pos:start])
                end = line.find("-->", start + 4)
                if end < 0:
                    comment_from = i
                    pos = len(line)
                    break
                pos = end + 3
            kept.append(line[pos:])
            line = "".join(kept)
        if line.strip() or not original.strip():
            out.append(line)
    if comment_from >= 0:  # never closed: not a comment after all
        out.extend(lines[comment_from:])
    return "\n".join(out)


def strip_comments_and_shortcodes(text: str, *, lang: str | None = None) -> str:
    """Remove HTML comments (outside fenced code), Hugo shortcodes and Liquid tags.

    Escaped shortcodes (``{{</* note */>}}``) stay literal inside fenced code, where they
    show the syntax; in prose (an upstream slip, seen in the Kubernetes zh-cn pages)
    they are rendered like ordinary ones.

    Args:
        text: Markdown source (LF line ends).
        lang: language for the names of ``{{% heading %}}`` shortcodes (``en``/``zh``);
            detected from the text (comments removed) when None.

    Example:
        >>> strip_comments_and_shortcodes(
        ...     '<!-- A Pod -->一个 {{< glossary_tooltip text="Pod" term_id="pod" >}}')
        '一个 Pod'
    """
    if "comment" in text:
        text = _drop_comment_shortcodes(text)
    if "<!--" in text:
        text = _strip_html_comments(text)
    if "{{" in text:
        language = lang or detect_language(text)

        def render(m: re.Match[str]) -> str:
            return _render_shortcode(m, language)

        text = _SHORTCODE_RE.sub(render, text)
        if "/*" in text:
            text = _outside_code(
                text, lambda seg: _SHORTCODE_RE.sub(render, _ESCAPED_SHORTCODE_RE.sub(r"{{\1\2\3}}", seg)),
                inside=lambda seg: _ESCAPED_SHORTCODE_RE.sub(r"{{\1\2\3}}", seg))
    if "{%" in text:
        text = _outside_code(text, lambda seg: _LIQUID_RE.sub("", seg))
    return text


def _drop_comment_shortcodes(text: str) -> str:
    """Remove ``{{< comment >}}...{{< /comment >}}`` blocks (one pass; an unclosed
    opener is left as it is)."""
    out: list[str] = []
    pos = 0
    while (m := _COMMENT_OPEN_RE.search(text, pos)) is not None:
        close = _COMMENT_CLOSE_RE.search(text, m.end())
        if close is None:
            break
        out.append(text[pos:m.start()])
        pos = close.end()
    out.append(text[pos:])
    return "".join(out)


def _outside_code(text: str, outside, *, inside=None) -> str:
    """Apply ``outside`` to the text between fenced code blocks (and ``inside``, if
    given, to the blocks)."""
    out: list[str] = []
    pos = 0
    for m in _FENCE_RE.finditer(text):
        out.append(outside(text[pos:m.start()]))
        out.append(inside(m.group(0)) if inside else m.group(0))
        pos = m.end()
    out.append(outside(text[pos:]))
    return "".join(out)


_FENCE_RE = re.compile(r"^[ \t]*+(`{3,}+|~{3,}+)[^\n]*+\n.*?(?:^[ \t]*+\1[`~]*+[ \t]*+$|\Z)", re.S | re.M)

# --- inline markup -----------------------------------------------------------------------------
_HTML_TAGS = (
    "a|abbr|b|big|blockquote|body|br|caption|center|cite|code|col|colgroup|dd|del|details|div|dl|dt|em|"
    "figcaption|figure|font|h[1-6]|head|hr|html|i|iframe|img|ins|kbd|li|mark|nobr|ol|p|picture|pre|q|s|"
    "samp|section|small|source|span|strike|strong|sub|summary|sup|table|tbody|td|tfoot|th|thead|tr|tt|"
    "u|ul|var|video|wbr")
_TAG_RE = re.compile(rf"</?(?:{_HTML_TAGS})(?:\s[^<>]*)?/?>", re.I)
_BR_RE = re.compile(r"<br\s*/?>", re.I)
# Inline patterns, each linear in the line: the text between delimiters cannot contain
# the opening delimiter, so an unclosed opener's scan stops at the next one instead of
# running to the end of the line (``*a *a *a ...`` was quadratic).
_IMAGE_RE = re.compile(r"!\[([^\[\]]*+)\]\((?:[^()\s]|\([^()]*+\))*+(?:\s++\"[^\"]*+\")?\)")
_LINK_RE = re.compile(r"\[([^\[\]]++)\]\((?:[^()\[]|\([^()]*+\))*+\)")
_REF_LINK_RE = re.compile(r"\[([^\[\]]++)\]\[[^\[\]]*+\]")
_AUTOLINK_RE = re.compile(r"<((?:https?|ftp|mailto):[^>\s]++)>")
_STRONG_RE = re.compile(r"(\*\*|__)(?=\S)((?:(?!\1).)+?)(?<=\S)\1")
_EM_RE = re.compile(r"\*(?<![\w*\\]\*)(?=[^\s*])([^*]+?)(?<=[^\s*\\])\*(?![\w*])")
_UNDERSCORE_EM_RE = re.compile(r"_(?<!\w_)(?=[^\s_])([^_]+?)(?<=[^\s_])_(?!\w)")
_STRIKE_RE = re.compile(r"~~(?=\S)((?:(?!~~).)+?)(?<=\S)~~")
_CODE_SPAN_RE = re.compile(r"(?<!`)(`{1,16})(?!`)((?:[^`]|(?!\1)`++)+?)\1(?!`)")
_ANCHOR_RE = re.compile(r"\{#[^{}]*+\}\s*+$")


def clean_inline(text: str) -> str:
    """Reduce inline Markdown and HTML to plain text.

    Example:
        >>> clean_inline("See [the **Pod** docs](/docs/pods/) and `kubectl get`<br>now")
        'See the Pod docs and kubectl get now'
    """
    if "`" in text:
        text = _CODE_SPAN_RE.sub(lambda m: m.group(2).strip(), text)
    if "[" in text:
        text = _IMAGE_RE.sub(r"\1", text)
        text = _LINK_RE.sub(r"\1", text)
        text = _REF_LINK_RE.sub(r"\1", text)
    if "<" in text:
        text = _AUTOLINK_RE.sub(r"\1", text)
        text = _BR_RE.sub(" ", text)
        text = _TAG_RE.sub("", text)
    if "**" in text or "__" in text:
        text = _STRONG_RE.sub(r"\2", text)
    if "*" in text:
        text = _EM_RE.sub(r"\1", text)
    if "_" in text:
        text = _UNDERSCORE_EM_RE.sub(r"\1", text)
    if "~~" in text:
        text = _STRIKE_RE.sub(r"\1", text)
    if "&" in text:
        text = html.unescape(text)
    return text


# --- block structure ------------------------------------------------------------------------------
_ATX_OPEN_RE = re.compile(r" {0,3}(#{1,6})(?=[ \t]|$)")
_SETEXT_RE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_HR_RE = re.compile(r"^ {0,3}([-*_])(?:[ \t]*+\1){2,}+[ \t]*+$")
_OPEN_FENCE_RE = re.compile(r"^([ \t]*)(`{3,}|~{3,})(.*)$")
_ITEM_RE = re.compile(r"^[ \t]*(?:[-*+]|\d{1,9}[.)])[ \t]+")
_TABLE_ALIGN_RE = re.compile(r"^[ \t]*+\|?+[ \t]*+:?-{2,}+:?[ \t]*+(?:\|[ \t]*+:?-{2,}+:?[ \t]*+)*+\|?+[ \t]*+$")
_REF_DEF_RE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*\S+")
_BLOCK_START_CHARS = frozenset("#`~|>-*+_=[0123456789")
_QUOTE_RE = re.compile(r"^[ \t]*>[ \t]?")
_CJK_CHAR_RE = re.compile(CJK_CLASS)
_CJK_PUNCT_RE = re.compile("[\u3000-\u303f\uff01-\uff0f\uff1a-\uff1f]")


def _atx(line: str) -> tuple[int, str] | None:
    """``(level, title)`` of an ATX heading line (closing ``#`` sequence removed), or
    None. String operations, not one regular expression: ``(.*?)`` followed by optional
    trailing blanks backtracks quadratically over a long run of spaces."""
    m = _ATX_OPEN_RE.match(line)
    if m is None:
        return None
    rest = line[m.end():].strip(" \t")
    bare = rest.rstrip("#")
    if bare != rest and (not bare or bare[-1] in " \t"):
        rest = bare.rstrip(" \t")
    return len(m.group(1)), rest


def _join_lines(lines: list[str]) -> str:
    """Join soft-wrapped lines: nothing between two CJK characters, a space otherwise."""
    if len(lines) == 1:
        return lines[0].strip()
    if all(line.isascii() for line in lines):
        return " ".join(part for part in (line.strip() for line in lines) if part)
    out = lines[0].strip()
    for line in lines[1:]:
        line = line.strip()
        if not line:
            continue
        if out and _CJK_CHAR_RE.match(out[-1]) and (_CJK_CHAR_RE.match(line) or _CJK_PUNCT_RE.match(out[-1])):
            out += line
        else:
            out += " " + line
    return out


def _fill(builder: TextBuilder, text: str, lang: str, warnings: list[str], *,
          title: str = "", description: str = "") -> None:
    """Parse Markdown ``text`` (comments and shortcodes already removed) into ``builder``."""
    lines = text.split("\n")
    para: list[str] = []
    para_kind = "para"  # "para" or "item"
    last_kind = ""

    def flush() -> None:
        nonlocal para, last_kind
        if para:
            joined = clean_inline(_join_lines(para))
            if para_kind == "item" and last_kind in ("item", "row"):
                builder.line(joined)
            else:
                builder.block(joined)
            last_kind = para_kind
            para = []

    if title:
        builder.block(title)
    if description:
        builder.block(clean_inline(_join_lines(description.split("\n"))))

    i, n = 0, len(lines)
    while i < n:
        line = lines[i]
        stripped = line.strip()
        if not stripped:
            if para_kind == "para" or not (i + 1 < n and lines[i + 1].startswith((" ", "\t"))
                                           and not _ITEM_RE.match(lines[i + 1])):
                flush()
            i += 1
            continue
        if stripped[0] not in _BLOCK_START_CHARS:
            if not para:
                para_kind = "para"
            para.append(line)
            i += 1
            continue
        fence = _OPEN_FENCE_RE.match(line)
        if fence:
            flush()
            marker = fence.group(2)
            close = re.compile(r"^[ \t]*" + re.escape(marker[0]) + "{" + str(len(marker)) + r",}[ \t]*$")
            j = i + 1
            indent = len(fence.group(1))
            body: list[str] = []
            while j < n and not close.match(lines[j]):
                body.append(lines[j][indent:] if lines[j][:indent].strip() == "" else lines[j])
                j += 1
            builder.block("\n".join(body), preformatted=True)
            last_kind = "code"
            i = j + 1
            continue
        atx = _atx(line)
        if atx:
            flush()
            heading = clean_inline(_ANCHOR_RE.sub("", atx[1]))
            builder.heading(atx[0], heading)
            last_kind = "heading"
            i += 1
            continue
        setext = _SETEXT_RE.match(line)
        if setext and para and para_kind == "para":
            heading = clean_inline(_ANCHOR_RE.sub("", _join_lines(para)))
            para = []
            builder.heading(1 if setext.group(1)[0] == "=" else 2, heading)
            last_kind = "heading"
            i += 1
            continue
        if _HR_RE.match(line):
            flush()
            i += 1
            continue
        if _REF_DEF_RE.match(line):
            i += 1
            continue
        if stripped.startswith("|"):
            flush()
            if not _TABLE_ALIGN_RE.match(line):
                cells = [clean_inline(c.strip()) for c in stripped.strip("|").split("|")]
                row = " | ".join(cells)
                first = last_kind != "row"
                # GFM: a header row is the first row, followed by the delimiter row.
                header = first and i + 1 < n and _TABLE_ALIGN_RE.match(lines[i + 1]) is not None
                builder.table_row(row, first=first, header=header)
                last_kind = "row"
            i += 1
            continue
        quote = _QUOTE_RE.match(line)
        if quote:
            line = line[quote.end():]
            if not line.strip():
                flush()
                i += 1
                continue
        item = _ITEM_RE.match(line)
        if item:
            flush()
            para_kind = "item"
            para = [line[item.end():]]
            i += 1
            continue
        if not para:
            para_kind = "para"
        para.append(line)
        i += 1
    flush()


def _first_h1(body: str) -> str:
    """Text of the first level-1 ATX heading outside fenced code ("" if none)."""
    fence = ""
    for line in body.split("\n"):
        head = line.lstrip()
        if fence:
            if head.startswith(fence) and not head.strip().strip(fence[0]):
                fence = ""
            continue
        if head.startswith(("```", "~~~")):
            fence = head[:3]
            continue
        if head.startswith("# ") or head.startswith("#\t"):
            m = _atx(line)
            if m and m[0] == 1:
                return clean_inline(_ANCHOR_RE.sub("", m[1])).strip()
    return ""


def markdown_to_document(source: str, *, path: str = "", encoding: str = "utf-8",
                         default_title: str = "", limits: FileLimits | None = None) -> Document:
    """Convert Markdown source to a :class:`Document` (see the module docstring).

    Args:
        source: Markdown text (any line ends).
        path: the document path to record.
        encoding: recorded in ``metadata["encoding"]``.
        default_title: used when neither front matter nor an H1 gives a title.
        limits: front-matter limits (``yaml_max_*``, ``max_metadata_bytes``).

    Raises:
        FileLimitError: YAML front matter over a ``yaml_max_*`` limit.
    """
    source = normalize_text(source)
    meta, body, warnings = _front_matter(source, path or "<markdown>", limits)
    if "<!--" in body:
        body = _strip_html_comments(body)
    lang = detect_language(body)
    body = strip_comments_and_shortcodes(body, lang=lang)
    raw_title = meta.get("title")
    title = raw_title if isinstance(raw_title, str) else ""
    title = clean_inline(strip_comments_and_shortcodes(title, lang=lang)).strip() if title else ""
    h1 = _first_h1(body)
    raw_description = meta.get("description")
    description = raw_description if isinstance(raw_description, str) else ""
    if description:
        description = strip_comments_and_shortcodes(description, lang=lang).strip()
    builder = TextBuilder()
    _fill(builder, body, lang, warnings, title=title if title and title != h1 else "",
          description=description)
    text, sections, _ = builder.build()
    tables = builder.tables
    metadata: dict[str, Any] = dict(meta)
    metadata.update({"format": "markdown", "encoding": encoding})
    if warnings:
        metadata["warnings"] = warnings
    return Document(path=path, text=text, title=title or h1 or default_title, metadata=metadata,
                    sections=sections, language=lang, tables=tables)


class MarkdownLoader:
    """Loads ``.md`` / ``.markdown`` files (see the module docstring for what is kept).

    Metadata: the front matter's keys (JSON-safe: dates as ISO strings), ``format``
    (``markdown``), ``encoding``, and ``warnings`` (e.g. invalid front matter) if any.
    """

    extensions: tuple[str, ...] = (".md", ".markdown", ".mdown", ".mkd")

    def load(self, path: Path, options: LoadOptions | None = None) -> Document:
        """Read ``path``; see :func:`knowbase.knowledge.loaders.load_document` for errors."""
        options = options or LoadOptions()
        decoded = read_text(path, options.encoding)
        doc = markdown_to_document(decoded.text, path=str(path), encoding=decoded.encoding,
                                   default_title=path.stem, limits=options.limits)
        if decoded.warnings:
            doc.metadata["warnings"] = list(decoded.warnings) + list(doc.metadata.get("warnings", []))
        return doc
