"""The ``rlcomposer`` command line: one module per command group, the shared options once.

========================  ==========================================================
``cli.main``              the parser, built from the groups' ``register``, and :func:`main`
``cli.common``            the shared options (``--json``/``--quiet``, ``--db``, corpus),
                          output, argument types, the corpus cache, the database URL
``cli.corpus``            ``corpus build``
``cli.prior``             ``prior train``, ``prior evaluate``
``cli.melodies``          ``generate``, ``evaluate``
``cli.tune``              ``tune``
``cli.experiment``        ``experiment run``, ``experiment resume``
``cli.feedback``          ``db ...``, ``pool add``, ``ratings export`` (creates ``ratings``)
``cli.reward``            ``ratings simulate``, ``reward train``
``cli.app``               ``app`` (the Streamlit rating app)
========================  ==========================================================

The only package (with the app) that reads ``sys.argv`` and the environment.
It may import every stage below it; the heavy ones only inside the handlers.
"""

from rlcomposer.cli.main import main

__all__ = ["main"]
