"""Use cases: search and product pages (through the cache), and the full reindex."""
