"""Run the command line as ``python -m mailtracker``."""

import sys

from mailtracker.cli import main

sys.exit(main())
