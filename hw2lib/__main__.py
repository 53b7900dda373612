"""``python -m hw2lib``: the command line of :mod:`hw2lib.cli` (chapter 2, "Reproducing the runs")."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
