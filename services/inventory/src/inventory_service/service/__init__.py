"""Use cases: apply the domain rules through the repository inside the caller's transaction.

Functions here flush at most; the request (or the background task) owns the commit.
"""
