"""Start-up of ``python -m rlcomposer.cli``: the working directory goes last on ``sys.path``.

``python -m`` puts the working directory *first* on ``sys.path``, and importing
the ``rlcomposer`` package (which registers the Gymnasium environment) already
imports numpy: a ``numpy.py`` (or ``yaml.py``, ...) in the working directory
would run instead of the real package. ``rlcomposer/__init__.py`` therefore
calls :func:`working_directory_last` when Python is starting a module of this
package with ``-m`` (``sys.argv[0]`` is ``"-m"`` exactly while the module is
being located). The working directory stays on ``sys.path``, last, because the
``module:function`` rewards and listeners of the command line may live there.
Only the standard library is imported here.
"""

from __future__ import annotations

import os
import sys


def working_directory_last() -> None:
    """Put the working directory at the *end* of ``sys.path``, never ahead of installed packages.

    ``python -m`` and ``python -c`` put it first, so a ``mido.py`` there would run
    instead of the real package; ``module:function`` rewards and listeners in it
    are still found, after everything installed.
    """
    cwd = os.getcwd()
    if sys.path and sys.path[0] in ("", ".", cwd):
        del sys.path[0]
    if cwd not in sys.path:
        sys.path.append(cwd)


def starting_with_dash_m() -> bool:
    """Whether Python is locating a ``python -m`` module right now (its parent packages are importing)."""
    return sys.argv[:1] == ["-m"]
