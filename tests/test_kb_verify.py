"""Claim checking (knowbase.knowledge.verify): each failure class the issue names, on real
sentences of the bundled sample's kind, English and Chinese."""

from __future__ import annotations

import pytest

from knowbase.knowledge.types import Chunk
from knowbase.knowledge.verify import (
    apply_checks,
    check_answer,
    list_members,
    named_values,
    negations,
    numbers,
    split_claims,
)

EVICTION = Chunk("If a node runs out of memory, the kubelet evicts BestEffort Pods first, then Burstable Pods, and "
                 "Guaranteed Pods last. Pods are not evicted while they are within their requests.", 100, 262,
                 path="docs/node-pressure-eviction.md")
SURGE = Chunk("The default value of maxSurge is 25%. You can set .spec.strategy.rollingUpdate.maxSurge to an absolute "
              "number such as 5.", 0, 118, path="docs/deployment.md")
IMAGES = Chunk("kubelet 默认不会删除镜像，除非磁盘使用率超过 85%。", 40, 70, path="docs/zh/gc.md")
PASSAGES = [EVICTION, SURGE, IMAGES]


def statuses(text: str) -> list[tuple[str, tuple[int, ...]]]:
    return [(c.status, c.citations) for c in check_answer(text, PASSAGES)]


def test_supported_sentences_keep_their_citation() -> None:
    assert statuses("BestEffort Pods are evicted first, then Burstable, and Guaranteed last [1].") == [("supported", (1,))]
    assert statuses("The default maxSurge is 25% [2].") == [("supported", (2,))]
    assert statuses("kubelet 默认不会删除镜像，除非磁盘使用率超过 85% [3]。") == [("supported", (3,))]


@pytest.mark.parametrize(("answer", "reason"), [
    ("The default maxSurge is 26% [2].", "number 26 not in [2]"),            # off by one
    ("The default maxSurge is 5 [2].", None),                                 # a number of the passage, other slot
    ("Pods are evicted while they are within their requests [1].", "negation differs from [1]"),
    ("BestEffort, Burstable, Critical and Guaranteed Pods are evicted in order [1].", "list member 'Critical' not in [1]"),
    ("The kubelet evicts BestEffort Pods and PriorityClass Pods first [1].", "value 'PriorityClass' not in [1]"),
    ("kubelet 默认会删除镜像 [3]。", "negation differs from [3]"),
])
def test_contradictions_are_unsupported(answer: str, reason: str | None) -> None:
    claims = check_answer(answer, PASSAGES)
    assert len(claims) == 1
    if reason is None:  # "5" is in the passage: the checker cannot tell the slot; documented limit
        assert claims[0].status == "supported"
        return
    assert claims[0].status == "unsupported"
    assert reason in claims[0].reasons


def test_citation_is_moved_to_the_passage_holding_the_sentence() -> None:
    claims = check_answer("Pods are not evicted while within their requests [2][3].", PASSAGES)
    assert claims[0].status == "supported" and claims[0].citations == (1,)
    ev = claims[0].evidence
    assert ev is not None and ev.n == 1
    assert EVICTION.text[ev.chunk_start:ev.chunk_end] == "Pods are not evicted while they are within their requests."
    assert (ev.doc_start, ev.doc_end) == (EVICTION.start + ev.chunk_start, EVICTION.start + ev.chunk_end)


def test_apply_checks_removes_unsupported_and_repairs_markers() -> None:
    out = apply_checks("You can set maxSurge to 5 [2]. Pods are evicted while within their requests [1]. "
                       "BestEffort Pods are evicted first [2].", PASSAGES)
    assert out.text == "You can set maxSurge to 5 [2]. BestEffort Pods are evicted first [1]."
    assert out.citations == (2, 1)
    assert out.removed == ("Pods are evicted while within their requests.",)
    assert not out.fallback
    none_left = apply_checks("The default maxSurge is 30% [2].", PASSAGES)
    assert none_left.text == "" and none_left.fallback


def test_chinese_markers_sit_before_the_full_stop() -> None:
    out = apply_checks("kubelet 默认不会删除镜像 [1]。", PASSAGES, language="zh")
    assert out.text == "kubelet 默认不会删除镜像 [3]。"


def test_extractors() -> None:
    assert numbers("Set maxSurge to 25% and wait three minutes (180s), 1,000 Pods.") == {"25", "3", "180", "1000"}
    assert named_values("Use `IfNotPresent` so BestEffort Pods in .spec.containers keep OOM_SCORE.") == {
        "IfNotPresent", "BestEffort", ".spec.containers", "OOM_SCORE"}
    assert list_members("BestEffort, Burstable and Guaranteed Pods") == ["BestEffort", "Burstable", "Guaranteed Pods"]
    assert list_members("Pods restart and the node recovers.") == []
    assert negations("It is not allowed and cannot be changed.") == 2
    assert negations("除非磁盘满了，否则非常安全，是否删除不仅取决于此") == 0
    assert negations("不会删除，也没有重启") == 2


def test_split_claims_keeps_markers_with_their_sentence() -> None:
    parts = split_claims("Pods are evicted. [1] Then the node recovers [2][3]. 完成[1]。")
    assert [(t, c) for t, _, _, c in parts] == [("Pods are evicted.", (1,)), ("Then the node recovers.", (2, 3)),
                                                ("完成。", (1,))]


def test_trivial_and_uncited_sentences() -> None:
    claims = check_answer("Yes. BestEffort Pods are evicted first.", PASSAGES)
    assert claims[0].status == "trivial"
    assert claims[1].status == "supported" and claims[1].citations == (1,)  # uncited: attributed to [1]


def test_bounded_on_hostile_answers() -> None:
    long = "Pods are evicted. " * 500
    claims = check_answer(long, PASSAGES)
    checked = [c for c in claims if "not checked: answer too long" not in c.reasons]
    assert len(checked) == 64 and all(c.status == "supported" for c in checked)
    assert all(c.status == "unverified" for c in claims[64:])
    assert check_answer("", PASSAGES) == []
    assert check_answer("[9][10] [x]", PASSAGES)[0].status in {"trivial", "unverified"}


def test_a_value_of_the_passage_in_the_wrong_sentence_is_unsupported() -> None:
    # 5 is in passage [2], but in the sentence about absolute numbers, not the default
    claims = check_answer("The default value of maxSurge is 5 [2].", PASSAGES)
    assert claims[0].status == "unsupported"
    assert claims[0].reasons == ("number 5 not in the sentences of [2] on this",)


def test_negation_is_compared_clause_by_clause() -> None:
    chunk = Chunk("The Pod is created, but its containers are not started until the volume is mounted.", 0, 85)
    assert check_answer("The Pod is created [1].", [chunk])[0].status == "supported"
    flipped = check_answer("The containers are started before the volume is mounted [1].", [chunk])[0]
    assert flipped.status == "unsupported" and flipped.reasons == ("negation differs from [1]",)


TABLE_A = "ID | Product | Price | Warehouse\n" + "\n".join(
    f"{i} | Widget-{i} | {12 if i == 4 else 10 + i}.50 EUR | WH-{i % 2}" for i in range(1, 20))
TABLE_B = "ID | Product | Price | Warehouse\n" + "\n".join(
    f"{i} | Widget-{i} | {100 + i}.50 EUR | WH-{i % 2}" for i in range(20, 40))
TABLES = [Chunk(TABLE_A, 0, len(TABLE_A)), Chunk(TABLE_B, 0, len(TABLE_B))]


def test_values_of_different_rows_are_never_combined() -> None:
    """Found by a new user: an uncited '...Widget-37 is 12.50 EUR' was supported by pooling row 4
    of one passage with row 37 of another; 'Widget-37 is in WH-0 [2]' by two rows of one chunk."""
    uncited = check_answer("The price of Widget-37 is 12.50 EUR.", TABLES)[0]
    assert uncited.status == "unsupported" and "never appear together" in uncited.reasons[0]
    mixed = check_answer("Widget-37 is stored in WH-0 [2].", TABLES)[0]
    assert mixed.status == "unsupported" and "never appear together in [2]" in mixed.reasons[0]
    right = check_answer("Widget-37 costs 137.50 EUR.", TABLES)[0]  # uncited, one row of [2]: supported
    assert right.status == "supported" and right.citations == (2,)
    assert check_answer("Widget-37 is stored in WH-1 [2].", TABLES)[0].status == "supported"


def test_list_markers_go_with_their_sentence() -> None:
    out = apply_checks("1. The default maxSurge is 26% [2]. 2. The default maxSurge is 25% [2].", PASSAGES)
    assert out.text == "2. The default maxSurge is 25% [2]."


def test_a_heading_glued_to_the_answer_is_dropped() -> None:
    """The demo's answer ended with '... Guaranteed Pods. Criteria [2][3]' (issue 13)."""
    out = apply_checks("BestEffort Pods are evicted first, then Burstable, and Guaranteed last [1]. Criteria [2][3]",
                       PASSAGES)
    assert out.text == "BestEffort Pods are evicted first, then Burstable, and Guaranteed last [1]."
    assert out.removed == ("Criteria",) and out.citations == (1,)
    assert apply_checks("Yes. BestEffort Pods are evicted first [1].", PASSAGES).text.startswith("Yes.")
