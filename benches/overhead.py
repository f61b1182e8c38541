"""Per-call orchestration overhead of a small chain on a fake model, knowbase next to LangChain.

The chain: prompt template -> fake chat model (fixed reply "alpha, beta, gamma") -> comma
list parser -> a Python transform (count the items). The model costs nothing, so the time
is the framework's own work per ``invoke``.

* knowbase: ``LLMChain(prompt, model, output_parser=ListParser()) | TransformChain(...)``
  (a SequentialChain; the LLMChain step renders, calls the model and parses), with tracing
  off and on (on: every run writes its 3 spans and 1 model call to ``logs.db``).
* LangChain LCEL: ``PromptTemplate | FakeListLLM | CommaSeparatedListOutputParser |
  RunnableLambda`` and the same with ``FakeListChatModel`` (needs ``langchain-core``,
  ``pip install knowbase[bench]``).
* plain Python: the same work as straight function calls, the floor.

Usage::

    python benches/overhead.py [--n 2000] [--repeat 5]

Prints microseconds per invoke (median of ``--repeat`` runs of ``--n`` calls).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPLY = "alpha, beta, gamma"


def _time(fn: Callable[[], object], n: int, repeat: int) -> float:
    for _ in range(min(200, n)):
        fn()
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - t0) / n * 1e6)
    return statistics.median(runs)


def knowbase_chain(tracing_dir: Path | None) -> Callable[[], object]:
    from knowbase.chains import LLMChain, TransformChain
    from knowbase.models.base import ChatModel
    from knowbase.models.fake import FakeChat
    from knowbase.output import ListParser
    from knowbase.tracing.store import TraceStore

    tracer = TraceStore(tracing_dir / "logs.db") if tracing_dir else None
    model = ChatModel(FakeChat(default=REPLY), tracer=tracer)
    chain = LLMChain("Name three things about {topic}.", model, output_parser=ListParser(), output_key="items") \
        | TransformChain(lambda d: {"count": len(d["items"])}, ["items"], ["count"])
    assert chain.invoke({"topic": "sqlite"})["count"] == 3
    return lambda: chain.invoke({"topic": "sqlite"})


def lcel_chain(chat: bool) -> Callable[[], object]:
    from langchain_core.language_models.fake import FakeListLLM
    from langchain_core.language_models.fake_chat_models import FakeListChatModel
    from langchain_core.output_parsers import CommaSeparatedListOutputParser
    from langchain_core.prompts import PromptTemplate
    from langchain_core.runnables import RunnableLambda

    model = FakeListChatModel(responses=[REPLY]) if chat else FakeListLLM(responses=[REPLY])
    chain = (PromptTemplate.from_template("Name three things about {topic}.") | model
             | CommaSeparatedListOutputParser() | RunnableLambda(lambda items: {"count": len(items)}))
    assert chain.invoke({"topic": "sqlite"})["count"] == 3
    return lambda: chain.invoke({"topic": "sqlite"})


def plain_python() -> Callable[[], object]:
    def run() -> dict[str, int]:
        prompt = "Name three things about {topic}.".format(topic="sqlite")
        reply = REPLY if prompt else ""
        items = [p.strip() for p in reply.split(",")]
        return {"count": len(items)}

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="invokes per timed run")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs (median reported)")
    args = parser.parse_args()

    rows: list[tuple[str, float | None, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(("knowbase, tracing off", _time(knowbase_chain(None), args.n, args.repeat), ""))
        rows.append(("knowbase, tracing on (SQLite)", _time(knowbase_chain(Path(tmp)), args.n, args.repeat),
                     "3 spans + 1 call row per run"))
    try:
        lcel_n = max(1, args.n // 4)
        rows.append(("LangChain LCEL, FakeListLLM", _time(lcel_chain(False), lcel_n, args.repeat), "no LangSmith"))
        rows.append(("LangChain LCEL, FakeListChatModel", _time(lcel_chain(True), lcel_n, args.repeat), "no LangSmith"))
    except ImportError as exc:
        rows.append(("LangChain LCEL", None, f"not installed ({exc.name}); pip install knowbase[bench]"))
    rows.append(("plain Python calls", _time(plain_python(), args.n * 10, args.repeat), "the floor"))

    base = rows[0][1] or 1.0
    print(f"{'chain (prompt -> fake model -> parser -> transform)':<52} {'us/invoke':>10} {'x knowbase':>11}  note")
    print("-" * 100)
    for name, us, note in rows:
        if us is None:
            print(f"{name:<52} {'-':>10} {'-':>11}  {note}")
        else:
            print(f"{name:<52} {us:>10.1f} {us / base:>10.1f}x  {note}")


if __name__ == "__main__":
    main()
