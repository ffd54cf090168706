"""`python -m soak`: see soak/harness.py and docs/soak.md."""

import sys

from soak.harness import main

sys.exit(main())
