"""The rlcomposer rating app (Streamlit): ``rlcomposer app`` or ``make app`` starts it.

UI only: every read and write goes through :mod:`rlcomposer.feedback`.
Settings come from the environment (see ``feedback_ui/settings.py``).
"""

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from feedback_ui.main import run  # noqa: E402

run()
