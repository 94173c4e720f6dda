"""Compliance checker and course leaderboard for nano agent submissions.

Not built yet: the rule registry, `python -m compliance check` and the leaderboard land with
the checker issue. Until then this package is empty on purpose, and nothing imports it.
"""
