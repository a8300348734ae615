"""Pure inventory rules: no I/O, no FastAPI. The ``service`` package applies them."""
