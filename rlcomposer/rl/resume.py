"""Resuming a tuning run: a checkpoint must belong to the run that resumes it.

An SB3 training-state zip (``OUT/checkpoints/*.zip``) records the algorithm
(through its rollout buffer), the number of parallel melodies, the rollout
length, the observation (the episode length), the policy's prior and the step
it reached. :func:`check_resume` compares each with the run's
:class:`~rlcomposer.rl.tuning.TuneConfig` and refuses a mismatch in one line,
before anything is written: resuming another run's checkpoint would train a
different task, overshoot the step budget, or tune away from another prior.
(The zip unpickles when read: trusted files only.)
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import torch

from rlcomposer.checkpoints import non_finite_tensor
from rlcomposer.config import config_to_dict
from rlcomposer.errors import RLComposerError
from rlcomposer.prior.model import MelodyPrior

EPISODE_BUFFER = "EpisodeRolloutBuffer"
"""The rollout buffer of ``sequence`` runs (:class:`~rlcomposer.rl.sequence_ppo.SequencePPO`)."""


class ResumeError(RLComposerError):
    """A ``--resume`` checkpoint that is not a training state of this run."""


def _algorithm_of(data: dict[str, Any]) -> str:
    buffer = data.get("rollout_buffer_class")
    name = getattr(buffer, "__name__", None)
    return "sequence" if name == EPISODE_BUFFER else "stock"


def check_resume(path: str | Path, config, prior: MelodyPrior) -> int:
    """The step a checkpoint reached, if it fits ``config`` and ``prior``; else :class:`ResumeError`."""
    from stable_baselines3.common.save_util import load_from_zip_file

    path = Path(path)
    where = f"--resume '{path}'"
    if not path.is_file() or not zipfile.is_zipfile(path):
        raise ResumeError(f"{where} is not a training-state zip")
    try:
        data, params, _ = load_from_zip_file(path, device="cpu", print_system_info=False)
    except Exception as error:
        raise ResumeError(f"{where}: cannot load ({type(error).__name__}: {error})") from None
    if not isinstance(data, dict) or not isinstance(params, dict) or "policy" not in params:
        raise ResumeError(f"{where}: not a training state (no policy weights)")
    mismatches = []
    algorithm = _algorithm_of(data)
    if algorithm != ("stock" if config.algorithm == "stock" else "sequence"):
        mismatches.append(f"algorithm {algorithm}, this run {config.algorithm}")
    if data.get("n_envs") != config.n_envs:
        mismatches.append(f"n_envs {data.get('n_envs')}, this run {config.n_envs}")
    shape = getattr(data.get("observation_space"), "shape", None)
    if shape != (config.episode_steps,):
        length = shape[0] if shape else None
        mismatches.append(f"episodes of {length} steps, this run {config.episode_steps}")
    if data.get("n_steps") != config.n_steps:
        mismatches.append(f"rollouts of {data.get('n_steps')} steps, this run {config.n_steps}")
    kwargs = data.get("policy_kwargs") or {}
    same_prior = kwargs.get("prior_config") == config_to_dict(prior.config)
    if same_prior:
        theirs, ours = kwargs.get("prior_state_dict") or {}, prior.state_dict()
        same_prior = set(theirs) == set(ours) and all(
            isinstance(theirs[k], torch.Tensor) and theirs[k].shape == ours[k].shape
            and torch.equal(theirs[k].cpu(), ours[k].cpu()) for k in ours)
    if not same_prior:
        mismatches.append(f"another prior than this run's ({config.prior})")
    if mismatches:
        raise ResumeError(f"{where} is not a checkpoint of this run: it has {'; '.join(mismatches)}")
    bad = non_finite_tensor(params["policy"])
    if bad is not None:
        raise ResumeError(f"{where}: policy tensor '{bad}' holds NaN or infinite values")
    steps = int(data.get("num_timesteps", 0))
    if steps >= config.training_steps:
        raise ResumeError(f"{where} is at step {steps:,}, already at or past this run's total_timesteps "
                          f"{config.training_steps:,}: raise --total-timesteps (or total_melodies) to train further")
    return steps


def truncate_history(history_path: str | Path, timesteps: int) -> int:
    """Cut ``history.jsonl`` back to the rows a resumed checkpoint had reached (``timesteps``).

    A run stopped after its last checkpoint logged rollouts that the resumed run
    trains again; kept, they would appear twice and out of order in the curves,
    and β would restart from the abandoned row instead of the checkpoint's.
    A half-written last line (a killed run) goes too. Written through a rename;
    returns how many rows were cut.
    """
    import json

    from rlcomposer.checkpoints import atomic_write_text

    path = Path(history_path)
    if not path.is_file():
        return 0
    kept, cut = [], 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            step = row["timesteps"]
        except (ValueError, TypeError, KeyError):
            cut += 1
            continue
        if isinstance(step, (int, float)) and step <= timesteps:
            kept.append(line + "\n")
        else:
            cut += 1
    if cut:
        atomic_write_text(path, "".join(kept))
    return cut
