"""Pure order and saga rules: no I/O, no FastAPI, no SQLAlchemy."""
