"""Every test in the repo gets the real-server fixtures of the stack runner."""

import os

# python-telegram-bot 22 warns on every int-valued retry_after unless told to use timedelta;
# the suite turns warnings into errors, and the services run with the same switch.
os.environ.setdefault("PTB_TIMEDELTA", "true")
# Hundreds of apps start and stop in this one process: freezing each one's start-up
# objects (the services' default) would keep every finished app's cycles for good.
os.environ.setdefault("STOREFRONT_GC_FREEZE", "false")

# Services built in this process are tests: only then may they run on throwaway signing
# keys (anywhere else a missing key stops the service at start-up). Processes the
# harness starts get the environment it gives them (the runner's is development).
os.environ.setdefault("STOREFRONT_ENVIRONMENT", "test")

pytest_plugins = ["storefront_stack.pytest_plugin"]
