"""``python -m anybackprop ...``: the ``anybackprop`` command."""

import sys

from .cli import main

sys.exit(main())
