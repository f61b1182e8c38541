"""Evaluation on your own data: test sets (:mod:`~knowbase.evals.datasets`), the runner
(:mod:`~knowbase.evals.runner`), per-item scores (:mod:`~knowbase.evals.scoring`), run-level
metrics (:mod:`~knowbase.evals.summary`, ranking metrics in :mod:`~knowbase.evals.metrics`),
the optional judge (:mod:`~knowbase.evals.judge`), comparisons with bootstrap intervals
(:mod:`~knowbase.evals.compare`), reports (:mod:`~knowbase.evals.report`) and drafted
question sets (:mod:`~knowbase.evals.generate`). Definitions: ``docs/evaluation.md``."""

from knowbase._lazy import lazy_exports

_EXPORTS = {
    "EvalItem": "knowbase.evals.datasets",
    "EvalSet": "knowbase.evals.datasets",
    "EvalSetError": "knowbase.evals.datasets",
    "load_testset": "knowbase.evals.datasets",
    "EvalRunner": "knowbase.evals.runner",
    "EvalReport": "knowbase.evals.runner",
    "METRICS": "knowbase.evals.summary",
    "summarize": "knowbase.evals.summary",
    "Judge": "knowbase.evals.judge",
    "compare_reports": "knowbase.evals.compare",
    "write_report": "knowbase.evals.report",
    "generate_questions": "knowbase.evals.generate",
    "usage_stats": "knowbase.evals.monitoring",
    "StatsRow": "knowbase.evals.monitoring",
}

__getattr__, __dir__ = lazy_exports("knowbase.evals", _EXPORTS, globals())

__all__ = sorted(_EXPORTS)
