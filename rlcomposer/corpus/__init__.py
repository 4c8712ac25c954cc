"""The folk corpus that ships inside music21: ABC parsing, building and caching.

Owns the collections' tune texts and their parsing into melodies (metre, key,
bar alignment, transposition to the reference tonic; :mod:`~rlcomposer.corpus.abc`),
the corpus built from them: its config, the split by tune, the counts of a build and
the compact arrays (:mod:`~rlcomposer.corpus.corpus`), and the build itself: every tune
parsed, deduplicated, split and cached (:mod:`~rlcomposer.corpus.build`). ``build``
imports ``corpus`` and ``abc``, ``corpus`` imports ``abc``, never the reverse.

May import: the foundation and ``rlcomposer.music``.
"""
