"""Melody models by name: what ``--model`` accepts.

* ``prior``: the trained prior shipped inside the package (the default everywhere);
* ``corpus``: real tunes from the held-out test split of the folk corpus
  (their openings first, then random bar-aligned excerpts);
* ``random``: uniformly random tokens;
* a path: a model directory written by this project (a prior, for now).

Every model samples through one interface, :meth:`MelodyModel.sample`, driven
by an explicit ``numpy.random.Generator`` so that a seed fixes the result; a
:class:`~rlcomposer.prior.model.MelodyCondition` asks for a metre and mode
(melodies come in that metre with their tonic on C, in ``Key("C", mode)``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from rlcomposer.errors import RLComposerError
from rlcomposer.music.keys import Key
from rlcomposer.music.melody import Melody, random_melody
from rlcomposer.prior.model import ConditionError, MelodyCondition, MelodyPrior, load_prior

BUILTIN_MODELS = ("prior", "corpus", "random")


class MelodyModel(Protocol):
    """Anything that samples melodies."""

    name: str

    def sample(
        self,
        num_melodies: int,
        num_steps: int,
        rng: np.random.Generator,
        temperature: float = 1.0,
        top_k: int | None = None,
        condition: MelodyCondition | None = None,
    ) -> list[Melody]: ...


class PriorModel:
    """Samples from a :class:`~rlcomposer.prior.model.MelodyPrior`."""

    def __init__(self, prior: MelodyPrior, name: str):
        self.prior = prior
        self.name = name

    def sample(self, num_melodies, num_steps, rng, temperature=1.0, top_k=None, condition=None):
        tuned = self.prior.tuned_condition
        if condition is None:
            condition = tuned or MelodyCondition()
        elif tuned is not None and (condition.metre, condition.mode) != (tuned.metre, tuned.mode):
            raise ConditionError(
                f"{self.name} was tuned for {tuned.metre.name} {tuned.mode}, not "
                f"{condition.metre.name} {condition.mode}: tune another policy for that")
        generator = torch.Generator().manual_seed(int(rng.integers(0, 2**63 - 1)))
        tokens = self.prior.sample(num_melodies, num_steps, generator, temperature, top_k,
                                   condition=condition)
        key = Key("C", condition.mode)
        return [Melody(row, {"model": self.name}, condition.metre, key, condition.pickup_steps)
                for row in tokens]


class CorpusModel:
    """Real tunes from one split of the corpus: openings first, then random excerpts.

    Given melodies (which know their metre and mode), a condition picks the tunes
    of its metre (and mode, where that leaves any); plain token arrays are 4/4.
    """

    def __init__(self, tunes: list[np.ndarray] | list[Melody], name: str = "corpus"):
        if not tunes:
            raise RLComposerError("the corpus split is empty: run `rlcomposer corpus build`")
        self.tunes = [t if isinstance(t, Melody) else Melody(t) for t in tunes]
        self.name = name

    def sample(self, num_melodies, num_steps, rng, temperature=1.0, top_k=None, condition=None):
        condition = condition or MelodyCondition()
        in_metre = [t for t in self.tunes if t.metre == condition.metre and t.num_steps >= num_steps]
        long_enough = [t for t in in_metre if t.key.mode == condition.mode] or in_metre
        if not long_enough:
            raise RLComposerError(f"no corpus tune in {condition.metre.name} is {num_steps} steps long")
        bar = condition.metre.steps_per_bar
        pickup = condition.pickup_steps

        def starts(tune: Melody) -> list[int]:
            """Where an excerpt with the condition's pick-up may start: ``pickup`` steps before a
            downbeat of the tune (its first full bar's, then every later bar's)."""
            first = tune.pickup_steps - pickup
            return [s for s in range(first if first >= 0 else first + bar, tune.num_steps - num_steps + 1, bar)]

        def excerpt(tune: Melody, start: int) -> Melody:
            return Melody(tune.tokens[start:start + num_steps], {"model": self.name}, tune.metre,
                          tune.key, pickup)

        long_enough = [t for t in long_enough if starts(t)]
        if not long_enough:
            raise RLComposerError(f"no corpus tune in {condition.metre.name} is {num_steps} steps long")
        result: list[Melody] = []
        for index in rng.permutation(len(long_enough))[:num_melodies]:
            result.append(excerpt(long_enough[index], starts(long_enough[index])[0]))
        while len(result) < num_melodies:
            tune = long_enough[int(rng.integers(len(long_enough)))]
            places = starts(tune)
            result.append(excerpt(tune, places[int(rng.integers(len(places)))]))
        return result


class RandomModel:
    """Uniformly random tokens: the floor every metric is compared against."""

    name = "random"

    def sample(self, num_melodies, num_steps, rng, temperature=1.0, top_k=None, condition=None):
        condition = condition or MelodyCondition()
        key = Key("C", condition.mode)
        return [random_melody(rng, num_steps, condition.metre, key).with_pickup(condition.pickup_steps)
                .with_metadata(model=self.name) for _ in range(num_melodies)]


def resolve_model(
    spec: str, corpus_loader: Callable[[], list[np.ndarray]] | None = None
) -> MelodyModel:
    """The model named by ``spec``: a built-in name or a model directory.

    ``corpus_loader`` returns the held-out corpus tunes (melodies, or token
    arrays taken as 4/4); it is only called
    for ``corpus`` (so other models never need a built corpus).
    """
    if spec == "prior":
        return PriorModel(load_prior(spec), "prior")
    if spec == "random":
        return RandomModel()
    if spec == "corpus":
        if corpus_loader is None:
            raise RLComposerError("model 'corpus' needs the corpus cache: run `rlcomposer corpus build`")
        return CorpusModel(corpus_loader())
    path = Path(spec)
    if not path.exists():
        raise RLComposerError(
            f"unknown model '{spec}': not a model directory, nor one of {', '.join(BUILTIN_MODELS)}"
        )
    return PriorModel(load_prior(path), path.name)
