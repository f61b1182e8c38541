"""Chains: small steps with one protocol (``invoke``/``stream``/``batch`` and async forms),
composed into pipelines with ``|`` or :class:`SequentialChain`.

Steps: :class:`LLMChain`, :class:`TransformChain`, :class:`SequentialChain`,
:class:`RouterChain`, :class:`MathChain`, :class:`RequestsChain`,
:class:`RetrievalQAChain`, :class:`SQLChain`; zero-shot :func:`classify` and :class:`LLMClassifier`.
"""

from knowbase.chains.base import Chain, merge_chunks
from knowbase.chains.classify import LLMClassifier, classify
from knowbase.chains.llm import LLMChain
from knowbase.chains.math import MathChain, extract_expression
from knowbase.chains.requests import RequestsChain, html_to_text
from knowbase.chains.retrieval import RetrievalQAChain
from knowbase.chains.router import Route, RouterChain
from knowbase.chains.sequential import SequentialChain
from knowbase.chains.sql import SQLChain
from knowbase.chains.transform import TransformChain

__all__ = [
    "Chain", "LLMChain", "LLMClassifier", "MathChain", "RequestsChain", "RetrievalQAChain", "Route", "RouterChain",
    "SQLChain", "SequentialChain", "TransformChain", "classify", "extract_expression", "html_to_text", "merge_chunks",
]
