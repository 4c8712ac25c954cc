"""The folk corpus that ships inside music21: ABC parsing, building and caching.

Owns the collections' tune texts, their parsing into melodies (metre, key,
bar alignment, transposition to the reference tonic), the split by tune and
the cached compact arrays (:mod:`~rlcomposer.corpus.build`).

May import: the foundation and ``rlcomposer.music``.
"""
