"""The folk corpus that ships inside music21: ABC parsing, building and caching.

Owns the collections' tune texts and their parsing into melodies (metre, key,
bar alignment, transposition to the reference tonic; :mod:`~rlcomposer.corpus.abc`),
and the corpus built from them: the split by tune and the cached compact
arrays (:mod:`~rlcomposer.corpus.build`, which imports ``abc``, never the reverse).

May import: the foundation and ``rlcomposer.music``.
"""
