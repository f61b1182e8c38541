"""Prompt templates: slots, escapes, build-time errors, chat and few-shot templates, safe loading."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from knowbase.errors import TemplateError
from knowbase.models.base import Embedder, Message
from knowbase.models.fake import FakeEmbedder
from knowbase.prompts import (
    ChatPromptTemplate,
    FewShotPromptTemplate,
    MessagesPlaceholder,
    PromptTemplate,
    SimilaritySelector,
    TokenBudgetSelector,
    load_chat_template,
    load_template,
    template_path,
)
from knowbase.prompts.loader import PACKAGE_TEMPLATES


def test_slots_and_escapes() -> None:
    t = PromptTemplate("Translate {text} into {language}. Keep {{braces}} and {text}.")
    assert t.variables == ("text", "language")
    assert t.format(text="cheese", language="French") == "Translate cheese into French. Keep {braces} and cheese."


def test_partial_fixes_slots() -> None:
    t = PromptTemplate("{greeting}, {name}!").partial(greeting="Hello")
    assert t.variables == ("name",)
    assert t.slots == ("greeting", "name")
    assert t.format(name="Ada") == "Hello, Ada!"


def test_unknown_partial_is_error_at_build_time() -> None:
    with pytest.raises(TemplateError) as info:
        PromptTemplate("{a}").partial(b=1)
    assert info.value.unknown == ["b"]
    with pytest.raises(TemplateError):
        PromptTemplate("{a}", partial_variables={"zz": 1})


def test_declared_variables_checked_at_build_time() -> None:
    PromptTemplate("{a} {b}", input_variables=["b", "a"])
    with pytest.raises(TemplateError) as info:
        PromptTemplate("{a}", input_variables=["a", "b"])
    assert info.value.missing == ["b"]


def test_missing_and_unknown_values() -> None:
    t = PromptTemplate("{a} and {b}")
    with pytest.raises(TemplateError) as info:
        t.format(a=1)
    assert info.value.missing == ["b"]
    with pytest.raises(TemplateError) as info:
        t.format(a=1, b=2, c=3)
    assert info.value.unknown == ["c"]
    assert t.render({"a": 1, "b": 2, "c": 3}) == "1 and 2"      # chains pass extra keys


@pytest.mark.parametrize("bad", ["{", "}", "a { b", "{a.__class__}", "{a[0]}", "{0}", "{}", "{a!r}", "{a:>10}",
                                 '{"json": 1}'])
def test_malformed_templates_rejected(bad: str) -> None:
    with pytest.raises(TemplateError):
        PromptTemplate(bad)


def test_rendering_never_reaches_attributes() -> None:
    class Secret:
        password = "hunter2"

        def __str__(self) -> str:
            return "<secret>"

    t = PromptTemplate("value: {x}")
    assert t.format(x=Secret()) == "value: <secret>"
    assert t.format(x="{x.password} {{ }}") == "value: {x.password} {{ }}"   # values are not re-parsed


def test_add_concatenates() -> None:
    t = PromptTemplate("Q: {q}\n") + "A: {a}"
    assert t.variables == ("q", "a")


def test_chat_template() -> None:
    chat = ChatPromptTemplate([
        ("system", "You answer in {language}."),
        MessagesPlaceholder("history", optional=True),
        ("human", "{question}"),
    ])
    assert chat.variables == ("language", "history", "question")
    assert chat.required == ("language", "question")
    msgs = chat.to_messages({"language": "French", "question": "Hi?"})
    assert msgs == [Message.system("You answer in French."), Message.user("Hi?")]
    hist = [Message.user("a"), Message.assistant("b")]
    msgs = chat.partial(language="German").to_messages({"question": "Q", "history": hist})
    assert [m.role for m in msgs] == ["system", "user", "assistant", "user"]
    assert msgs[0].content == "You answer in German."
    with pytest.raises(TemplateError):
        ChatPromptTemplate([("robot", "x")])
    with pytest.raises(TemplateError):
        chat.format_messages(language="x", question="y", extra=1)


def test_fewshot_all_and_budget() -> None:
    examples = [{"word": "happy", "antonym": "sad"}, {"word": "tall", "antonym": "short"},
                {"word": "energetic", "antonym": "lethargic"}]
    fs = FewShotPromptTemplate(examples, "Word: {word}\nAntonym: {antonym}", prefix="Give antonyms.",
                               suffix="Word: {input}\nAntonym:", separator="\n---\n")
    assert fs.variables == ("input",)
    assert fs.format(input="big") == ("Give antonyms.\n---\nWord: happy\nAntonym: sad\n---\nWord: tall\nAntonym: short"
                                      "\n---\nWord: energetic\nAntonym: lethargic\n---\nWord: big\nAntonym:")
    # each example is 4 words + 2 colons = 6 "tokens" with a word counter
    budget = TokenBudgetSelector("Word: {word}\nAntonym: {antonym}", max_tokens=13,
                                 count_tokens=lambda s: len(s.replace(":", " :").split()))
    fs2 = FewShotPromptTemplate(examples, "Word: {word}\nAntonym: {antonym}", suffix="Word: {input}", selector=budget)
    assert fs2.format(input="big") == "Word: happy\nAntonym: sad\n\nWord: tall\nAntonym: short\n\nWord: big"


def test_fewshot_example_missing_key_is_build_error() -> None:
    with pytest.raises(TemplateError) as info:
        FewShotPromptTemplate([{"word": "x"}], "{word} {antonym}", suffix="{input}")
    assert info.value.row == 0


def test_fewshot_similarity_selector() -> None:
    emb = Embedder(FakeEmbedder(256))
    examples = [{"q": "how do I restart a kubernetes pod", "a": "kubectl delete pod"},
                {"q": "best pasta recipe with tomatoes", "a": "boil pasta"},
                {"q": "list kubernetes pods in a namespace", "a": "kubectl get pods -n"}]
    fs = FewShotPromptTemplate(examples, "Q: {q}\nA: {a}", suffix="Q: {input}\nA:",
                               selector=SimilaritySelector(emb, k=2, input_keys=["input"], example_keys=["q"]))
    out = fs.render({"input": "kubernetes pods restart"})
    assert "pasta" not in out
    assert out.index("restart a kubernetes pod") < out.index("list kubernetes pods")


# --- loading ---------------------------------------------------------------------------------
def test_load_shipped_templates() -> None:
    t = load_template("chain_math")
    assert t.variables == ("question",)
    assert load_template("chain_math.txt").template == t.template
    mine = [p for p in PACKAGE_TEMPLATES.glob("*.txt") if p.stem.split("_")[0] in {"chain", "memory", "output"}]
    assert len(mine) == 10
    for path in mine:                                    # every template of this area parses
        load_template(path.stem)


def test_user_folder_overrides_package(tmp_path: Path) -> None:
    (tmp_path / "chain_math.txt").write_text("Mine: {question}\n", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.txt").write_text("{a}", encoding="utf-8")
    assert load_template("chain_math", folder=tmp_path).template == "Mine: {question}"
    assert load_template("sub/x", folder=tmp_path).variables == ("a",)


def test_chat_template_file(tmp_path: Path) -> None:
    (tmp_path / "qa.txt").write_text("[system]\nBe brief.\n[user]\n{question}\n", encoding="utf-8")
    chat = load_chat_template("qa", folder=tmp_path)
    assert chat.to_messages({"question": "Why?"}) == [Message.system("Be brief."), Message.user("Why?")]


@pytest.mark.parametrize("name", ["../secret", "../../etc/passwd", "/etc/passwd", "sub/../../secret", "a\\..\\b",
                                  "..", ".", "", "a//b", "x\x00y", "~/x", "C:/x"])
def test_traversal_names_refused(tmp_path: Path, name: str) -> None:
    (tmp_path / "secret.txt").write_text("top secret {x}", encoding="utf-8")
    folder = tmp_path / "prompts"
    folder.mkdir()
    with pytest.raises(TemplateError) as info:
        load_template(name, folder=folder)
    assert info.value.reason in {"name", "missing"}


def test_symlink_out_of_folder_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret", encoding="utf-8")
    folder = tmp_path / "prompts"
    folder.mkdir()
    os.symlink(secret, folder / "evil.txt")
    os.symlink(tmp_path, folder / "up")
    with pytest.raises(TemplateError) as info:
        load_template("evil", folder=folder)
    assert info.value.reason == "escape"
    with pytest.raises(TemplateError) as info:
        load_template("up/secret", folder=folder)
    assert info.value.reason == "escape"


def test_symlink_inside_folder_allowed(tmp_path: Path) -> None:
    (tmp_path / "real.txt").write_text("hi {n}", encoding="utf-8")
    os.symlink(tmp_path / "real.txt", tmp_path / "alias.txt")
    assert load_template("alias", folder=tmp_path).format(n=1) == "hi 1"


def test_missing_template() -> None:
    with pytest.raises(TemplateError) as info:
        template_path("no_such_template_here")
    assert info.value.reason == "missing"
