"""Music representation: the :class:`~rlcomposer.music.melody.Melody` value object and what reads it.

Owns the token encoding (a sixteenth-note grid of pitch onsets, HOLD and REST),
conversion to and from MIDI, MusicXML, JSON and music21 streams, the built-in
synthesiser (:mod:`~rlcomposer.music.audio`), the Sequence Tutor music metrics
(:mod:`~rlcomposer.music.metrics`) and RL Tuner's music-theory reward terms
(:mod:`~rlcomposer.music.theory`).

May import: the foundation (``rlcomposer.errors``, ``config``, ``checkpoints``) only.
"""
