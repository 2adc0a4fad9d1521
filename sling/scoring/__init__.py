"""Scoring: answer metrics, statistics, leakage, the paper's rescored answers and the report."""
