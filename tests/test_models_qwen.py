"""Integration with the embedded default, Qwen2.5-Coder-1.5B (two calls in all: it is slow on 2 cores)."""

from __future__ import annotations

import pydantic
import pytest

from knowbase.config import Settings
from knowbase.models.base import ChatModel, Message
from knowbase.models.registry import get_chat_model

pytestmark = [pytest.mark.slow, pytest.mark.qwen]


@pytest.fixture(scope="module")
def qwen() -> ChatModel:
    return get_chat_model("llamacpp:qwen2.5-coder-1.5b", settings=Settings.load(), tracing=False)


def test_qwen_answers_from_given_context(qwen: ChatModel) -> None:
    context = "Cluster notes: the Zephyr cluster runs 14 worker nodes in region eu-west-3."
    result = qwen.chat([Message.system("Answer from the context only."),
                        Message.user(f"{context}\n\nHow many worker nodes does the Zephyr cluster run? "
                                     "Reply with the number only.")], max_tokens=6)
    assert "14" in result.text
    assert result.usage.prompt_tokens > 20 and result.finish_reason in ("stop", "length")


class Deployment(pydantic.BaseModel):
    name: str
    replicas: int


def test_qwen_json_schema_output_validates(qwen: ChatModel) -> None:
    schema = Deployment.model_json_schema()
    result = qwen.chat("The deployment web-frontend runs 3 replicas. Extract its name and replica count as JSON.",
                       json_schema=schema, max_tokens=30)
    parsed = Deployment.model_validate_json(result.text)
    assert parsed.replicas == 3 and "web-frontend" in parsed.name
