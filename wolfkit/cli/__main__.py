"""`python -m wolfkit.cli …`: the same as the `wolfkit` command."""

import sys

from wolfkit.cli import main

if __name__ == "__main__":
    sys.exit(main())
