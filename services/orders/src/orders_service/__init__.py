"""The orders service. Checkout as a persisted saga with compensation and circuit breakers."""
