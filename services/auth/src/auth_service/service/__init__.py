"""Use cases of the auth service: they know nothing of HTTP and never commit."""
