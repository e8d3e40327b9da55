"""``python -m lift_memory.cli``."""

import sys

from lift_memory.cli import main

sys.exit(main())
