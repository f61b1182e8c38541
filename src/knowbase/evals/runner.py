"""Run a test set against a knowledge base, a database or a classifier; collect per-item records.

Example::

    from knowbase import KnowledgeBase
    from knowbase.evals import EvalRunner, load_testset

    kb = KnowledgeBase.open("k8s")
    report = EvalRunner(kb=kb, model="llamacpp:qwen2.5-coder-1.5b").run(load_testset("k8s-en.yaml"))
    report.metrics["recall@5"], report.metrics["key_fact_coverage"]

Each item becomes one JSON-able record (``id``, ``kind``, ``prompt``, ``output``, ``passed``,
``failures``, ``error``, ``latency_s``, ``prompt_tokens``, ``completion_tokens``, ``cost``,
``scores``, ``details``); :func:`knowbase.evals.summary.summarize` turns records into metrics.
An item that fails to run (model unreachable, bad SQL...) is recorded with its ``error`` and
the run goes on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from knowbase.errors import KnowbaseError, UserError
from knowbase.evals.datasets import EvalItem, EvalSet
from knowbase.evals.scoring import (
    citation_checks,
    has_order_by,
    key_fact_coverage,
    result_rows_match,
    retrieval_scores,
    source_matches,
)
from knowbase.evals.stats import mean_spread
from knowbase.evals.summary import Record, summarize

if TYPE_CHECKING:  # pragma: no cover
    from knowbase.config import Settings
    from knowbase.evals.judge import Judge
    from knowbase.knowledge.base import KnowledgeBase
    from knowbase.models.base import ChatModel
    from knowbase.tracing.pricing import Prices
    from knowbase.tracing.store import TraceStore

__all__ = ["EvalRunner", "EvalReport", "ProgressFn"]

ProgressFn = Callable[[int, int, Record], None]
"""Called after each item: ``(done, total, record)``."""

SEARCH_DEPTH = 30
"""Chunks retrieved for the retrieval metrics (enough for 10 distinct documents)."""
REPORT_VERSION = 1


@dataclass
class EvalReport:
    """The outcome of one evaluation (possibly repeated).

    Attributes:
        name: the test set's name.
        runs: per repetition, one record per item (same order in every run).
        config: what was evaluated (knowledge base, model, k, judge, test set path...).
        created: Unix seconds.
    """

    name: str
    runs: list[list[Record]]
    config: dict[str, Any] = field(default_factory=dict)
    created: float = field(default_factory=time.time)

    @property
    def records(self) -> list[Record]:
        """The first run's records (the per-item table)."""
        return self.runs[0] if self.runs else []

    def run_metrics(self) -> list[dict[str, float | None]]:
        """Metrics of each run."""
        return [summarize(run) for run in self.runs]

    @property
    def metrics(self) -> dict[str, float | None]:
        """Mean of each metric over the runs (None where no run could measure it)."""
        per_run = self.run_metrics()
        if len(per_run) == 1:
            return per_run[0]
        return {name: mean_spread([m[name] for m in per_run])["mean"] for name in per_run[0]} if per_run else {}

    @property
    def spread(self) -> dict[str, dict[str, float | int | None]]:
        """Per metric, ``{"mean", "std", "min", "max", "n"}`` over the runs."""
        per_run = self.run_metrics()
        return {name: mean_spread([m[name] for m in per_run]) for name in (per_run[0] if per_run else {})}

    def to_dict(self) -> dict[str, Any]:
        """The whole report as JSON-able data (what ``report.json`` holds)."""
        return {"version": REPORT_VERSION, "name": self.name, "created": self.created, "config": self.config,
                "metrics": self.metrics, "spread": self.spread if len(self.runs) > 1 else None,
                "runs": self.runs}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalReport:
        """Rebuild from :meth:`to_dict` output.

        Raises:
            UserError: not a knowbase evaluation report.
        """
        if not isinstance(data, dict) or not isinstance(data.get("runs"), list) or "name" not in data:
            raise UserError("not a knowbase evaluation report (no 'name' and 'runs')")
        for run in data["runs"]:
            if not isinstance(run, list) or not all(
                    isinstance(r, dict) and "id" in r and "kind" in r and isinstance(r.get("scores"), dict)
                    and isinstance(r.get("details", {}), dict) for r in run):
                raise UserError("not a knowbase evaluation report (a record lacks 'id', 'kind' or 'scores')")
        return cls(name=str(data["name"]), runs=data["runs"], config=dict(data.get("config") or {}),
                   created=float(data.get("created") or 0.0))

    @classmethod
    def load(cls, path: str | Path) -> EvalReport:
        """Read ``report.json`` (or the folder holding it).

        Raises:
            UserError: missing, unreadable or not a report (names the path).
        """
        import json

        p = Path(path)
        if p.is_dir():
            p = p / "report.json"
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read evaluation report {p}: {exc}", path=str(p)) from exc
        try:
            return cls.from_dict(data)
        except UserError as exc:
            raise UserError(f"{p}: {exc.message}", path=str(p)) from exc


def _usage_tokens(usage: Any) -> tuple[int | None, int | None]:
    if usage is None:
        return None, None
    return int(usage.prompt_tokens), int(usage.completion_tokens)


class EvalRunner:
    """Runs test items against the system under test.

    Args:
        kb: the knowledge base for ``kb`` items (and the embedder for extractive classification).
        db: a SQLite path or database URL for ``sql`` items.
        model: chat model string or ChatModel (default: the configured one).
        k: passages given to the model per question.
        extractive: answer knowledge-base questions without a model (and classify by
            embedding similarity).
        mode: retrieval mode (``hybrid``, ``bm25``, ``dense``).
        judge: an optional :class:`~knowbase.evals.judge.Judge`.
        verify: check answers' sentences against their cited passages (``KnowledgeBase.ask``'s
            claim checking); False measures the model's answers as written.
        prices: token prices for the cost per item (default: from the settings).
        settings: default :meth:`Settings.load`.
    """

    def __init__(self, *, kb: KnowledgeBase | None = None, db: str | Path | None = None,
                 model: str | ChatModel | None = None, k: int = 4, extractive: bool = False, mode: str = "hybrid",
                 judge: Judge | None = None, prices: Prices | None = None, settings: Settings | None = None,
                 verify: bool = True) -> None:
        from knowbase.config import Settings
        from knowbase.tracing.pricing import Prices

        self.settings = settings or (kb.settings if kb is not None else Settings.load())
        self.kb = kb
        self.db = db
        self._model_arg = model
        self._model: ChatModel | None = None
        self.k = k
        self.extractive = extractive
        self.mode = mode
        self.judge = judge
        self.verify = verify
        self.prices = prices or Prices.from_settings(self.settings)
        self._text2sql: Any = None
        self._root: str | None = None
        self._tracer: TraceStore | None = None
        if self.settings.tracing:
            from knowbase.tracing.store import TraceStore

            self._tracer = TraceStore(self.settings.logs_path)

    # --- parts built on first use -------------------------------------------------------
    @property
    def model(self) -> ChatModel:
        """The chat model under test (loaded once)."""
        if self._model is None:
            from knowbase.models.base import ChatModel
            from knowbase.models.registry import get_chat_model

            arg = self._model_arg
            self._model = arg if isinstance(arg, ChatModel) else get_chat_model(arg, settings=self.settings)
        return self._model

    @property
    def model_spec(self) -> str:
        """The model string under test (without loading it), ``extractive`` when no model is used."""
        if self.extractive:
            return "extractive"
        if self._model is not None:
            return self._model.spec
        if isinstance(self._model_arg, str):
            return self._model_arg
        return self._model_arg.spec if self._model_arg is not None else self.settings.chat_model

    def _display(self, path: str) -> str:
        """A document path relative to the common folder of the knowledge base's documents."""
        if self.kb is None:
            return path
        if self._root is None:
            paths = [d.path for d in self.kb.documents()]
            try:
                root = os.path.commonpath(paths) if len(paths) > 1 else os.path.dirname(paths[0]) if paths else ""
            except ValueError:
                root = ""
            self._root = root
        if self._root and path.startswith(self._root + os.sep):
            return path[len(self._root) + 1:]
        return path

    # --- running ------------------------------------------------------------------------
    def check(self, testset: EvalSet) -> None:
        """Fail early when the test set needs something the runner lacks.

        Raises:
            UserError: ``kb`` items without a knowledge base, ``sql`` items without ``db``,
                classification items with fewer than two labels.
        """
        kinds = testset.kinds()
        if "kb" in kinds and self.kb is None:
            raise UserError(f"{testset.name}: knowledge-base questions need a knowledge base", field="kb")
        if "sql" in kinds and self.db is None:
            raise UserError(f"{testset.name}: Text2SQL items need a database (--db)", field="db")
        if "classification" in kinds and len(testset.class_labels()) < 2:
            raise UserError(f"{testset.name}: classification needs at least two labels", field="labels")

    def run(self, testset: EvalSet, *, repeat: int = 1, progress: ProgressFn | None = None) -> EvalReport:
        """Run every item ``repeat`` times.

        Raises:
            UserError: see :meth:`check`; ``repeat`` below 1.
        """
        if repeat < 1:
            raise UserError("repeat must be at least 1", field="repeat")
        self.check(testset)
        total = len(testset) * repeat
        runs: list[list[Record]] = []
        done = 0
        for r in range(repeat):
            records = []
            for item in testset:
                record = self.run_item(item, labels=testset.class_labels())
                record["run"] = r
                records.append(record)
                done += 1
                if progress is not None:
                    progress(done, total, record)
            runs.append(records)
        config = {"testset": testset.path, "kb": self.kb.name if self.kb is not None else None,
                  "db": str(self.db) if self.db is not None else None, "model": self.model_spec, "k": self.k,
                  "mode": self.mode, "extractive": self.extractive, "verify": self.verify, "repeat": repeat,
                  "judge": self.judge.spec if self.judge is not None else None, "items": len(testset)}
        return EvalReport(name=testset.name, runs=runs, config=config)

    def run_item(self, item: EvalItem, *, labels: Sequence[str] = ()) -> Record:
        """Run one item; never raises for a failure of the system under test (it is recorded)."""
        record: Record = {"id": item.id, "kind": item.kind, "line": item.line, "prompt": item.prompt, "output": "",
                          "passed": None, "failures": [], "error": None, "latency_s": None, "prompt_tokens": None,
                          "completion_tokens": None, "cost": None, "scores": {}, "details": {}}
        from knowbase.tracing.context import span

        attrs = {"item": item.id, "item_kind": item.kind}
        if self.kb is not None:
            attrs["kb"] = self.kb.name
        try:
            # one trace per item: retrieval, answer and judge calls land under it in logs.db
            with span("eval.item", kind="eval", store=self._tracer, **attrs) as sp:
                if self._tracer is not None:
                    record["details"]["trace_id"] = sp.trace_id  # knowbase logs --trace ID shows every call
                if item.kind == "kb":
                    self._run_kb(item, record)
                elif item.kind == "sql":
                    self._run_sql(item, record)
                else:
                    self._run_classification(item, record, labels)
        except KnowbaseError as exc:
            record["error"] = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # a bug in the system under test must not lose the rest of the run
            record["error"] = f"{type(exc).__name__}: {exc}"
        if record["error"]:
            record["passed"] = False
            record["failures"] = [f"error: {record['error']}"]
            if item.kind == "kb":
                record["scores"].setdefault("unanswerable", item.unanswerable)
        else:
            record["passed"] = not record["failures"]
        if record["prompt_tokens"] is not None:
            record["cost"] = self.prices.cost(self.model_spec, record["prompt_tokens"], record["completion_tokens"])
        return record

    def _run_kb(self, item: EvalItem, record: Record) -> None:
        assert self.kb is not None
        scores, details, failures = record["scores"], record["details"], record["failures"]
        scores["unanswerable"] = item.unanswerable
        t0 = time.perf_counter()
        hits = self.kb.search(item.question, k=SEARCH_DEPTH, mode=self.mode)
        details["retrieval_s"] = round(time.perf_counter() - t0, 4)
        paths = [h.chunk.path for h in hits]
        details["retrieved"] = [self._display(p) for p in dict.fromkeys(paths)][:10]
        if item.expected_sources:
            scores.update(retrieval_scores(paths, item.expected_sources))
        t0 = time.perf_counter()
        model = None if self.extractive else self.model
        answer = self.kb.ask(item.question, model=model, k=self.k, extractive=self.extractive, mode=self.mode,
                             verify=self.verify)
        record["latency_s"] = round(time.perf_counter() - t0, 4)
        record["output"] = answer.text
        record["prompt_tokens"], record["completion_tokens"] = _usage_tokens(answer.usage)
        details["passages"] = [self._display(p.chunk.path) for p in answer.passages]
        details["cited"] = [f"[{c.n}] {self._display(c.chunk.path)}" for c in answer.citations]
        scores["abstained"] = answer.abstained
        if item.unanswerable:
            if not answer.abstained:
                failures.append("answered a question the knowledge base cannot answer")
            return
        if answer.abstained:
            failures.append("abstained on an answerable question")
        if item.expected_sources and not any(source_matches(p.chunk.path, e) for p in answer.passages
                                             for e in item.expected_sources):
            failures.append(f"no expected source among the {len(answer.passages)} passages given to the model")
        if item.key_facts:
            cov = 0.0 if answer.abstained else key_fact_coverage(item.key_facts, answer.text)
            scores["key_fact_coverage"] = cov
            if cov < 1.0:
                missing = [alts[0] for alts in item.key_facts if answer.abstained
                           or key_fact_coverage([alts], answer.text) == 0.0]
                failures.append(f"key facts missing: {', '.join(missing)}")
        if not answer.abstained:
            given = {i: p.chunk.text for i, p in enumerate(answer.passages, start=1)}
            checks = citation_checks(answer.text, given)
            invalid = len(answer.invalid_citations)
            scores["citations_checked"] = len(checks) + invalid
            scores["citations_valid"] = sum(1 for c in checks if c["valid"])
            bad = [c for c in checks if not c["valid"]]
            if bad or invalid:
                details["invalid_citations"] = ([f"[{n}] cites no passage" for n in answer.invalid_citations]
                                                + [f"[{c['n']}] supports {c['support']:.0%} of: {c['claim'][:160]}"
                                                   for c in bad])
                failures.append(f"{len(bad) + invalid} citation(s) not supported by the cited passage")
            if item.expected_sources:
                scores["cited_judged"] = len(answer.citations)
                scores["cited_expected"] = sum(1 for c in answer.citations
                                               if any(source_matches(c.chunk.path, e) for e in item.expected_sources))
            if self.judge is not None:
                self._judge(item, answer, record)

    def _judge(self, item: EvalItem, answer: Any, record: Record) -> None:
        assert self.judge is not None
        faith = self.judge.faithfulness(item.question, answer.text, [p.chunk.text for p in answer.passages])
        record["scores"]["faithfulness"] = faith.score
        judged = {"faithfulness": faith.reason}
        if item.reference:
            corr = self.judge.correctness(item.question, answer.text, item.reference)
            record["scores"]["answer_correctness"] = corr.score
            judged["answer_correctness"] = corr.reason
        record["details"]["judge"] = judged

    def _sql(self) -> Any:
        if self._text2sql is None:
            from knowbase.sql.pipeline import Text2SQL

            assert self.db is not None
            self._text2sql = Text2SQL(self.db, model=self.model, settings=self.settings, answer=False)
        return self._text2sql

    def _run_sql(self, item: EvalItem, record: Record) -> None:
        t2s = self._sql()
        if item.sql is not None:
            try:
                _, expected = t2s.run(item.sql)
            except KnowbaseError as exc:
                raise UserError(f"gold SQL of item {item.id!r} (line {item.line}) failed: {exc}",
                                line=item.line) from exc
        else:
            expected = [tuple(r) for r in item.expected_rows or ()]
        t0 = time.perf_counter()
        result = t2s.ask(item.question)
        record["latency_s"] = round(time.perf_counter() - t0, 4)
        record["output"] = result.sql or ""
        record["details"].update(rows=[[str(v) for v in r] for r in result.rows[:5]],
                                 expected_rows=[[str(v) for v in r] for r in expected[:5]], attempts=result.attempts)
        ordered = item.ordered if item.ordered is not None else bool(item.sql and has_order_by(item.sql))
        match = result.ok and result_rows_match(result.rows, expected, ordered=ordered)
        record["scores"]["execution_match"] = float(match)
        if not result.ok:
            record["failures"].append(f"the generated SQL did not run: {result.error}")
        elif not match:
            record["failures"].append("result differs from the expected rows")

    def _run_classification(self, item: EvalItem, record: Record, labels: Sequence[str]) -> None:
        t0 = time.perf_counter()
        if self.extractive:
            from knowbase.chains.classify import classify
            from knowbase.models.registry import get_embedder

            embedder = self.kb.embedder() if self.kb is not None else get_embedder(settings=self.settings)
            predicted: str | None = classify(item.text, labels, embedder=embedder)[0][0]
        else:
            from knowbase.chains.classify import LLMClassifier

            predicted = LLMClassifier(self.model, labels).classify(item.text)
        record["latency_s"] = round(time.perf_counter() - t0, 4)
        record["output"] = predicted or ""
        record["details"].update(label=item.label, predicted=predicted)
        record["scores"]["correct"] = float(predicted == item.label)
        if predicted != item.label:
            record["failures"].append(f"predicted {predicted!r}, expected {item.label!r}")
