"""Outbound clients: Elasticsearch (the client, its errors, the index behind the alias)
and inventory's export."""
