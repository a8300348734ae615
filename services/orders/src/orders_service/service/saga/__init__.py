"""The checkout saga at run time: the steps (one handler each), the orchestrator (one saga) and
the runner (many, leased)."""
