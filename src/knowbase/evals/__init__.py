"""Evaluation: ranking metrics (:mod:`knowbase.evals.metrics`) and benchmark helpers."""
