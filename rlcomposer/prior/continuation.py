"""Continuing a musician's own opening: the model runs through its notes, then writes on.

:func:`continue_melody` keeps the opening exactly (every note, its metre, key and pick-up)
and samples what follows, up to ``num_bars`` full bars after the pick-up in all, so the
model's "bars to the end" input lets it cadence where the length says. The opening is
moved to the model's tonic C (by -5..+6 semitones, or an octave further to stay in range)
for the network and the whole melody moved back by the same interval, so the opening's
notes come back unchanged; continuations are drawn only among pitches that stay inside the
range when moved back. When the opening ends on a sounding note, the first continued step
starts something new (a note or a rest), so the opening's last note keeps its length.

A plain prior is told a final drawn from its training tunes' finals in the mode, and a
continuation that ends elsewhere is drawn again, as :meth:`MelodyPrior.sample` does; a tuned
policy (its metre and mode checked as ``generate`` checks them) is told "unknown". With
``best_of`` > 1 and a scorer (a reward), each continuation is the best of ``best_of``
continuations of the same opening, each scored as it is returned (in the opening's key).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rlcomposer.errors import RLComposerError
from rlcomposer.music.keys import Key
from rlcomposer.music.melody import (
    HOLD,
    MAX_PITCH,
    MIN_PITCH,
    REST,
    VOCAB_SIZE,
    Melody,
    MelodyError,
    pitch_token,
)
from rlcomposer.music.metre import MAX_BARS
from rlcomposer.prior.model import (
    ConditionError,
    MelodyCondition,
    MelodyPrior,
)
from rlcomposer.validation import SEED, Range, above, between

CONTINUATION_RANGES = {
    "--bars": between(1, MAX_BARS, whole=True), "--n": between(1, 10_000, whole=True), "--seed": SEED,
    "--temperature": above(0, 100, optional=True), "--top-k": Range(1, VOCAB_SIZE, whole=True, optional=True),
    "--best-of": between(1, 1024, whole=True), "--reward-uncertainty": between(0, 100),
}
"""Where each number of a :class:`ContinuationConfig` may lie, by its ``continue`` option."""

PRIOR_TEMPERATURE = 0.9
"""The prior's own continuations are drawn at 0.9 unless told otherwise: chosen on the corpus's
validation split (2-bar openings of 100 tunes, 2 bars of continuation, seeds 0-2), where 0.9 put
1.2-1.8% of the notes out of the opening's key against 1.4-2.1% at 1, at the same style overlap
with the real bars (0.858); ``experiments/abc_and_continuation.py --split validation``."""

REWARD_UNCERTAINTY = 2.0
"""Under a reward model, a continuation is chosen by its members' mean score less this many times
their standard deviation (a pessimistic ensemble, as ``tune``'s ``reward_uncertainty``): where
the listener's answers say little, the members disagree and a continuation is not chosen for the
reward model's guess alone. Chosen on the listener panel's choosing half (members 2, 7, 10,
300 answers each about whole melodies, best-of-54 continuations of 100 test-split openings):
median win-rate against the prior's continuation 0.840 / 0.850 / 0.880 / 0.895 at 0 / 0.5 / 1 /
2 (``experiments/continuation_under_reward.py --members 2,7,10 --pessimism 0,0.5,1,2``). On the
report half it neither helped nor hurt (medians 0.782-0.798 against 0.780-0.805 at 0)."""

KEEP_KEY = True
"""Under a reward (``best_of`` > 1), a continuation is chosen only among the candidates that add no
pitch class outside the opening's key that the opening did not use itself (among all of them when
none does): a reward model from a few hundred answers otherwise picks continuations that leave the
key (2.6-4.7% of their notes at best-of-256, against 1.9% in the real tunes' bars). Chosen on the
listener panel's choosing half (members 2, 7, 10, seeds 1 and 2, best-of-256 of 100 test-split
openings, ``experiments/continuation_under_reward.py --keep-key 1,0``): median win-rate against the
prior's continuation 0.890 and 0.925 against 0.890 and 0.945 without it (within the 0.01 allowed
beforehand), with 1.0-1.1% of the notes out of key against 2.6-4.5%."""

Scorer = Callable[[Sequence[Melody]], np.ndarray]
"""Scores of melodies (higher is better): a reward applied to each, for ``best_of``."""


@dataclass(frozen=True)
class ContinuationConfig:
    """What ``rlcomposer continue`` asks of the model."""

    num_bars: int = 4
    """The whole melody's length in full bars after the pick-up, the opening included (1..32)."""
    num_continuations: int = 4
    """How many continuations of the opening."""
    seed: int = 0
    """Fixes the continuations: the same seed and opening give the same melodies."""
    temperature: float | None = None
    """Softmax temperature: below 1 is safer, above 1 is wilder. None: :data:`PRIOR_TEMPERATURE`
    for the prior's own continuations, 1 under a reward (``best_of`` > 1) or from a tuned policy,
    whose stated KL to the prior assumes the model's own distribution."""
    top_k: int | None = None
    """Sample only among the k likeliest tokens (None: all)."""
    best_of: int = 1
    """Continuations drawn per one kept (the best under the scorer); 1: no choosing."""
    reward_uncertainty: float = REWARD_UNCERTAINTY
    """With ``best_of`` and a reward model: choose by its members' mean score less this many times
    their standard deviation (0: the mean; a ``module:function`` reward has no members and is
    used as it is). See :data:`REWARD_UNCERTAINTY`."""
    keep_key: bool = KEEP_KEY
    """With ``best_of``: choose only among candidates that bring in no pitch class outside the
    opening's key that the opening did not use (all of them when none qualifies). See
    :data:`KEEP_KEY`."""

    def __post_init__(self) -> None:
        for name, value in (("--bars", self.num_bars), ("--n", self.num_continuations), ("--seed", self.seed),
                            ("--temperature", self.temperature), ("--top-k", self.top_k),
                            ("--best-of", self.best_of), ("--reward-uncertainty", self.reward_uncertainty)):
            CONTINUATION_RANGES[name].check(value, name)

    def sampling_temperature(self, tuned: bool) -> float:
        """The temperature to sample at: ``temperature``, or its default for a tuned policy
        (``tuned``) or a prior (see :attr:`temperature`)."""
        if self.temperature is not None:
            return self.temperature
        return 1.0 if tuned or self.best_of > 1 else PRIOR_TEMPERATURE


def total_steps(opening: Melody, num_bars: int) -> int:
    """Steps of the continued melody: the opening's pick-up and ``num_bars`` full bars."""
    return opening.pickup_steps + num_bars * opening.metre.steps_per_bar


def check_opening(opening: Melody, num_bars: int) -> None:
    """Refuse an opening longer than the limit (``MAX_BARS``) or already as long as asked."""
    bar = opening.metre.steps_per_bar
    bars = (opening.num_steps - opening.pickup_steps) / bar
    if opening.num_steps - opening.pickup_steps > MAX_BARS * bar:
        raise RLComposerError(f"the opening is {bars:g} bars of {opening.metre.name} long, more than the "
                              f"limit of {MAX_BARS} bars")
    if opening.num_steps >= total_steps(opening, num_bars):
        raise RLComposerError(f"the opening is already {bars:g} bars long: ask for more than that (--bars "
                              f"is the whole melody's length, opening included, at most {MAX_BARS})")


def check_model(model: MelodyPrior, condition: MelodyCondition, name: str) -> None:
    """The model can take the opening's metre, mode and pick-up (a tuned policy: its own metre and
    mode only); else :class:`ConditionError` in one line, as ``generate`` says it."""
    tuned = model.tuned_condition
    if tuned is not None and (condition.metre, condition.mode) != (tuned.metre, tuned.mode):
        raise ConditionError(f"{name} was tuned for {tuned.metre.name} {tuned.mode}, not "
                             f"{condition.metre.name} {condition.mode} (the opening's): tune another "
                             "policy for that")
    try:
        model.check_condition(condition)
    except ConditionError as error:
        raise ConditionError(f"the opening is in {condition.metre.name} {condition.mode}: {error}") from None


def shift_to_c(opening: Melody) -> int:
    """Semitones that move the opening's tonic to C with every note inside the range."""
    tonic = opening.key.tonic_pitch_class
    shift = -tonic if tonic <= 6 else 12 - tonic
    pitches = [p for p, _, _ in opening.notes()] or [60]
    for candidate in sorted((shift, shift - 12, shift + 12), key=abs):
        if MIN_PITCH <= min(pitches) + candidate and max(pitches) + candidate <= MAX_PITCH:
            return candidate
    raise RLComposerError(f"the opening spans MIDI {min(pitches)}-{max(pitches)}: moved to C it does not "
                          f"fit the model's range {MIN_PITCH}-{MAX_PITCH}")


def continue_melody(model: MelodyPrior, opening: Melody, config: ContinuationConfig,
                    rng: np.random.Generator, scorer: Scorer | None = None,
                    name: str = "prior") -> list[Melody]:
    """``config.num_continuations`` melodies that start with ``opening`` note for note and go on to
    ``config.num_bars`` full bars, in the opening's metre, key and pick-up.

    Raises :class:`~rlcomposer.errors.RLComposerError` (one line) for an opening too long or
    already as long as asked, a metre, mode or pick-up the model cannot take, and ``best_of`` > 1
    without a scorer.
    """
    check_opening(opening, config.num_bars)
    steps = total_steps(opening, config.num_bars)
    condition = MelodyCondition(opening.metre, opening.key.mode, steps, opening.pickup_steps)
    check_model(model, condition, name)
    if config.best_of > 1 and scorer is None:
        raise RLComposerError("--best-of needs --reward to choose the best continuation")
    shift = shift_to_c(opening)
    in_c = opening.transpose(shift, Key("C", opening.key.mode))
    count = config.num_continuations * config.best_of
    generator = torch.Generator().manual_seed(int(rng.integers(0, 2**63 - 1)))
    temperature = config.sampling_temperature(model.tuned_condition is not None)
    tokens = model.sample(count, steps, generator, temperature, config.top_k, condition=condition,
                          prefix=in_c.tokens, allowed=_allowed_tokens(model, in_c, steps, shift))
    candidates = [Melody(row, {"model": name}, opening.metre, Key("C", opening.key.mode), opening.pickup_steps)
                  .transpose(-shift, opening.key) for row in tokens]
    chosen = list(range(count))
    scores = None
    if config.best_of > 1:  # the reward judges each continuation as it is returned (in the opening's key)
        assert scorer is not None
        scores = np.asarray(scorer(candidates), dtype=float).reshape(config.num_continuations, config.best_of)
        eligible = scores.copy()
        if config.keep_key:
            keeps = np.array([keeps_key(m, opening) for m in candidates]).reshape(scores.shape)
            eligible[keeps.any(axis=1)[:, None] & ~keeps] = -np.inf
        chosen = [row * config.best_of + int(column) for row, column in enumerate(eligible.argmax(axis=1))]
    result = []
    for index, row in enumerate(chosen):
        melody = candidates[row]
        extra = {"model": name, "seed": config.seed, "index": index, "temperature": temperature,
                 "top_k": config.top_k, "opening_steps": opening.num_steps}
        if "title" in opening.metadata:
            extra["title"] = f"{opening.metadata['title']} (continued {index + 1})"
        if scores is not None:
            extra.update(best_of=config.best_of, reward=float(scores.reshape(-1)[row]))
        melody = melody.with_metadata(**extra)
        if not kept_opening(melody, opening):  # the sampling never rewrites it; a bug if it did
            raise MelodyError("internal error: a continuation changed the opening's notes", "invalid")
        result.append(melody)
    return result


def keeps_key(melody: Melody, opening: Melody) -> bool:
    """Whether the notes ``melody`` adds after ``opening`` keep to the pitch classes of the opening's
    key (its scale) and those the opening itself used (a minor opening's raised leading note)."""
    allowed = set(opening.key.scale_pitch_classes()) | {p % 12 for p, _, _ in opening.notes()}
    start = opening.num_steps / 4
    return all(p % 12 in allowed for p, onset, _ in melody.notes() if onset >= start)


def kept_opening(melody: Melody, opening: Melody) -> bool:
    """Whether ``melody`` starts with ``opening``'s notes exactly (same pitches, onsets and lengths),
    in its metre, key and pick-up."""
    cut = opening.num_steps / 4
    notes = [n for n in melody.notes() if n[1] < cut]
    return (notes == opening.notes() and melody.metre == opening.metre and melody.key == opening.key
            and melody.pickup_steps == opening.pickup_steps)


def _allowed_tokens(model: MelodyPrior, opening: Melody, steps: int, shift: int) -> torch.Tensor:
    """``[steps, vocab]``: the tokens each step after the opening (in C) may draw: pitches that stay
    in range moved back to the opening's key, and no hold right after an opening that ends on a
    sounding note (its last note keeps its length)."""
    allowed = torch.zeros(steps, model.config.vocab_size, dtype=torch.bool)
    allowed[:, [REST, HOLD]] = True
    for pitch in range(MIN_PITCH, MAX_PITCH + 1):
        if MIN_PITCH <= pitch - shift <= MAX_PITCH:
            allowed[:, pitch_token(pitch)] = True
    if _sounding_at_end(opening.tokens) and opening.num_steps < steps:
        allowed[opening.num_steps, HOLD] = False
    return allowed


def _sounding_at_end(tokens: np.ndarray) -> bool:
    """Whether a note (not silence) sounds on the last step."""
    for token in tokens[::-1]:
        if token != HOLD:
            return token != REST
    return False


OPENING_SUFFIXES = (".abc", ".mid", ".midi", ".musicxml", ".xml", ".mxl", ".json")
"""The files an opening may come from."""


def read_opening(path) -> Melody:
    """The opening in a file (ABC, MIDI, MusicXML or melody JSON), within the named limits of
    :mod:`rlcomposer.music.limits`. A file of several voices is refused in one line rather than
    read as its top line: a MIDI file whose notes overlap, a MusicXML score of several parts (or
    with chords), ABC with a second voice (``V:``, ``&``). An ABC chord keeps its top note, counted
    in the metadata, as :mod:`rlcomposer.music.abc_reading` reads it."""
    from pathlib import Path

    from rlcomposer.music import limits

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in OPENING_SUFFIXES:
        raise RLComposerError(f"--from '{path}': an opening is an ABC, MIDI, MusicXML or JSON file "
                              f"({', '.join(OPENING_SUFFIXES)}), not '{suffix or path.name}'")
    if suffix in (".mid", ".midi"):
        data = limits.read_melody_file(path)
        try:
            notes, _ = limits.midi_notes(limits.read_midi(data))
        except MelodyError as error:
            raise MelodyError(f"{path}: {error}", error.reason) from None
        notes.sort()
        for (_, stop, _), (next_start, _, _) in zip(notes, notes[1:], strict=False):
            if next_start < stop:
                raise MelodyError(f"{path}: notes sound together at beat {next_start / 4:g}: a polyphonic "
                                  "file; an opening is one melody", "polyphonic")
    if suffix in (".musicxml", ".xml", ".mxl"):
        try:
            score = limits.read_musicxml(limits.read_melody_file(path))
        except MelodyError as error:
            raise MelodyError(error if str(error).startswith(str(path)) else f"{path}: {error}",
                              error.reason) from None
        parts = getattr(score, "parts", None)
        if parts is not None and len(parts) > 1:
            raise MelodyError(f"{path}: {len(parts)} parts: a polyphonic score; an opening is one melody",
                              "polyphonic")
    return Melody.load(path)
