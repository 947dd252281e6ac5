"""``python -m invlatent``: the ``invlatent`` command (:mod:`invlatent.cli`)."""

import sys

from .cli import main

sys.exit(main())
