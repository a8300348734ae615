"""Every test in the repo gets the real-server fixtures of the stack runner."""

import os

# python-telegram-bot 22 warns on every int-valued retry_after unless told to use timedelta;
# the suite turns warnings into errors, and the services run with the same switch.
os.environ.setdefault("PTB_TIMEDELTA", "true")

pytest_plugins = ["storefront_stack.pytest_plugin"]
