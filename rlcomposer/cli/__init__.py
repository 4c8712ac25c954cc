"""The ``rlcomposer`` command line: one module per command group, the shared options once.

The only package (with the app) that reads ``sys.argv`` and the environment.
It may import every stage below it.
"""

from rlcomposer.cli.main import main

__all__ = ["main"]
