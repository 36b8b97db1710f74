"""``python -m lpclassify``: the same as the ``lpclassify`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
