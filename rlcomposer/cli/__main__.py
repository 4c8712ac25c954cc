"""``python -m rlcomposer.cli``: the same as the ``rlcomposer`` command."""

import sys

from rlcomposer.cli.main import main

sys.exit(main())
