"""The checkout saga at run time: the orchestrator (one saga) and the runner (many, leased)."""
