"""Text for a terminal: control sequences made visible, never executed; never markup.

Model replies, document passages, tool results, SQL values and user text can carry
terminal control sequences: ``ESC ] 52 ; c ; <base64> BEL`` writes the clipboard
(OSC 52), ``ESC [ 2 J`` clears the screen, ``ESC ] 8 ;;`` plants hyperlinks, a carriage
return or backspaces overwrite what was printed, and bidi overrides (U+202E) reorder it
("Trojan Source", CVE-2021-42574). :func:`terminal_safe` is the one sanitiser every CLI
printer applies: it replaces each such character with its visible escape (``\\u001b``),
so the sequence prints as inert text and nothing is silently dropped. The escape form is
also a valid JSON string escape, so JSON output stays valid JSON.

Rich parses ``[red]...[/red]`` as markup (and ``[/x]`` alone raises ``MarkupError``);
:func:`plain` wraps text in a ``rich.text.Text`` so it is printed as written.

Characters made visible (Unicode categories Cc and the bidi controls):

* C0 controls except tab and newline (``\\r\\n`` line ends become ``\\n``), including ESC,
  BEL, backspace and a lone carriage return; DEL; C1 controls U+0080-U+009F (CSI, OSC...).
* U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069 (bidi marks, embeddings,
  overrides and isolates).
"""

from __future__ import annotations

import re
from typing import Any

_BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f" + _BIDI + "]")


def _visible(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def terminal_safe(text: object) -> str:
    """``text`` (``str()`` of it) with every terminal control character shown as ``\\uXXXX``.

    Tabs and newlines are kept; ``\\r\\n`` becomes ``\\n``. Linear in the length.

    >>> terminal_safe("ok\\x1b]52;c;ZXZpbA==\\x07 done")
    'ok\\\\u001b]52;c;ZXZpbA==\\\\u0007 done'
    >>> terminal_safe("line 1\\r\\nline 2\\u202e")
    'line 1\\nline 2\\\\u202e'
    """
    value = text if isinstance(text, str) else str(text)
    if "\r\n" in value:
        value = value.replace("\r\n", "\n")
    return _UNSAFE.sub(_visible, value)


def plain(text: object, style: str = "") -> Any:
    """A ``rich.text.Text`` of :func:`terminal_safe` ``text``: printed as written, never as markup."""
    from rich.text import Text

    return Text(terminal_safe(text), style=style)
