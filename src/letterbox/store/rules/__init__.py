"""Storage semantics every backend shares: what a flag, a keyword list, a quota, a
mailbox tree and \\Recent mean, apart from where they are kept.

A backend implements storage (rows, files, transactions) and calls these pure functions
and small classes for behaviour, so two backends cannot disagree on a rule.
"""
