"""Every test in the repo gets the real-server fixtures of the stack runner."""

pytest_plugins = ["storefront_stack.pytest_plugin"]
