"""knowbase: language models on your own knowledge, data and tools.

The public API is re-exported here lazily, so ``import knowbase`` stays fast and heavy
libraries (torch, llama.cpp) load only when a model is used.
"""

from __future__ import annotations

from knowbase._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    # errors
    "KnowbaseError": "knowbase.errors",
    "UserError": "knowbase.errors",
    "RuntimeFailure": "knowbase.errors",
    # config
    "Settings": "knowbase.config",
    # models
    "Message": "knowbase.models.base",
    "ChatOptions": "knowbase.models.base",
    "ChatResult": "knowbase.models.base",
    "Usage": "knowbase.models.base",
    "ToolCall": "knowbase.models.base",
    "ToolSpec": "knowbase.models.base",
    "ChatModel": "knowbase.models.base",
    "Embedder": "knowbase.models.base",
    "get_chat_model": "knowbase.models.registry",
    "get_embedder": "knowbase.models.registry",
    "FakeChat": "knowbase.models.fake",
    "FakeEmbedder": "knowbase.models.fake",
    # knowledge
    "KnowledgeBase": "knowbase.knowledge.base",
    "ResponseCache": "knowbase.models.cache",
    # prompts, structured output, chains, memory, safety
    "PromptTemplate": "knowbase.prompts",
    "ChatPromptTemplate": "knowbase.prompts",
    "FewShotPromptTemplate": "knowbase.prompts",
    "load_template": "knowbase.prompts",
    "structured": "knowbase.output",
    "chat_structured": "knowbase.output",
    "LLMChain": "knowbase.chains",
    "SequentialChain": "knowbase.chains",
    "TransformChain": "knowbase.chains",
    "RouterChain": "knowbase.chains",
    "MathChain": "knowbase.chains",
    "RequestsChain": "knowbase.chains",
    "RetrievalQAChain": "knowbase.chains",
    "SQLChain": "knowbase.chains",
    "Text2SQL": "knowbase.sql",
    "SQLAnswer": "knowbase.sql",
    "classify": "knowbase.chains",
    "ConversationSession": "knowbase.memory",
    "safe_eval": "knowbase.safety.math",
    "UrlGuard": "knowbase.safety.urls",
    # agents and tools
    "Tool": "knowbase.agents.tools",
    "tool": "knowbase.agents.tools",
    "RouterAgent": "knowbase.agents.router",
    "ReActAgent": "knowbase.agents.react",
    "FunctionCallingAgent": "knowbase.agents.functions",
    "AutonomousAgent": "knowbase.agents.autonomous",
    # runtime checks
    "run_checks": "knowbase.doctor",
    "DoctorReport": "knowbase.doctor",
    # evaluation
    "EvalRunner": "knowbase.evals.runner",
    "EvalReport": "knowbase.evals.runner",
    "load_testset": "knowbase.evals.datasets",
    "PluginRouter": "knowbase.agents.plugins",
    "OpenAPIToolset": "knowbase.tools.openapi",
    "ApprovalQueue": "knowbase.tools.approval",
    # diagnosis (the function itself: ``from knowbase.diagnose import diagnose``; ``knowbase.diagnose``
    # is its package)
    "Finding": "knowbase.diagnose.types",
    "Diagnosis": "knowbase.diagnose.types",
    # tracing
    "trace": "knowbase.tracing.context",
    "TraceStore": "knowbase.tracing.store",
}


__getattr__, __dir__ = lazy_exports('knowbase', _EXPORTS, globals())


__all__ = sorted(_EXPORTS)
