"""The flat module names of version 0.1 still import, as today's modules, with a DeprecationWarning."""

from __future__ import annotations

import importlib
import sys

import pytest

import rlcomposer  # noqa: F401 - installs the old names
from rlcomposer._moved import MOVED_MODULES
from rlcomposer.preferences.reward_functions import load_callable


@pytest.mark.parametrize("old", sorted(MOVED_MODULES))
def test_an_old_name_warns_and_gives_todays_module(old, monkeypatch):
    monkeypatch.delitem(sys.modules, old, raising=False)
    with pytest.warns(DeprecationWarning, match=f"{old} is an old name of {MOVED_MODULES[old]}"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(MOVED_MODULES[old])


def test_the_old_reward_spec_the_docs_promised_still_loads(monkeypatch):
    monkeypatch.delitem(sys.modules, "rlcomposer.music_theory", raising=False)
    with pytest.warns(DeprecationWarning, match="import rlcomposer.music.theory instead"):
        reward = load_callable("rlcomposer.music_theory:theory_reward")
    assert reward is load_callable("rlcomposer.music.theory:theory_reward")


def test_todays_names_do_not_warn(recwarn):
    importlib.import_module("rlcomposer.music.theory")
    load_callable("rlcomposer.music.theory:theory_reward")
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning) and "old name" in str(w.message)]
