"""Zero-shot sentiment with the embedded MiniLM: embedding distance vs the LLM classifier."""

from __future__ import annotations

import pytest

from knowbase.chains import LLMClassifier, classify
from knowbase.models.base import ChatModel
from knowbase.models.fake import FakeChat


@pytest.mark.slow
def test_sentiment_by_embedding_distance() -> None:
    from knowbase.models.registry import get_embedder

    emb = get_embedder("sentence-transformers:all-minilm-l6-v2", tracing=False)
    labels = ["positive", "negative"]
    good = classify("I loved this film, the acting was wonderful and I would watch it again.", labels,
                    embedder=emb, hypothesis="This review is {label}.")
    bad = classify("A dull, boring waste of two hours; the worst film I have seen.", labels,
                   embedder=emb, hypothesis="This review is {label}.")
    assert good[0][0] == "positive" and bad[0][0] == "negative"
    assert good[0][1] > good[1][1] and bad[0][1] > bad[1][1]


def test_llm_classifier_unparseable_reply_is_none() -> None:
    clf = LLMClassifier(ChatModel(FakeChat(["I cannot decide", "Negative."])), ["positive", "negative"])
    assert clf.classify("meh") is None
    assert clf.classify("awful") == "negative"
