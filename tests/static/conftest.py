"""What several static checks read: a service's command line, run once per session."""

import subprocess
import sys
from collections.abc import Callable
from functools import cache

import pytest

from storefront_stack.topology import Service


@cache
def _usage(package: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", package, "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout


@pytest.fixture(scope="session")
def usage_of() -> Callable[[Service], str]:
    """``python -m <package> --help`` of a service: the commands its image's entry point
    offers (``serve``, ``migrate``, ...)."""
    return lambda service: _usage(service.package)
