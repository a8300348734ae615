"""The ws-gateway service. Live order status and admin alerts over WebSockets, presence in Redis."""
