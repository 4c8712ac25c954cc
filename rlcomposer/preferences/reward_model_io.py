"""A reward model on disk: a model directory of kind ``reward-model`` (weights, config with the
hash of the prior it was initialised from and the shapes of the melodies it was trained on,
metrics and a reliability plot), and the upgrade of the first reward model's checkpoints to
today's layout.

``shapes`` in its config lists the (metre, steps, pick-up) of its training melodies; the loaded
model scores melodies of those shapes only. A reward model saved before melodies knew their metre
has none: it read every melody as 4/4, so it loads as a 4/4-only model (4/4 melodies without a
pick-up, any length) and refuses any other metre with one line saying to retrain it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from rlcomposer.checkpoints import CONFIG_FILE, CheckpointError, read_model_dir, save_model_dir
from rlcomposer.config import ConfigError, config_from_dict, config_to_dict
from rlcomposer.preferences.calibration import plot_reliability
from rlcomposer.preferences.ensemble import RewardEnsemble, prior_fingerprint
from rlcomposer.preferences.reward_model_config import LEGACY_CONFIG, RewardModelConfig
from rlcomposer.prior.model import MelodyPrior, PriorConfig, load_prior

KIND = "reward-model"
RELIABILITY_PLOT = "reliability.png"


def save_reward_model(ensemble: RewardEnsemble, out_dir: str | Path) -> Path:
    """Write ``out_dir`` (weights, config with the prior's hash, metrics) and, when the metrics hold
    held-out comparisons, their reliability plot (``reliability.png``)."""
    state = {k: v for k, v in ensemble.state_dict().items()}
    extra: dict[str, Any] = {"prior_hash": ensemble.prior_hash}
    if ensemble.shapes is not None:
        extra["shapes"] = [{"metre": m, "num_steps": n, "pickup_steps": p} for m, n, p in ensemble.shapes]
    directory = save_model_dir(out_dir, KIND, ensemble.prior_config, state, ensemble.config, ensemble.metrics,
                               extra_config=extra)
    held_out = ensemble.metrics.get("held_out")
    if isinstance(held_out, dict) and held_out.get("reliability"):
        plot_reliability({"reward model": held_out}, directory / RELIABILITY_PLOT,
                         f"Held-out reliability ({held_out.get('method', 'held out')}, "
                         f"{held_out.get('pairs')} comparisons)")
    return directory


def _expected_hash(expected_prior: MelodyPrior | str | Path | None) -> str | None:
    if expected_prior is None:
        return None
    if isinstance(expected_prior, MelodyPrior):
        return prior_fingerprint(expected_prior)
    spec = str(expected_prior)
    if spec == "prior" or Path(spec).is_dir():
        return prior_fingerprint(load_prior(spec))
    return spec  # a hash


def _upgrade_first_format(training: dict[str, Any], state: dict[str, torch.Tensor]
                          ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """A checkpoint of the first reward model (its encoder's own embedding and GRU, a
    ``heads.k.net`` module per member, no descriptors or temperature) in today's layout,
    scoring the same."""
    training = {**config_to_dict(LEGACY_CONFIG), **training}
    upgraded: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "encoder":
            upgraded[".".join(["encoder", "prior", *parts[1:]])] = value
        elif parts[0] == "encoders":
            upgraded[".".join(["encoders", parts[1], "prior", *parts[2:]])] = value
        elif parts[0] != "heads":
            upgraded[key] = value
    members = sorted({int(k.split(".")[1]) for k in state if k.startswith("heads.")})

    def stack(name: str, transform: Callable[[torch.Tensor], torch.Tensor] = lambda t: t) -> torch.Tensor:
        return torch.stack([transform(state[f"heads.{k}.{name}"]) for k in members])

    upgraded.update({
        "heads.norm_weight": stack("net.0.weight"), "heads.norm_bias": stack("net.0.bias"),
        "heads.weight1": stack("net.1.weight", lambda t: t.t()), "heads.bias1": stack("net.1.bias"),
        "heads.weight2": stack("net.3.weight", lambda t: t[0]), "heads.bias2": stack("net.3.bias", lambda t: t[0]),
        "heads.star_scale": stack("star_scale"), "heads.star_offset": stack("star_offset"),
    })
    return training, upgraded


def load_reward_model(directory: str | Path,
                      expected_prior: MelodyPrior | str | Path | None = None) -> RewardEnsemble:
    """Load a reward-model directory; with ``expected_prior`` (a prior, a prior
    directory, ``prior`` or a hash) refuse one initialised from another prior."""
    files = read_model_dir(directory, expected_kinds=(KIND,))
    where = f"{directory}/{CONFIG_FILE}"
    training = dict(files.config.get("training", {}))
    state = files.state_dict
    first_format = "summary" not in training and any(k.startswith("heads.0.net.") for k in state)
    if first_format:
        training, state = _upgrade_first_format(training, state)
    try:
        prior_config = config_from_dict(PriorConfig, files.config["model"], where)
        config = config_from_dict(RewardModelConfig, training, where)
    except ConfigError as error:
        raise CheckpointError(str(error)) from None
    prior_hash = files.config.get("prior_hash")
    if not isinstance(prior_hash, str):
        raise CheckpointError(f"{where}: no prior_hash (the prior the reward model was initialised from)")
    expected = _expected_hash(expected_prior)
    if expected is not None and expected != prior_hash:
        raise CheckpointError(
            f"reward model '{directory}' was trained from another prior (weights {prior_hash}, "
            f"this prior is {expected}): retrain it with `rlcomposer reward train`")
    ensemble = RewardEnsemble(prior_config, config, prior_hash, files.metrics, _read_shapes(files.config, where))
    ensemble.name = f"reward model '{directory}'"
    if first_format:  # what it did not have: the prior's output layer (unused), identity inputs, T = 1
        state = {**{k: v for k, v in ensemble.state_dict().items() if ".prior.head." in k
                    or k in ("input_mean", "input_std", "temperature")}, **state}
    try:
        ensemble.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).splitlines()[0]
        raise CheckpointError(f"{directory}: weights do not match its config ({first})") from None
    for parameter in ensemble.parameters():
        parameter.requires_grad_(False)
    ensemble.eval()
    return ensemble



def _read_shapes(config: dict[str, Any], where: str) -> list[tuple[str, int, int]] | None:
    """The recorded (metre, steps, pick-up) shapes; None for a model saved before they were recorded."""
    from rlcomposer.music.metre import MetreError, check_pickup_steps, parse_metre

    shapes = config.get("shapes")
    if shapes is None:
        return None
    try:
        result = []
        for shape in shapes:
            metre = parse_metre(shape["metre"])
            steps = int(shape["num_steps"])
            if steps < 1:
                raise ValueError(f"{steps} steps")
            result.append((metre.name, steps, check_pickup_steps(shape["pickup_steps"], metre, steps)))
    except (TypeError, KeyError, ValueError, MetreError) as error:
        raise CheckpointError(f"{where}: unreadable shapes of the training melodies ({error})") from None
    if not result:
        raise CheckpointError(f"{where}: no shapes of the training melodies")
    return result


__all__ = ["KIND", "RELIABILITY_PLOT", "load_reward_model", "save_reward_model"]
