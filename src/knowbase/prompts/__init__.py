"""Prompt templates: named slots, chat messages, few-shot examples, safe loading from files.

* :class:`PromptTemplate`, :class:`ChatPromptTemplate`, :class:`MessagesPlaceholder`
* :class:`FewShotPromptTemplate` with :class:`AllExamples`, :class:`TokenBudgetSelector`,
  :class:`SimilaritySelector`
* :func:`load_template`, :func:`load_chat_template` (package templates and a user folder;
  loading cannot leave the folder)
"""

from knowbase.prompts.fewshot import AllExamples, FewShotPromptTemplate, SimilaritySelector, TokenBudgetSelector
from knowbase.prompts.loader import load_chat_template, load_template, template_path
from knowbase.prompts.template import ChatPromptTemplate, MessagesPlaceholder, PromptTemplate

__all__ = [
    "AllExamples", "ChatPromptTemplate", "FewShotPromptTemplate", "MessagesPlaceholder", "PromptTemplate",
    "SimilaritySelector", "TokenBudgetSelector", "load_chat_template", "load_template", "template_path",
]
