"""The catalog service. Typo-tolerant product search on an Elasticsearch read model."""
