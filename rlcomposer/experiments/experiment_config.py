"""An experiment's settings (:class:`ExperimentConfig`) and what one round measured (:class:`RoundResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rlcomposer.config import config_from_dict, load_config
from rlcomposer.errors import RLComposerError
from rlcomposer.preferences.listeners import ListenerError, ListenerNoise, load_listener
from rlcomposer.preferences.reward_model import RewardModelConfig
from rlcomposer.rl import DEFAULT_PICK_KL_WEIGHT
from rlcomposer.rl.tuners import TUNER_NAMES
from rlcomposer.rl.tuning import TuneConfig
from rlcomposer.validation import MAX_COUNT, SEED, Range, between, check_config

PEOPLE = "people"
STATE_FILE = "state.json"


POLICY_BEST_OF_K = "policy-best-of-k"
"""``tuned_melodies``: the best of ``policy_best_of_k`` of the tuned policy's melodies."""

TUNED_MELODIES = ("best-of-n", "policy", POLICY_BEST_OF_K)
"""What may write a round's tuned melodies (``tuned_melodies``)."""


@dataclass(frozen=True)
class ExperimentConfig:
    """One experiment: who rates, how much, and how the reward model and PPO are set."""

    name: str = "experiment"
    """Run folder name under the runs directory; also the prefix of the pool tags."""
    listener: str = "lyrical"
    """Who rates: a built-in listener (lyrical, rhythmic, adventurous), ``module:function``, or ``people``."""
    rounds: int = 1
    """Rounds of pool → ratings → reward model → tuning → evaluation."""
    pool_size: int = 300
    """Melodies sampled into the rating pool per round."""
    comparisons_per_round: int = 300
    """Pairwise comparisons collected per round."""
    strategy: str = "random"
    """Which pairs to ask: ``random``, or ``active`` (largest reward-ensemble disagreement; from round 1)."""
    noise: ListenerNoise = ListenerNoise()
    """A simulated listener's noise (flat keys ``noise_temperature``, ``noise_mistake_rate``,
    ``noise_tie_band`` work too; see :class:`~rlcomposer.preferences.listeners.ListenerNoise`)."""
    evaluation_pairs: int = 500
    """Tuned-vs-prior pairs judged by the listener's noiseless preference."""
    best_of_n: int = 0
    """N for the best-of-N baseline; 0 picks N so that its KL matches the tuned policy's (up to the cap)."""
    best_of_n_cap: int = 4096
    """Largest N the automatic choice may pick (KL log N − (N−1)/N: 4096 reaches 7.3 nats)."""
    best_of_n_budget: int = 65_536
    """Candidates best-of-N may draw for its evaluation: with a large N it is judged on
    ``budget // N`` melodies (at least 16) instead of ``evaluation_pairs``."""
    tuners: list[str] = field(default_factory=list)
    """Tuners run side by side on each round's reward model, each evaluated against the prior
    and beside best-of-N at its own KL: ``tune`` algorithms (``sequence``, ``vbon``, ``rloo``,
    ``vbon-rloo``, ``stock``, ``dpo``) and ``best-of-n`` (N from the tune config's
    ``kl_target``). The first is the round's tuned policy (``round-K/policy``; the others are
    in ``round-K/policy-NAME``). Empty: the tune config's ``algorithm`` alone."""
    policy_best_of_k: int = 8
    """k of policy + best-of-k, a cheap mode between a policy and best-of-N: the best of k of the
    first tuner's melodies under the reward model, reported beside each policy with its KL (0:
    not evaluated; ``tuned_melodies: policy-best-of-k`` makes the round's tuned melodies so).
    Chosen with ``policy_kl_share`` on the panel's choosing half (members 2, 7, 10, seed 0, an
    ``rloo`` policy, 3-nat target): k 8 at share 0.3 ended 0.6 points ahead of best-of-N at equal
    KL (median; KL 3.02-3.33), k 8 at 0.25 0.9 points behind (KL 2.59-3.04), k 4 at 0.4 2.5
    points behind (KL 2.86 median)."""
    policy_kl_share: float = 0.4
    """With ``tuned_melodies: policy-best-of-k``, the share of the tune config's ``kl_target`` the
    policies are tuned to; best-of-k moves the melodies the rest of the way (``best-of-n`` keeps the
    whole target). With the plain pick the chosen melodies' own log pi/p is well above the policy's
    mean KL (k 8 at share 0.3 chosen first, see ``policy_best_of_k``); with the KL-weighted pick
    (``policy_pick_kl_weight`` 0.25) share 0.4 lands near the target: 3.23 / 2.61 / 3.18 nats on
    the choosing half (0.3 with a 0.9-nat policy: 2.73 / 2.29 / 2.79)."""
    policy_pick_kl_weight: float = DEFAULT_PICK_KL_WEIGHT
    """Policy + best-of-k picks the candidate with the highest standardised reward minus this
    times its log pi/p (:class:`~rlcomposer.rl.best_of_n.PolicyBestOfKModel`); 0: the highest
    reward. The default, 0.25, and how it was chosen: :data:`rlcomposer.rl.DEFAULT_PICK_KL_WEIGHT`."""
    policy_pick_holds_kl: bool = True
    """Set the pick weight each round so that policy + best-of-k's KL is the tune config's
    ``kl_target`` (:func:`~rlcomposer.rl.best_of_n.pick_kl_weight_for_target`, on 1,024 of the
    policy's melodies × k), as β holds a policy's KL during tuning; false: ``policy_pick_kl_weight``
    as given (with 0.25 the KL landed within ±10% of 3 nats in 10 of 12 report-half runs)."""
    tuned_melodies: str = POLICY_BEST_OF_K
    """What writes the round's tuned melodies (the exported files and the next round's pool):
    ``policy-best-of-k`` (the best of ``policy_best_of_k`` of the tuned policy's melodies under the
    round's reward model: ``policy_best_of_k`` candidates a melody instead of best-of-N's
    N of about 50 at the same KL; ``experiments/README.md`` has its figures on the panel), ``best-of-n`` (the prior's best of N under the
    reward model, N at the tuned policy's KL) or ``policy`` (the PPO / DPO policy itself)."""
    difficulty_best_of: int = 0
    """N of a best-of-N (under the reward model) whose win-rate measures how hard the listener is
    (e.g. 64 in panel evaluations; 0: not measured)."""
    export_melodies: int = 8
    """Tuned melodies written per round as MIDI, MusicXML, WAV and JSON."""
    key: str = "C"
    """Tonic the exported melodies are written in (they are made on C in the tune config's
    ``mode``; its ``metre`` and ``num_bars`` set their shape)."""
    seed: int = 0
    """Seeds pools, listeners, the reward model and PPO."""
    reward_model: dict[str, Any] = field(default_factory=dict)
    """RewardModelConfig keys (see rlcomposer/reward_model.py)."""
    tune: dict[str, Any] = field(default_factory=dict)
    """TuneConfig keys (see rlcomposer/tuning.py); reward and prior are set by the loop."""
    personal: bool = False
    """Make melodies for each rater (:mod:`rlcomposer.experiments.personal_round`): the round's
    answers come from several raters (the simulated listeners of ``raters``, each answering
    ``comparisons_per_round`` pairs as its own rater, or with ``listener: people`` everyone who
    answered in the run's database), the reward trainer fits a personal reward model (the
    population ensemble and per-rater weights) into ``round-K/reward_model/``, and each rater's
    melodies are best-of-N from the prior under that rater's reward (N from the tune config's
    ``kl_target``, as the ``best-of-n`` tuner picks it) in ``round-K/raters/NAME/melodies/``,
    beside best-of-N under the population's reward in ``round-K/melodies/`` (which also writes
    the next round's pool). No policy is tuned (``tuners`` may name ``best-of-n`` only, and
    ``tuned_melodies`` is not used): a policy alone trails best-of-N at equal KL and one PPO run
    per rater costs minutes each. Pairs are random (``strategy: random``)."""
    raters: list[str] = field(default_factory=list)
    """With ``personal: true`` and a simulated listener: the listeners who rate, at least two
    (built-in names, ``panel:K``, ``module:function``), e.g. ``[panel:12, panel:14, lyrical]``;
    empty with ``listener: people``."""

    def __post_init__(self) -> None:
        check_config(self, {
            "rounds": between(1, 1000, whole=True), "pool_size": between(1, 1_000_000, whole=True),
            "comparisons_per_round": between(1, 1_000_000, whole=True),
            "evaluation_pairs": between(1, 1_000_000, whole=True), "best_of_n": between(0, 1 << 20, whole=True),
            "best_of_n_cap": between(1, 1 << 20, whole=True), "best_of_n_budget": between(1, MAX_COUNT, whole=True),
            "difficulty_best_of": between(0, 1 << 20, whole=True), "export_melodies": between(0, 100_000, whole=True),
            "policy_best_of_k": between(0, 1 << 16, whole=True), "policy_kl_share": Range(0.05, 1),
            "policy_pick_kl_weight": Range(0, 100),
            "seed": SEED}, "experiment key ")
        if self.tuned_melodies not in TUNED_MELODIES:
            raise RLComposerError(f"experiment key 'tuned_melodies' must be one of {', '.join(TUNED_MELODIES)}, "
                                  f"got '{self.tuned_melodies}'")
        if self.tuned_melodies == POLICY_BEST_OF_K and self.policy_best_of_k < 2:
            raise RLComposerError("experiment key 'tuned_melodies: policy-best-of-k' needs 'policy_best_of_k' "
                                  f"of at least 2, got {self.policy_best_of_k} (or set tuned_melodies: best-of-n "
                                  "or policy)")
        if self.strategy not in ("random", "active"):
            raise RLComposerError(f"experiment key 'strategy' must be random or active, got '{self.strategy}'")
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise RLComposerError(f"experiment name '{self.name}' must be a plain folder name")
        for key in ("reward_model", "tune"):
            if not isinstance(getattr(self, key), dict):
                raise RLComposerError(f"experiment key '{key}' must be a mapping of config keys")
        if isinstance(self.tuners, str):
            object.__setattr__(self, "tuners", [t.strip() for t in self.tuners.split(",") if t.strip()])
        if not isinstance(self.tuners, list | tuple) or not all(isinstance(t, str) for t in self.tuners):
            raise RLComposerError("experiment key 'tuners' must be a list of tuner names")
        for name in self.tuners:
            if name not in TUNER_NAMES:
                raise RLComposerError(f"experiment key 'tuners': '{name}' is not a tuner "
                                      f"({', '.join(TUNER_NAMES)})")
        if len(set(self.tuners)) != len(self.tuners):
            raise RLComposerError("experiment key 'tuners' names a tuner twice")
        self._check_personal()
        if not self.personal and self.tuned_melodies != "best-of-n" and self.tuners[:1] == ["best-of-n"]:
            raise RLComposerError(f"experiment key 'tuned_melodies: {self.tuned_melodies}' needs a policy as the "
                                  "first tuner, not best-of-n (or set tuned_melodies: best-of-n)")
        if not isinstance(self.policy_pick_holds_kl, bool):
            raise RLComposerError("experiment key 'policy_pick_holds_kl' must be true or false, "
                                  f"got {self.policy_pick_holds_kl!r}")
        self.reward_model_config()
        self.tune_config()

    def _check_personal(self) -> None:
        """``personal`` and ``raters`` (one line naming the key; the rater specs are resolved)."""
        if not isinstance(self.personal, bool):
            raise RLComposerError(f"experiment key 'personal' must be true or false, got {self.personal!r}")
        if isinstance(self.raters, str):
            object.__setattr__(self, "raters", [r.strip() for r in self.raters.split(",") if r.strip()])
        if not isinstance(self.raters, list | tuple) or not all(isinstance(r, str) for r in self.raters):
            raise RLComposerError("experiment key 'raters' must be a list of listeners")
        if self.raters and not self.personal:
            raise RLComposerError("experiment key 'raters' is only read with 'personal: true'")
        if not self.personal:
            return
        if self.listener == PEOPLE:
            if self.raters:
                raise RLComposerError("experiment key 'raters' must be empty with 'listener: people' "
                                      "(everyone who answers in the run's database is a rater)")
        elif len(self.raters) < 2:
            raise RLComposerError(f"experiment key 'personal: true' needs at least 2 'raters', got "
                                  f"{len(self.raters)} (or set listener: people)")
        names = []
        for spec in self.raters:
            try:
                names.append(load_listener(spec)[1])
            except ListenerError as error:
                raise RLComposerError(f"experiment key 'raters': {error}") from None
        if len(set(names)) != len(names):
            raise RLComposerError("experiment key 'raters' names a rater twice")
        if self.strategy != "random":
            raise RLComposerError("experiment key 'strategy' must be random with 'personal: true' "
                                  "(each rater answers random pairs of the round's pool)")
        others = [name for name in self.tuners if name != "best-of-n"]
        if others:
            raise RLComposerError(f"experiment key 'tuners' may name only best-of-n with 'personal: true', got "
                                  f"{', '.join(others)} (no policy is tuned per rater)")

    # ---- derived values -------------------------------------------------
    def reward_model_config(self) -> RewardModelConfig:
        values = {"seed": self.seed, **self.reward_model}
        return config_from_dict(RewardModelConfig, values, "experiment key 'reward_model'")

    def tune_config(self, reward: str | None = None, round_index: int = 0) -> TuneConfig:
        for key in ("reward", "prior"):
            if key in self.tune:
                raise RLComposerError(f"experiment key 'tune.{key}' is set by the loop; remove it")
        values = {"seed": self.seed + round_index, **self.tune, "reward": reward}
        return config_from_dict(TuneConfig, values, "experiment key 'tune'")

    def policy_tune_config(self, reward: str | None = None, round_index: int = 0) -> TuneConfig:
        """The tune config of the round's policies: the whole ``kl_target``, or its
        ``policy_kl_share`` when best-of-k moves their melodies the rest of the way."""
        config = self.tune_config(reward, round_index)
        if self.tuned_melodies == POLICY_BEST_OF_K and config.kl_target is not None:
            # derived: best-of-k from the policy supplies the rest of the target
            config = replace(config, kl_target=config.kl_target * self.policy_kl_share)
        return config

    @property
    def tuner_names(self) -> list[str]:
        """The tuners each round runs, the round's tuned policy first."""
        return list(self.tuners) or [self.tune_config().algorithm]

    def tag(self, round_index: int) -> str:
        return f"{self.name}/round-{round_index}"


def load_experiment_config(path: str | Path, overrides: dict[str, Any] | None = None) -> ExperimentConfig:
    return load_config(ExperimentConfig, path, overrides)


@dataclass
class RoundResult:
    """What one round measured."""

    round: int
    comparisons: int
    reward_model: dict[str, Any]
    win_rate: float | None
    best_of_n_win_rate: float | None
    best_of_n: int
    kl_tuned: float
    kl_best_of_n: float
    proxy_reward: dict[str, float]
    gold_score: dict[str, float]
    metrics: dict[str, dict[str, float]]
    metrics_table: str
    tune_seconds: float
    reward_seconds: float
    overoptimisation: list[dict[str, float]] = field(default_factory=list)
    musicality: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per column (prior, tuned, best-of-N): style overlap with the held-out corpus and diversity."""
    collapse_warnings: list[str] = field(default_factory=list)
    """Plain-language warnings when the tuned melodies collapse (empty when they stay music)."""
    difficulty_win_rate: float | None = None
    """The listener's win-rate of best-of-``difficulty_best_of`` over the prior (None: not measured)."""
    tuners: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per tuner (in the config's order): win-rate, KL, best-of-N at that KL, musicality, cost."""
    tuned_best_of: int | None = None
    """N of the best-of-N that wrote the round's tuned melodies (its own KL target's, when the
    round ran a ``best-of-n`` tuner; else the tuned policy's KL's); None when the policy wrote them."""
    tuned_pick_kl_weight: float | None = None
    """The pick weight policy + best-of-k wrote the round's tuned melodies with (None: not that mode)."""
    raters: dict[str, dict[str, Any]] | None = None
    """With ``personal: true``, per rater: answers, folder, win-rates of their melodies against the
    prior and the population's (None for people), KL, style overlap and two melodies as notes."""
