"""The claim checker (knowbase.knowledge.verify) on a labelled set of supported and unsupported claims.

The set is built from the bundled sample (samples/k8s, English and Chinese Kubernetes pages),
so every claim is checked against a real passage, with three other passages of the sample
beside it as the retrieval context:

* supported: a sentence of the passage as written (``verbatim``), and the part of a
  sentence after its first comma when that part holds at least five words (``excerpt``:
  the shape of a short answer);
* unsupported, one change each, the failure classes seen in small-model answers:
  ``negation`` (a "not"/"不" inserted or removed), ``number`` (a number raised by one),
  ``value`` (a named value swapped for another named value of the same page), ``list``
  (an invented member, a named value of another page, added to an enumeration).

Rows: per kind, the share the checker marks ``supported``, ``unsupported``, or neither
(``unverified``/``trivial``); then precision and recall of the ``unsupported`` verdict
over all unsupported claims, and the checker's cost per claim (seconds, this machine).

Usage::

    .venv/bin/python benches/verify_claims.py                # all pages
    .venv/bin/python benches/verify_claims.py --per-kind 150 --seed 1
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from knowbase.knowledge.types import Chunk  # noqa: E402
from knowbase.knowledge.verify import (  # noqa: E402
    _content,
    _sentences_with_offsets,
    check_claim,
    list_members,
    named_values,
    numbers,
)

_AUX_EN = re.compile(r"\b(is|are|can|will|does|do|should|must|may)\b")
_AUX_ZH = re.compile(r"(会|能|可以|需要|应该|是)")


def passages(sample: Path, width: int = 700) -> list[tuple[str, Chunk]]:
    """(language, chunk) pieces of the sample's pages: paragraphs packed up to ``width`` characters."""
    out = []
    for path in sorted(sample.rglob("*.md")):
        text = path.read_text(encoding="utf-8")
        text = re.sub(r"(?s)^---.*?---", "", text)  # front matter
        text = re.sub(r"\{\{<[^>]*>\}\}|\{\{%[^%]*%\}\}", " ", text)  # Hugo shortcodes
        lang = "zh" if "zh-cn" in path.parts else "en"
        pos, buf, start = 0, "", 0
        for para in re.split(r"\n\s*\n", text):
            para_start = text.find(para, pos)
            pos = para_start + len(para)
            if para.lstrip().startswith(("#", "```", "|", "<")) or len(para.strip()) < 40:
                continue
            if buf and len(buf) + len(para) > width:
                out.append((lang, Chunk(buf, start, start + len(buf), path=str(path.relative_to(sample)))))
                buf = ""
            if not buf:
                start = para_start
            buf = (buf + "\n\n" + para) if buf else para
        if buf:
            out.append((lang, Chunk(buf, start, start + len(buf), path=str(path.relative_to(sample)))))
    return out


def flip_negation(sentence: str, lang: str) -> str | None:
    if lang == "zh":
        if "不" in sentence:
            return sentence.replace("不", "", 1)
        m = _AUX_ZH.search(sentence)
        return sentence[: m.start()] + "不" + sentence[m.start():] if m else None
    if re.search(r"\bnot\b", sentence):
        return re.sub(r"\bnot\s+", "", sentence, count=1)
    if re.search(r"n't\b", sentence):
        return re.sub(r"n't\b", "", sentence, count=1)
    m = _AUX_EN.search(sentence)
    return sentence[: m.end()] + " not" + sentence[m.end():] if m else None


def bump_number(sentence: str) -> str | None:
    m = re.search(r"(?<![\w.])(\d+)(?![\d.,]\d)", sentence)
    return sentence[: m.start()] + str(int(m.group(1)) + 1) + sentence[m.end():] if m else None


def swap_value(sentence: str, page_values: list[str], rng: random.Random) -> str | None:
    mine = sorted(v for v in named_values(sentence) if len(v) > 2 and v in sentence)
    others = [v for v in page_values if v not in sentence and v not in mine]
    if not mine or not others:
        return None
    return sentence.replace(rng.choice(mine), rng.choice(others), 1)


def add_member(sentence: str, foreign: list[str], rng: random.Random, lang: str) -> str | None:
    members = list_members(sentence)
    if len(members) < 2:
        return None
    last = members[-1]
    idx = sentence.rfind(last)
    if idx < 0:
        return None
    extra = rng.choice(foreign)
    joiner = "、" if lang == "zh" else ", "
    return sentence[:idx] + extra + joiner + sentence[idx:]


def build(sample: Path, per_kind: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    chunks = passages(sample)
    values_by_page: dict[str, list[str]] = defaultdict(list)
    for _, ch in chunks:
        values_by_page[ch.path].extend(v for v in named_values(ch.text) if len(v) > 2)
    all_values = sorted({v for vs in values_by_page.values() for v in vs})
    items: dict[str, list[dict]] = defaultdict(list)
    order = list(range(len(chunks)))
    rng.shuffle(order)
    for i in order:
        lang, ch = chunks[i]
        sents = [s for s, _, _ in _sentences_with_offsets(ch.text) if len(_content(s)) >= 5 and len(s) < 400]
        if not sents:
            continue
        s = rng.choice(sents)
        others = rng.sample([c for j, (_, c) in enumerate(chunks) if j != i], 3)
        ctx = {"lang": lang, "passage": ch, "context": others}
        cands = {"verbatim": s}
        if "," in s or "，" in s:
            tail = re.split(r"[,，]", s, maxsplit=1)[1].strip()
            if len(_content(tail)) >= 5:
                cands["excerpt"] = tail[0].upper() + tail[1:] if tail[:1].isalpha() else tail
        cands["negation"] = flip_negation(s, lang) or ""
        cands["number"] = bump_number(s) if numbers(s) else ""
        page_vals = sorted(set(values_by_page[ch.path]))
        cands["value"] = swap_value(s, page_vals, rng) or ""
        foreign = [v for v in all_values if v not in ch.text]
        cands["list"] = add_member(s, foreign, rng, lang) or ""
        for kind, claim in cands.items():
            if claim and claim != s or (kind in {"verbatim", "excerpt"} and claim):
                if len(items[kind]) < per_kind:
                    items[kind].append({"kind": kind, "claim": claim, "label": kind in {"verbatim", "excerpt"}, **ctx})
    return [x for kind in ("verbatim", "excerpt", "negation", "number", "value", "list") for x in items[kind]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", type=Path, default=ROOT / "samples" / "k8s")
    parser.add_argument("--per-kind", type=int, default=120)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    items = build(args.sample, args.per_kind, args.seed)
    verdicts: dict[str, Counter] = defaultdict(Counter)
    times = []
    tp = fp = fn = 0
    for it in items:
        ps = [it["passage"], *it["context"]]
        t0 = time.perf_counter()
        claim = check_claim(it["claim"], (1,), ps)
        times.append(time.perf_counter() - t0)
        key = f"{it['kind']} ({it['lang']})"
        verdicts[key][claim.status] += 1
        flagged = claim.status == "unsupported"
        if flagged and not it["label"]:
            tp += 1
        elif flagged:
            fp += 1
        elif not it["label"]:
            fn += 1
    print(f"claims: {len(items)} from {args.sample} (seed {args.seed})\n")
    print("| kind (lang) | n | supported | unsupported | unverified/trivial |")
    print("|---|--:|--:|--:|--:|")
    for key in sorted(verdicts, key=lambda k: (["verbatim", "excerpt", "negation", "number", "value", "list"]
                                               .index(k.split()[0]), k)):
        c = verdicts[key]
        n = sum(c.values())
        print(f"| {key} | {n} | {c['supported'] / n:.2f} | {c['unsupported'] / n:.2f} | "
              f"{(c['unverified'] + c['trivial']) / n:.2f} |")
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    print(f"\n'unsupported' verdict: precision {precision:.3f}, recall {recall:.3f} "
          f"(tp {tp}, fp {fp}, fn {fn})")
    print(f"cost per claim (4 passages): median {statistics.median(times) * 1000:.1f} ms, "
          f"p95 {sorted(times)[int(0.95 * (len(times) - 1))] * 1000:.1f} ms")


if __name__ == "__main__":
    main()
