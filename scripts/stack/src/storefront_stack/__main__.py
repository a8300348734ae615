"""``python -m storefront_stack``."""

import sys

from storefront_stack.cli import main

sys.exit(main())
