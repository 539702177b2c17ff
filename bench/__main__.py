"""Run every benchmark: `python -m bench` (what `make bench` does)."""

import sys

from bench.shell import main

sys.exit(main())
