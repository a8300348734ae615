"""Every test in the repo gets the real-server fixtures of the stack runner."""

import os

# python-telegram-bot 22 warns on every int-valued retry_after unless told to use timedelta;
# the suite turns warnings into errors, and the services run with the same switch.
os.environ.setdefault("PTB_TIMEDELTA", "true")
# Hundreds of apps start and stop in this one process: freezing each one's start-up
# objects (the services' default) would keep every finished app's cycles for good.
os.environ.setdefault("STOREFRONT_GC_FREEZE", "false")

pytest_plugins = ["storefront_stack.pytest_plugin"]
