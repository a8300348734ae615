"""Outbound clients: inventory's internal API and the payment and shipping providers
(HTTP, base URLs from settings), the retries and shared circuit breakers around them
(``resilience``, ``breakers``), and the admin alerts on Redis pub/sub (``alerts``)."""
