"""Melody models by name: what ``--model`` accepts.

* ``prior``: the trained prior shipped inside the package (the default everywhere);
* ``corpus``: real tunes from the held-out test split of the folk corpus
  (their openings first, then random bar-aligned excerpts);
* ``random``: uniformly random tokens;
* a path: a model directory written by this project (a prior, for now).

Every model samples through one interface, :meth:`MelodyModel.sample`, driven
by an explicit ``numpy.random.Generator`` so that a seed fixes the result.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from rlcomposer.errors import RLComposerError
from rlcomposer.music.melody import STEPS_PER_BAR, Melody, random_melody
from rlcomposer.prior.model import MelodyPrior, load_prior

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
    ) -> list[Melody]: ...


class PriorModel:
    """Samples from a :class:`~rlcomposer.prior.model.MelodyPrior`."""

    def __init__(self, prior: MelodyPrior, name: str):
        self.prior = prior
        self.name = name

    def sample(self, num_melodies, num_steps, rng, temperature=1.0, top_k=None):
        generator = torch.Generator().manual_seed(int(rng.integers(0, 2**63 - 1)))
        tokens = self.prior.sample(num_melodies, num_steps, generator, temperature, top_k)
        return [Melody(row, {"model": self.name}) for row in tokens]


class CorpusModel:
    """Real tunes from one split of the corpus: openings first, then random excerpts."""

    def __init__(self, sequences: list[np.ndarray], name: str = "corpus"):
        if not sequences:
            raise RLComposerError("the corpus split is empty: run `rlcomposer corpus build`")
        self.sequences = sequences
        self.name = name

    def sample(self, num_melodies, num_steps, rng, temperature=1.0, top_k=None):
        long_enough = [s for s in self.sequences if len(s) >= num_steps]
        if not long_enough:
            raise RLComposerError(f"no corpus tune is {num_steps} steps long")
        result: list[Melody] = []
        for index in rng.permutation(len(long_enough))[:num_melodies]:
            result.append(Melody(long_enough[index][:num_steps], {"model": self.name}))
        while len(result) < num_melodies:
            sequence = long_enough[int(rng.integers(len(long_enough)))]
            bars = (len(sequence) - num_steps) // STEPS_PER_BAR
            start = int(rng.integers(bars + 1)) * STEPS_PER_BAR
            result.append(Melody(sequence[start:start + num_steps], {"model": self.name}))
        return result


class RandomModel:
    """Uniformly random tokens: the floor every metric is compared against."""

    name = "random"

    def sample(self, num_melodies, num_steps, rng, temperature=1.0, top_k=None):
        return [random_melody(rng, num_steps).with_metadata(model=self.name)
                for _ in range(num_melodies)]


def resolve_model(
    spec: str, corpus_loader: Callable[[], list[np.ndarray]] | None = None
) -> MelodyModel:
    """The model named by ``spec``: a built-in name or a model directory.

    ``corpus_loader`` returns the held-out corpus sequences; it is only called
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
