"""Kubernetes problems found by deterministic analyzers and explained as ``Error:`` /
``Solution:``, grounded in cited documentation, with names kept private.

Modules: :mod:`~knowbase.diagnose.inputs` (kubectl JSON/YAML, describe, events, logs),
:mod:`~knowbase.diagnose.describe`, :mod:`~knowbase.diagnose.cluster` (a live cluster,
read-only), :mod:`~knowbase.diagnose.analyzers`, :mod:`~knowbase.diagnose.anonymise`,
:mod:`~knowbase.diagnose.explain`, :mod:`~knowbase.diagnose.tool` (an agent tool) and
:mod:`~knowbase.diagnose.types` (:class:`Finding`, :class:`Diagnosis`, the JSON schema).
"""

from knowbase.diagnose.api import diagnose, needs_anonymizing
from knowbase.diagnose.types import Diagnosis, Evidence, Explanation, Finding, ObjectRef

__all__ = ["Diagnosis", "Evidence", "Explanation", "Finding", "ObjectRef", "diagnose", "needs_anonymizing"]
