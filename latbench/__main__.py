"""``python -m latbench``: the same as the ``latbench`` command."""

import sys

from latbench.cli import main

sys.exit(main())
