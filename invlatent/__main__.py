"""``python -m invlatent``: the ``invlatent`` command (:mod:`invlatent.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":  # not when imported (doctest collection, pkgutil walks)
    sys.exit(main())
