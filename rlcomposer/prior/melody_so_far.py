"""What a melody has done so far, as numbers a tuned policy reads beside its GRU state.

A taste often depends on the melody as a whole: one climax, late; a variety of note lengths
and pitches; bars whose rhythm does not simply repeat. A policy fine-tuned from the prior
has to carry such counts in its GRU state, which learnt next-note prediction and keeps them
poorly (a regression of a listener's score on the prior's GRU state explains about a third of
it). :class:`MelodySoFar` counts them explicitly, step by step, like a recurrent cell with a
fixed update: after each token it holds the notes, rests, pitches, note lengths, highest and
lowest notes, moves and bar rhythms so far, and :meth:`MelodySoFar.scan` hands out
:data:`FEATURE_NAMES` for every step it is run over.

The state is read from the tokens alone (deterministic, no weights), so a tuned policy
(``PriorConfig.melody_so_far``) samples, scores and continues as any prior does: its
recurrent state is the GRU's and this one's together.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlcomposer.music.melody import MIN_PITCH, NUM_SPECIAL_TOKENS, REST, VOCAB_SIZE

FEATURE_NAMES = (
    "progress",  # step / melody length
    "notes",  # notes so far / 16
    "rest_share",  # share of the steps so far that are silent
    "distinct_pitches",  # distinct pitches so far / 12
    "range",  # highest - lowest so far, octaves
    "highest",  # highest so far, octaves above C4
    "lowest",  # lowest so far, octaves above C4
    "last",  # the last note, octaves above C4
    "below_highest",  # highest - last, octaves
    "climax_once",  # the highest so far struck once
    "climax_twice",  # ... twice
    "climax_more",  # ... three times or more
    "climax_at",  # step of the highest's first onset / melody length
    "ascending",  # share of moves that go up
    "leaps",  # share of moves of 5 semitones or more
    "last_interval",  # the last move, octaves (signed)
    "held",  # steps the current note or rest has lasted / 16
    "sounding",  # a note is sounding (not a rest)
    "distinct_lengths",  # distinct lengths of finished notes / 4
    "rhythm_repeats",  # share of finished bars whose onset pattern came earlier
    "bar_follows_earlier",  # this bar's onsets so far are those of an earlier bar's start
    "bars_done",  # finished bars / melody's bars
    "mean_interval",  # mean |interval| between consecutive notes so far (repeats count 0), fifths
    "intervals",  # intervals so far / 32
)
"""The numbers :meth:`MelodySoFar.scan` gives at each step, in order."""

NUM_FEATURES = len(FEATURE_NAMES)
MAX_LENGTH_CLASS = 17  # note lengths 1..16 steps, and longer
MAX_BAR_PATTERNS = 33  # bars of the longest melody (32) and a pick-up bar
NUM_PITCHES = 37


@dataclass
class SoFarState:
    """Per-row counts after the tokens read so far (all tensors ``[B]`` or ``[B, K]``)."""

    step: torch.Tensor
    notes: torch.Tensor
    rest_steps: torch.Tensor
    seen: torch.Tensor  # [B, 37] pitches struck
    highest: torch.Tensor  # -1: none yet (pitch index 0..36)
    lowest: torch.Tensor
    high_count: torch.Tensor
    high_at: torch.Tensor
    last: torch.Tensor
    last_interval: torch.Tensor
    moves: torch.Tensor
    ups: torch.Tensor
    leaps: torch.Tensor
    held: torch.Tensor  # steps the current event has lasted
    sounding: torch.Tensor  # bool
    lengths: torch.Tensor  # [B, 17] finished note lengths seen
    pattern: torch.Tensor  # this bar's onsets so far, as bits
    patterns: torch.Tensor  # [B, 33] earlier bars' onset patterns (-1: none)
    bars: torch.Tensor  # bars finished
    repeats: torch.Tensor  # finished bars whose pattern came earlier
    intervals: torch.Tensor  # intervals between consecutive notes so far (repeats included)
    interval_sum: torch.Tensor  # their sizes, semitones

    def fields(self) -> tuple[torch.Tensor, ...]:
        return tuple(getattr(self, name) for name in self.__dataclass_fields__)

    def index(self, rows: torch.Tensor) -> SoFarState:
        return SoFarState(*(field[rows] for field in self.fields()))


class MelodySoFar:
    """A fixed recurrent update over melody tokens (see the module docstring).

    ``bar_steps``, ``pickup_steps`` and ``num_steps`` are ``[B]`` tensors: each row's bar
    length, pick-up and melody length in steps.
    """

    def __init__(self, bar_steps: torch.Tensor, pickup_steps: torch.Tensor, num_steps: torch.Tensor):
        self.bar_steps = bar_steps.long()
        self.pickup_steps = pickup_steps.long()
        self.num_steps = num_steps.long().clamp(min=1)
        self.total_bars = torch.div(self.num_steps - self.pickup_steps + self.bar_steps - 1, self.bar_steps,
                                    rounding_mode="floor").clamp(min=1)

    def initial(self) -> SoFarState:
        batch = self.bar_steps.shape[0]
        zeros = torch.zeros(batch, dtype=torch.long)
        none = torch.full((batch,), -1, dtype=torch.long)
        return SoFarState(
            step=zeros.clone(), notes=zeros.clone(), rest_steps=zeros.clone(),
            seen=torch.zeros(batch, NUM_PITCHES, dtype=torch.bool), highest=none.clone(), lowest=none.clone(),
            high_count=zeros.clone(), high_at=zeros.clone(), last=none.clone(), last_interval=zeros.clone(),
            moves=zeros.clone(), ups=zeros.clone(), leaps=zeros.clone(), held=zeros.clone(),
            sounding=torch.zeros(batch, dtype=torch.bool),
            lengths=torch.zeros(batch, MAX_LENGTH_CLASS, dtype=torch.bool), pattern=zeros.clone(),
            patterns=torch.full((batch, MAX_BAR_PATTERNS), -1, dtype=torch.long), bars=zeros.clone(),
            repeats=zeros.clone(), intervals=zeros.clone(), interval_sum=zeros.clone())

    def update(self, state: SoFarState, token: torch.Tensor) -> SoFarState:
        """The state after ``token`` (``[B]``) is written at ``state.step``."""
        s = SoFarState(*(field.clone() for field in state.fields()))
        token = token.long()
        rows = torch.arange(token.shape[0])
        is_note = token >= NUM_SPECIAL_TOKENS
        is_rest = token == REST
        starts = is_note | (is_rest & s.sounding) | (is_rest & (s.step == 0))
        # a note (or rest) ends where another event starts: count its length if it was a note
        ended_note = starts & s.sounding & (s.held > 0)
        length_class = (s.held.clamp(1, MAX_LENGTH_CLASS) - 1)
        s.lengths[rows[ended_note], length_class[ended_note]] = True
        s.held = torch.where(starts, torch.ones_like(s.held), s.held + 1)
        s.sounding = torch.where(is_note, torch.ones_like(s.sounding),
                                 torch.where(is_rest, torch.zeros_like(s.sounding), s.sounding))
        s.rest_steps = s.rest_steps + (~s.sounding).long()
        pitch = (token - NUM_SPECIAL_TOKENS).clamp(min=0)
        s.notes = s.notes + is_note.long()
        s.seen[rows[is_note], pitch[is_note]] = True
        moved = is_note & (s.last >= 0)
        interval = pitch - s.last
        s.last_interval = torch.where(moved, interval, s.last_interval)
        s.moves = s.moves + (moved & (interval != 0)).long()
        s.intervals = s.intervals + moved.long()
        s.interval_sum = s.interval_sum + torch.where(moved, interval.abs(), torch.zeros_like(interval))
        s.ups = s.ups + (moved & (interval > 0)).long()
        s.leaps = s.leaps + (moved & (interval.abs() >= 5)).long()
        s.last = torch.where(is_note, pitch, s.last)
        higher = is_note & (pitch > s.highest)
        same_high = is_note & (pitch == s.highest)
        s.high_count = torch.where(higher, torch.ones_like(s.high_count), s.high_count + same_high.long())
        s.high_at = torch.where(higher, s.step, s.high_at)
        s.highest = torch.where(higher, pitch, s.highest)
        s.lowest = torch.where(is_note & ((s.lowest < 0) | (pitch < s.lowest)), pitch, s.lowest)
        # bar rhythm: onsets (notes) by position in the bar, counted from the first downbeat
        position = torch.remainder(s.step - self.pickup_steps, self.bar_steps)
        s.pattern = s.pattern | (is_note.long() << position)
        bar_ends = position == self.bar_steps - 1
        whole_bar = bar_ends & (s.step - self.pickup_steps >= self.bar_steps - 1)
        earlier = (s.patterns == s.pattern.unsqueeze(1)).any(dim=1)
        s.repeats = s.repeats + (whole_bar & earlier).long()
        slot = s.bars.clamp(max=MAX_BAR_PATTERNS - 1)
        s.patterns[rows[whole_bar], slot[whole_bar]] = s.pattern[whole_bar]
        s.bars = s.bars + whole_bar.long()
        s.pattern = torch.where(bar_ends, torch.zeros_like(s.pattern), s.pattern)
        s.step = s.step + 1
        return s

    def features(self, state: SoFarState) -> torch.Tensor:
        """:data:`FEATURE_NAMES` ``[B, F]`` for predicting the token at ``state.step``."""
        s = state
        steps = s.step.clamp(min=1).float()
        any_note = s.highest >= 0
        octave = 12.0
        c4 = 60 - MIN_PITCH

        def pitch_feature(pitch: torch.Tensor) -> torch.Tensor:
            return torch.where(any_note, (pitch - c4).float() / octave, torch.zeros_like(steps))

        moves = s.moves.clamp(min=1).float()
        position = torch.remainder(s.step - self.pickup_steps, self.bar_steps)
        upto = (torch.ones_like(position) << position) - 1
        known = s.patterns >= 0
        follows = (known & ((s.patterns & upto.unsqueeze(1)) == s.pattern.unsqueeze(1))).any(dim=1)
        columns = [
            s.step.float() / self.num_steps.float(),
            s.notes.float() / 16.0,
            s.rest_steps.float() / steps,
            s.seen.sum(dim=1).float() / 12.0,
            torch.where(any_note, (s.highest - s.lowest).float() / octave, torch.zeros_like(steps)),
            pitch_feature(s.highest),
            pitch_feature(s.lowest),
            pitch_feature(s.last),
            torch.where(any_note, (s.highest - s.last).float() / octave, torch.zeros_like(steps)),
            (s.high_count == 1).float(),
            (s.high_count == 2).float(),
            (s.high_count >= 3).float(),
            torch.where(any_note, s.high_at.float() / self.num_steps.float(), torch.zeros_like(steps)),
            s.ups.float() / moves,
            s.leaps.float() / moves,
            s.last_interval.float() / octave,
            s.held.float() / 16.0,
            s.sounding.float(),
            s.lengths.sum(dim=1).float() / 4.0,
            s.repeats.float() / s.bars.clamp(min=1).float(),
            (follows & (position > 0)).float(),
            s.bars.float() / self.total_bars.float(),
            s.interval_sum.float() / s.intervals.clamp(min=1).float() / 7.0,
            s.intervals.float() / 32.0,
        ]
        return torch.stack(columns, dim=1)

    def scan(self, previous_tokens: torch.Tensor, state: SoFarState | None) -> tuple[torch.Tensor, SoFarState]:
        """Features ``[B, L, F]`` for ``L`` steps given each step's previous token, and the state
        after them. A previous token outside the vocabulary (``BOS`` before step 0) writes nothing."""
        state = self.initial() if state is None else state
        out = []
        for i in range(previous_tokens.shape[1]):
            token = previous_tokens[:, i]
            written = token < VOCAB_SIZE
            if bool(written.all()):
                state = self.update(state, token)
            elif bool(written.any()):
                state = _update_where(self, state, token, written)
            out.append(self.features(state))
        return torch.stack(out, dim=1), state


def _update_where(tracker: MelodySoFar, state: SoFarState, token: torch.Tensor, rows: torch.Tensor) -> SoFarState:
    """Update only ``rows`` (others keep their state)."""
    updated = tracker.update(state, torch.where(rows, token, torch.zeros_like(token)))
    fields = []
    for old, new in zip(state.fields(), updated.fields(), strict=True):
        mask = rows.view(-1, *([1] * (old.dim() - 1)))
        fields.append(torch.where(mask, new, old))
    return SoFarState(*fields)


ACTION_FEATURE_NAMES = (
    "step_size",  # |interval| from the last note, octaves (0 before the first note)
    "step",  # the interval, signed
    "step_squared",  # its square
    "leap",  # 5 semitones or more
    "repeat",  # the same pitch again
    "new_climax",  # above the highest so far
    "climax_again",  # the highest so far struck again
    "new_lowest",  # below the lowest so far
    "height",  # octaves above C4
    "onset",  # a note starts (a pitch token)
    "rest",  # a rest
)
"""Features of each possible next token given the melody so far (:func:`action_features`);
holding the current note or rest is the zero of every feature."""
NUM_ACTION_FEATURES = len(ACTION_FEATURE_NAMES)


def action_features(features: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """:data:`ACTION_FEATURE_NAMES` ``[..., vocab, K]`` of every token, from :data:`FEATURE_NAMES`
    ``[..., F]`` (the state before the token)."""
    names = {name: i for i, name in enumerate(FEATURE_NAMES)}
    any_note = (features[..., names["notes"]] > 0).unsqueeze(-1)
    last = features[..., names["last"]].unsqueeze(-1)
    highest = features[..., names["highest"]].unsqueeze(-1)
    lowest = features[..., names["lowest"]].unsqueeze(-1)
    c4 = 60 - MIN_PITCH
    height = (torch.arange(NUM_PITCHES, dtype=features.dtype, device=features.device) - c4) / 12.0
    height = height.expand(*features.shape[:-1], NUM_PITCHES)
    step = torch.where(any_note, height - last, torch.zeros_like(height))
    size = step.abs()
    eps = 0.5 / 12.0
    zero = torch.zeros_like(height)
    pitch_columns = [
        size, step, step * step,
        (any_note & (size * 12.0 >= 4.5)).to(height.dtype),
        (any_note & (size < eps)).to(height.dtype),
        (any_note & (height > highest + eps)).to(height.dtype),
        (any_note & ((height - highest).abs() < eps)).to(height.dtype),
        (any_note & (height < lowest - eps)).to(height.dtype),
        height, torch.ones_like(height), zero,
    ]
    pitches = torch.stack(pitch_columns, dim=-1)  # [..., 37, K]
    specials = torch.zeros(*features.shape[:-1], NUM_SPECIAL_TOKENS, NUM_ACTION_FEATURES,
                           dtype=features.dtype, device=features.device)
    specials[..., REST, ACTION_FEATURE_NAMES.index("rest")] = 1.0
    out = torch.cat([specials, pitches], dim=-2)
    if out.shape[-2] != vocab_size:
        raise ValueError(f"action features cover {out.shape[-2]} tokens, the vocabulary has {vocab_size}")
    return out
