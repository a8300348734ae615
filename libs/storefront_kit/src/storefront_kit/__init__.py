"""ASGI basics shared by every storefront service.

Modules are imported by name (``storefront_kit.errors``, ``storefront_kit.events``...);
this package keeps no global state and reads no configuration of its own: services
pass their settings in.
"""

__all__: list[str] = []
