"""Fine-tuning data: formats and conversion (:mod:`~knowbase.finetune.formats`), validation
mirroring OpenAI's checks (:mod:`~knowbase.finetune.validate`), token counts
(:mod:`~knowbase.finetune.tokens`) and building training files from feedback, evaluation items
and Q/A tables (:mod:`~knowbase.finetune.prepare`)."""

from knowbase._lazy import lazy_exports

_EXPORTS = {
    "Example": "knowbase.finetune.formats",
    "read_examples": "knowbase.finetune.formats",
    "write_examples": "knowbase.finetune.formats",
    "validate_file": "knowbase.finetune.validate",
    "token_counter": "knowbase.finetune.tokens",
    "prepare": "knowbase.finetune.prepare",
    "examples_from_feedback": "knowbase.finetune.prepare",
    "examples_from_testset": "knowbase.finetune.prepare",
    "examples_from_qa": "knowbase.finetune.prepare",
}

__getattr__, __dir__ = lazy_exports("knowbase.finetune", _EXPORTS, globals())

__all__ = sorted(_EXPORTS)
