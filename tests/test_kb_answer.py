"""Cited answers with a scripted FakeChat: prompts, citations, abstention, language, streaming, traces."""

from __future__ import annotations

import pytest

from knowbase.knowledge.answer import parse_citations, split_sentences, trim_passage
from knowbase.knowledge.base import KnowledgeBase
from knowbase.models.base import ChatModel, Embedder
from knowbase.models.fake import FakeChat, FakeEmbedder, fake_count_tokens
from knowbase.tracing.store import TraceStore

TEXTS = [
    "A Pod is the smallest deployable unit of computing in Kubernetes. Pods run one or more containers. "
    "When a node fails, the Pods on it are scheduled for deletion.",
    "A Deployment provides declarative updates for Pods and ReplicaSets. You describe a desired state.",
    "ConfigMaps store non-confidential configuration data as key-value pairs.",
    "Pod 是可以在 Kubernetes 中创建和管理的、最小的可部署的计算单元。Pod 中可以运行一个或多个容器。",
]


@pytest.fixture
def kb() -> KnowledgeBase:
    base = KnowledgeBase.create("qa", embedder=Embedder(FakeEmbedder(64)))
    base.add_texts(TEXTS)
    yield base
    base.close()


def test_parse_citations_removes_invalid() -> None:
    assert parse_citations("Pods restart [1][7].", 2) == ("Pods restart [1].", [1], [7])
    assert parse_citations("Yes [2, 3] and [9].", 3) == ("Yes [2][3] and.", [2, 3], [9])
    assert parse_citations("No citations.", 3) == ("No citations.", [], [])


def test_split_sentences_english_and_chinese() -> None:
    assert split_sentences("One. Two? Three!") == ["One.", "Two?", "Three!"]
    assert split_sentences("第一句。第二句！第三句") == ["第一句。", "第二句！", "第三句"]


def test_trim_passage_keeps_relevant_sentences_in_order() -> None:
    text = "Cats purr loudly. Pods run containers on nodes. Dogs bark at night. Nodes host pods."
    out = trim_passage(text, ["pod", "node"], {"pod": 2.0, "node": 1.0}, 11, fake_count_tokens)
    assert out == "Pods run containers on nodes. Nodes host pods."


def test_trim_passage_keeps_the_line_break_after_a_heading() -> None:
    text = ("Criteria\nA Pod is Burstable if the Pod does not meet the Guaranteed criteria. Cats purr loudly "
            "all day long in the sun. Dogs bark.\nPods with requests are Burstable.")
    out = trim_passage(text, ["pod", "burstabl", "criteria"], {"pod": 1.0, "burstabl": 2.0, "criteria": 1.0}, 22,
                       fake_count_tokens)
    assert out == ("Criteria\nA Pod is Burstable if the Pod does not meet the Guaranteed criteria. "
                   "Pods with requests are Burstable.")   # not "Criteria A Pod is ..."


def test_ask_builds_lean_prompt_and_parses_citations(kb: KnowledgeBase) -> None:
    fake = FakeChat(["A Pod is the smallest deployable unit [1]. It is managed [5]."])
    answer = kb.ask("What is a Pod in Kubernetes?", model=ChatModel(fake), k=3)
    assert not answer.abstained
    assert answer.text == "A Pod is the smallest deployable unit [1]. It is managed."
    assert answer.invalid_citations == (5,)
    assert [c.n for c in answer.citations] == [1]
    assert "smallest deployable unit" in answer.citations[0].chunk.text
    messages, options = fake.calls[0]
    assert [m.role for m in messages] == ["system", "user"]
    assert messages[0].content.startswith("You answer questions using only the numbered passages")
    user = messages[1].content
    assert "[1]" in user and "[3]" in user and "[4]" not in user
    assert "Question: What is a Pod in Kubernetes?" in user
    assert "Answer in English" in user
    assert options.max_tokens == 160 and options.temperature == 0.0
    assert set(answer.timings) >= {"retrieve", "first_token", "generate", "total"}
    assert answer.timings["retrieve"] <= answer.timings["first_token"] <= answer.timings["total"]


def test_system_prompt_is_the_same_for_every_question(kb: KnowledgeBase) -> None:
    fake = FakeChat(default="Yes [1].")
    model = ChatModel(fake)
    kb.ask("What is a Pod?", model=model)
    kb.ask("What do ConfigMaps store?", model=model)
    assert fake.calls[0][0][0] == fake.calls[1][0][0]


def test_prompt_respects_token_budget(kb: KnowledgeBase) -> None:
    long = " ".join(f"Filler sentence number {i} about scheduling pods." for i in range(200))
    kb.add_texts([long])
    fake = FakeChat(default="ok [1]")
    kb.ask("scheduling pods filler", model=ChatModel(fake), k=4)
    passages = fake.calls[0][0][1].content.split("Question:")[0]
    assert fake_count_tokens(passages) < 340 + 40


def test_abstains_on_unrelated_question_without_calling_model(kb: KnowledgeBase) -> None:
    fake = FakeChat(["The capital of France is Paris [1]."])
    answer = kb.ask("What is the capital of France?", model=ChatModel(fake))
    assert answer.abstained
    assert answer.text == "The knowledge base does not contain the answer to this question."
    assert fake.calls == []
    assert answer.passages  # the nearest sources are still shown
    assert answer.citations == ()


def test_abstains_when_model_says_not_found(kb: KnowledgeBase) -> None:
    fake = FakeChat(["NOT FOUND"])
    answer = kb.ask("How many containers can a Pod run?", model=ChatModel(fake))
    assert len(fake.calls) == 1
    assert answer.abstained and answer.citations == ()


@pytest.mark.parametrize("reply", ["[1] [3]", "[2]。", " [1][2] "])
def test_a_reply_of_bare_citation_markers_is_no_answer(kb: KnowledgeBase, reply: str) -> None:
    fake = FakeChat([reply])
    answer = kb.ask("How many containers can a Pod run?", model=ChatModel(fake))
    assert len(fake.calls) == 1 and answer.abstained and answer.citations == ()
    assert answer.text.startswith("The knowledge base does not contain")
    fake = FakeChat(["Pods run one or more containers [1]."])   # a real answer still passes
    assert not kb.ask("How many containers can a Pod run?", model=ChatModel(fake)).abstained


def test_chinese_question_gets_chinese_instruction_and_abstention(kb: KnowledgeBase) -> None:
    fake = FakeChat(["Pod 是最小的可部署计算单元 [1]。"])
    answer = kb.ask("什么是 Pod 计算单元？", model=ChatModel(fake))
    assert answer.language == "zh"
    assert answer.text == "Pod 是最小的可部署计算单元 [1]。"
    assert "最小的可部署的计算单元" in answer.citations[0].chunk.text
    user = fake.calls[0][0][1].content
    assert "请用简体中文回答" in user
    off_topic = kb.ask("法国的首都是哪里？", model=ChatModel(FakeChat([])))
    assert off_topic.abstained and off_topic.text == "知识库中没有这个问题的答案。"


def test_extractive_answer_needs_no_model(kb: KnowledgeBase) -> None:
    answer = kb.ask("What do ConfigMaps store?", extractive=True, model="no-such-backend:x")
    assert answer.extractive and not answer.abstained
    assert answer.text.startswith("ConfigMaps store non-confidential configuration data as key-value pairs. [1]")
    assert answer.citations[0].n == 1 and "ConfigMaps" in answer.citations[0].chunk.text


def test_ask_stream_yields_sources_before_text(kb: KnowledgeBase) -> None:
    fake = FakeChat(["Pods are deleted when their node fails [1]."])
    events = list(kb.ask_stream("What happens to Pods when a node fails?", model=ChatModel(fake)))
    kinds = [e.kind for e in events]
    assert kinds[0] == "sources" and kinds[-1] == "answer"
    assert set(kinds[1:-1]) == {"delta"}
    assert events[0].passages and "node fails" in events[0].passages[0].chunk.text
    assert "node fails" in events[0].text  # the extractive preview comes with the sources
    assert "".join(e.text for e in events[1:-1]) == "Pods are deleted when their node fails [1]."
    assert events[-1].answer.citations[0].n == 1


def test_ask_is_traced_as_one_tree(kb: KnowledgeBase) -> None:
    answer = kb.ask("What is a Pod?", model="fake:A Pod is a unit [1].")
    assert answer.trace_id
    spans = TraceStore(kb.settings.logs_path).spans(answer.trace_id)
    names = {s["name"] for s in spans}
    assert {"kb", "kb.ask", "retrieve", "generate"} <= names
    calls = TraceStore(kb.settings.logs_path).calls(trace_id=answer.trace_id)
    assert any(c["kind"] == "chat" and c["output"] == "A Pod is a unit [1]." for c in calls)


def test_uncited_answer_is_attributed_to_the_passage_it_repeats(kb: KnowledgeBase) -> None:
    fake = FakeChat(["ConfigMaps store non-confidential configuration data as key-value pairs."])
    answer = kb.ask("What do ConfigMaps store?", model=ChatModel(fake), k=3)
    assert not answer.abstained and answer.attributed
    assert len(answer.citations) == 1
    assert answer.citations[0].chunk.text.startswith("ConfigMaps store")
    n = answer.citations[0].n
    assert answer.text == f"ConfigMaps store non-confidential configuration data as key-value pairs [{n}]."
    assert answer.verification == "checked" and [c.status for c in answer.claims] == ["supported"]


def test_uncited_answer_unlike_any_passage_is_replaced_by_quotes(kb: KnowledgeBase) -> None:
    fake = FakeChat(["Bananas are yellow fruit grown in tropical plantations."])
    answer = kb.ask("What do ConfigMaps store?", model=ChatModel(fake), k=3)
    assert not answer.abstained and answer.verification == "fallback" and answer.extractive
    assert "Bananas" not in answer.text and answer.text.startswith("ConfigMaps store")
    assert [c.status for c in answer.claims] == ["unverified"]


def test_unchecked_answer_unlike_any_passage_stays_uncited(kb: KnowledgeBase) -> None:
    fake = FakeChat(["Bananas are yellow fruit grown in tropical plantations."])
    answer = kb.ask("What do ConfigMaps store?", model=ChatModel(fake), k=3, verify=False)
    assert not answer.abstained and not answer.attributed and answer.verification == ""
    assert answer.citations == () and not answer.text.endswith("]")


def test_question_about_a_term_the_kb_never_mentions_abstains_without_model(kb: KnowledgeBase) -> None:
    from dataclasses import replace

    kb.policy = replace(kb.policy, min_coverage=0.0)  # the unknown-term rule alone
    fake = FakeChat(["Pods replicate with PostgreSQL [1]."])
    small = kb.ask("How do Pods use PostgreSQL replication?", model=ChatModel(fake))
    assert not small.abstained and len(fake.calls) == 1  # 4 chunks: too few for a missing word to mean much
    fake = FakeChat(["Pods replicate with PostgreSQL [1]."])
    kb.policy = replace(kb.policy, unknown_min_chunks=4)
    answer = kb.ask("How do Pods use PostgreSQL replication?", model=ChatModel(fake))
    assert answer.abstained and fake.calls == []
    assert answer.passages  # nearest sources still shown
    extractive = kb.ask("How do Pods use PostgreSQL replication?", extractive=True)
    assert extractive.abstained and extractive.citations == ()


def test_unknown_terms_and_policy_switch(kb: KnowledgeBase) -> None:
    from dataclasses import replace

    from knowbase.knowledge.answer import unknown_share, unknown_terms

    assert unknown_terms(["pod", "postgresql", "how"], {"pod": 3, "postgresql": 0, "how": 0}) == ["postgresql"]
    assert unknown_terms(["pod"], {}) == []  # a term without a count is not called unknown
    idf = {"pod": 1.0, "postgresql": 3.0, "node": 4.0, "how": 5.0}
    assert unknown_share(["how", "pod", "postgresql"], {"pod": 3, "postgresql": 0}, idf) == pytest.approx(0.75)
    assert unknown_share(["pod", "node"], {"pod": 3, "node": 1}, idf) == 0.0
    # one unseen word among many known ones carries too little weight to decide
    kb.policy = replace(kb.policy, unknown_min_chunks=0)
    fake = FakeChat(["Pods run containers [1]."])
    answer = kb.ask("Do Pods run one or more containers when a node fails, zorblax?", model=ChatModel(fake))
    assert not answer.abstained and len(fake.calls) == 1
    kb.policy = replace(kb.policy, max_unknown=None, min_coverage=0.0)
    fake = FakeChat(["NOT FOUND"])
    answer = kb.ask("How do Pods use PostgreSQL replication?", model=ChatModel(fake))
    assert len(fake.calls) == 1 and answer.abstained  # the model decided this time


def test_chinese_compounds_split_differently_are_not_unknown() -> None:
    from knowbase.knowledge.answer import cjk_splits, known_by_parts

    assert cjk_splits("深度学习") == [("深", "度学习"), ("深度", "学习"), ("深度学", "习")]
    assert cjk_splits("容器") == [] and cjk_splits("postgresql") == []
    dfs = {"深度": 2, "学习": 5, "量子": 0, "计算": 3}
    assert known_by_parts(["深度学习", "量子计算", "容器"], dfs) == {"深度学习"}   # 量子 never occurs


def test_answer_records_model_usage_and_model_ready_time(kb: KnowledgeBase) -> None:
    answer = kb.ask("What is a Pod in Kubernetes?", model=ChatModel(FakeChat(["A Pod is the smallest unit [1]."])))
    assert answer.usage is not None and answer.usage.prompt_tokens > 0 and answer.usage.completion_tokens > 0
    assert answer.timings["retrieve"] <= answer.timings["model_ready"] <= answer.timings["first_token"]
    assert kb.ask("What is a Pod in Kubernetes?", extractive=True).usage is None


def test_model_errors_surface_only_when_the_model_is_needed(kb: KnowledgeBase) -> None:
    from knowbase.errors import KnowbaseError

    with pytest.raises(KnowbaseError):
        kb.ask("What is a Pod in Kubernetes?", model="llamacpp:/nonexistent/model.gguf")
    off_topic = kb.ask("What is the capital of France?", model="llamacpp:/nonexistent/model.gguf")
    assert off_topic.abstained  # abstained before the model was needed: its loading error is not raised


def test_source_lines_merge_passages_from_the_same_place() -> None:
    from knowbase.cli.ask import source_lines
    from knowbase.knowledge.types import Chunk

    def chunk(path: str, section: tuple[str, ...]) -> Chunk:
        return Chunk(text="t", start=0, end=1, section=section, doc_id=1, chunk_id=1, path=path)

    lines = source_lines([(1, chunk("/a/pods.md", ("Pods", "Lifecycle"))), (2, chunk("/a/nodes.md", ())),
                          (3, chunk("/a/pods.md", ("Pods", "Lifecycle"))), (4, chunk("/a/pods.md", ("Pods",)))])
    assert [line.split(" ", 1)[0] for line in lines] == ["[1][3]", "[2]", "[4]"]
    assert lines[0].endswith("pods.md § Pods > Lifecycle") and lines[2].endswith("pods.md § Pods")


def test_sentences_do_not_split_inside_field_paths_and_versions() -> None:
    text = ("The .spec.successfulJobsHistoryLimit and .spec.failedJobsHistoryLimit fields say how many Jobs are kept. "
            "By default, they are set to 3 and 1. Added in v1.19.\nConfigMap 自 v1.19 起可设为不可变。完成")
    assert split_sentences(text) == [
        "The .spec.successfulJobsHistoryLimit and .spec.failedJobsHistoryLimit fields say how many Jobs are kept.",
        "By default, they are set to 3 and 1.", "Added in v1.19.", "ConfigMap 自 v1.19 起可设为不可变。", "完成"]


def test_per_kb_min_coverage_decides_whether_the_model_is_asked(kb: KnowledgeBase) -> None:
    q = "What governs Pods being scheduled for deletion in production clusters after crashes?"  # coverage 0.28
    kb.set_abstain(min_cosine=1.0)                     # coverage alone decides (the fake embedder's cosines are noise)
    fake = FakeChat(["Pods are restarted [1]."])
    assert kb.ask(q, model=ChatModel(fake)).abstained and fake.calls == []
    policy = kb.set_abstain(min_coverage=0.2)
    assert policy.min_coverage == 0.2 and policy.min_cosine == 1.0 and kb.policy is policy
    assert not kb.ask(q, model=ChatModel(fake)).abstained and len(fake.calls) == 1
    assert kb.store.meta()["abstain.min_coverage"] == "0.2"
    with pytest.raises(ValueError, match="unknown abstention setting"):
        kb.set_abstain(min_overlap=0.1)
    assert kb.set_abstain(reset=True).min_coverage == 0.35
