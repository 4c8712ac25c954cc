"""``rlcomposer study personalise`` and the blind "Made for you" A/B (issue 21, the app side):
melodies made for each rater, stored under tags that say whose they are, in the study's metre;
the A/B answers stored as comparisons of the study and counted per rater. Tiny prior,
temporary SQLite."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rlcomposer.cli import main
from rlcomposer.cli import study as study_cli
from rlcomposer.feedback import database
from rlcomposer.feedback import personalise as made
from rlcomposer.feedback.store import new_client_id, open_store
from rlcomposer.feedback.study import StudySpec, create_study, get_study
from rlcomposer.music.melody import Melody
from rlcomposer.music.metre import parse_metre
from rlcomposer.preferences.listeners import lyrical
from rlcomposer.preferences.personal_reward import save_personal_reward_model
from rlcomposer.preferences.personal_reward_config import PersonalRewardConfig
from rlcomposer.preferences.reward_model_config import RewardModelConfig

SMALL = ["--best-of", "3", "--melodies", "2"]


def tune(metre: str, bars: int, pickup_steps: int = 0, seed: int = 0) -> Melody:
    """A tune in C major of ``bars`` bars of ``metre`` after a pick-up: eighths and quarters."""
    rng = np.random.default_rng(seed)
    total = pickup_steps + bars * parse_metre(metre).steps_per_bar
    notes, step = [], 0
    while step < total:
        length = min(total - step, int(rng.choice([2, 4])))
        notes.append((int(rng.choice([60, 62, 64, 65, 67, 69, 71, 72])), step / 4, length / 4))
        step += length
    return Melody.from_notes(notes, total, metre=metre, pickup_steps=pickup_steps)


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def answer(store, study, rater: str, score, pairs: int, seed: int) -> None:
    """``rater`` answers ``pairs`` random pairs of the study's pool by ``score``, in the study."""
    rng = np.random.default_rng(seed)
    ids = store.melody_ids(list(study.spec.pool_tags))
    records = store.get_melodies(ids)
    who = store.sign_in(rater, kind="simulated")
    done = set()
    while len(done) < pairs:
        a, b = (int(i) for i in rng.choice(ids, 2, replace=False))
        if frozenset((a, b)) in done:
            continue
        done.add(frozenset((a, b)))
        choice = "a" if score(records[a].melody) > score(records[b].melody) else "b"
        store.submit_comparison(new_client_id(), who.id, a, b, choice, "a", study_id=study.id)


def make_study(url: str, metre: str = "3/4", name: str = "taste", pickup: int = 0):
    store = open_store(url)
    store.add_melodies([tune(metre, 4, pickup_steps=pickup, seed=i) for i in range(14)], f"tunes-{name}")
    study = create_study(store, StudySpec(name=name, pool_tags=(f"tunes-{name}",), items_per_rater=3,
                                          repeat_share=0.0, listen_fraction=0.0))
    return store, study


def small_model(store, study, metre_prior_dir):
    config = RewardModelConfig(prior=str(metre_prior_dir), epochs=10, ensemble_size=3, reference_melodies=32)
    return made.fit_study_model(made.study_answers(store, study), config, PersonalRewardConfig(folds=0),
                                str(metre_prior_dir))


@pytest.fixture(scope="module")
def taste(tmp_path_factory, metre_prior_dir):
    """Study ``taste`` (3/4 with a pick-up of a quarter, C major): sim:lyrical and sim:opposite
    answered 30 pairs each; a personal model trained on that; then sim:late answered 3 pairs
    (the model does not know them)."""
    folder = tmp_path_factory.mktemp("personalise")
    url = f"sqlite:///{folder / 'taste.sqlite3'}"
    store, study = make_study(url, "3/4", pickup=4)
    answer(store, study, "sim:lyrical", lyrical, 30, seed=1)
    answer(store, study, "sim:opposite", lambda m: -lyrical(m), 30, seed=2)
    model = small_model(store, study, metre_prior_dir)
    save_personal_reward_model(model, folder / "personal")
    answer(store, study, "sim:late", lyrical, 3, seed=3)
    yield url, folder / "personal"
    database.dispose_engine(url)


def test_the_cli_defaults_are_the_librarys():
    assert (study_cli.DEFAULT_BEST_OF, study_cli.DEFAULT_MELODIES) == (made.DEFAULT_BEST_OF, made.DEFAULT_MELODIES)
    assert made.DEFAULT_BEST_OF == 54


def test_personalise_stores_each_raters_melodies_under_their_tag_in_the_studys_metre(taste, metre_prior_dir,
                                                                                      capsys):
    url, rm = taste
    code, out, err = run(capsys, "study", "personalise", "taste", "--db", url, "--reward", rm,
                         "--model", metre_prior_dir, *SMALL, "--quiet")
    assert code == 0, err
    store = open_store(url)
    raters = {r.name: r.id for r in store.raters()}
    tags = dict(store.tags())
    for name in ("sim:lyrical", "sim:opposite"):
        tag = f"personal:taste:{raters[name]}"
        assert tags[tag] == 2
        assert f"{name}: 2 melodies made for them" in out
        for melody_id in store.melody_ids([tag]):
            melody = store.get_melody(melody_id).melody
            assert (melody.metre.name, melody.key.name, melody.pickup_steps, melody.num_bars) == \
                ("3/4", "C major", 4, 4)
    assert tags["population:taste"] == 2
    assert f"personal:taste:{raters['sim:late']}" not in tags  # fell back: nothing made for them
    assert "sim:late: none (fell back: the reward model does not know rater 'sim:late'" in out
    assert "1 rater fell back to the population model" in out
    # the made-for-you melodies are never part of a study's whole pool
    assert not any(made.is_made_for_you_tag(t) for t in {store.melody_tags()[i] for i in store.melody_ids()})
    # a rerun with another seed adds a new batch; the earlier one stays
    code, out, err = run(capsys, "study", "personalise", "taste", "--db", url, "--reward", rm,
                         "--model", metre_prior_dir, *SMALL, "--seed", "1", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["metre"] == "3/4" and result["best_of"] == 3
    late = next(r for r in result["raters"] if r["rater"] == "sim:late")
    assert late["made"] == 0 and "does not know" in late["fell_back"]
    assert dict(store.tags())[f"personal:taste:{raters['sim:lyrical']}"] == 4


def test_personalise_fits_the_model_on_the_studys_answers_without_reward(tmp_path, metre_prior_dir, capsys):
    url = f"sqlite:///{tmp_path / 'fit.sqlite3'}"
    store, study = make_study(url, "6/8", name="jigs")
    answer(store, study, "sim:lyrical", lyrical, 20, seed=1)
    answer(store, study, "sim:opposite", lambda m: -lyrical(m), 20, seed=2)
    code, out, err = run(capsys, "study", "personalise", "jigs", "--db", url, "--model", metre_prior_dir, *SMALL,
                         "--set", f"prior={metre_prior_dir}", "--set", "epochs=5", "--set", "ensemble_size=3",
                         "--set", "reference_melodies=32")
    assert code == 0, err
    assert "fitting a personal reward model on study jigs's answers (40 comparisons, 2 raters)" in out
    assert "2 bars" not in out and "4 bars of 6/8 in C major" in out
    assert dict(store.tags())["population:jigs"] == 2
    assert "fell back" not in out
    database.dispose_engine(url)


def test_bad_input_is_one_line_exit_2_and_nothing_written(taste, tmp_path, metre_prior_dir, capsys):
    url, rm = taste
    store = open_store(url)
    before = store.tags()
    not_personal = tmp_path / "not-a-model"
    not_personal.mkdir()
    lonely_url = f"sqlite:///{tmp_path / 'lonely.sqlite3'}"
    lonely, study = make_study(lonely_url, "4/4", name="lonely")
    answer(lonely, study, "sim:only", lyrical, 5, seed=1)
    cases = [
        (("study", "personalise", "nosuch", "--db", url), "there is no study called 'nosuch'"),
        (("study", "personalise", "taste", "--db", url, "--reward", tmp_path / "missing"), "not a personal reward"),
        (("study", "personalise", "taste", "--db", url, "--reward", not_personal), "not a personal reward"),
        (("study", "personalise", "taste", "--db", url, "--reward", rm, "--set", "epochs=3"), "without --reward"),
        (("study", "personalise", "lonely", "--db", lonely_url),
         "study lonely has comparisons from 1 rater (sim:only): made-for-you melodies need the answers of at "
         "least two raters"),
    ]
    for argv, expected in cases:
        code, out, err = run(capsys, *argv, "--model", metre_prior_dir)
        assert code == 2, (argv, out, err)
        assert expected in err and err.count("\n") == 1, err
    assert store.tags() == before
    assert not any(made.is_made_for_you_tag(t) for t, _ in lonely.tags())
    database.dispose_engine(lonely_url)


def test_the_blind_ab_answers_are_stored_in_the_study_and_counted_per_rater(tmp_path, metre_prior_dir):
    url = f"sqlite:///{tmp_path / 'ab.sqlite3'}"
    store, study = make_study(url, "4/4", name="ab")
    answer(store, study, "sim:lyrical", lyrical, 20, seed=1)
    answer(store, study, "sim:opposite", lambda m: -lyrical(m), 20, seed=2)
    outsider = store.sign_in("sim:outsider", kind="simulated")
    from rlcomposer.prior.registry import resolve_model

    model = small_model(store, study, metre_prior_dir)
    result = made.personalise_study(store, study, model, resolve_model(str(metre_prior_dir)), best_of=2,
                                    melodies=3)
    assert [b.made for b in result.raters] == [3, 3] and not result.fallbacks
    rater = store.find_rater("sim:lyrical")
    assert made.made_for_you_items(store, study, outsider.id).ready is False  # "not ready yet"
    offered = made.made_for_you_items(store, study, rater.id)
    assert (offered.made, offered.answered, len(offered.items)) == (3, 0, 3)
    mine = set(store.melody_ids([made.personal_tag("ab", rater.id)]))
    theirs = set(store.melody_ids([made.population_tag("ab")]))
    for item in offered.items:
        assert item.melody_ids[0] in mine and item.melody_ids[1] in theirs
    # the app stores an A/B answer as it stores any: a comparison of the study, screen sides kept
    first, second, third = offered.items
    store.submit_comparison(new_client_id(), rater.id, *first.melody_ids, "a", "b", study_id=study.id)
    store.submit_comparison(new_client_id(), rater.id, *second.melody_ids[::-1], "tie", "a", study_id=study.id)
    store.submit_comparison(new_client_id(), rater.id, *third.melody_ids, "skip", "a", study_id=study.id)
    after = made.made_for_you_items(store, study, rater.id)
    assert (after.answered, after.items) == (3, [])
    rows, total = made.made_for_you_results(store, get_study(store, "ab"))
    by_name = {r.rater: r for r in rows}
    assert set(by_name) == {"sim:lyrical", "sim:opposite"}
    mine_row = by_name["sim:lyrical"]
    assert (mine_row.made, mine_row.answers, mine_row.personal_wins, mine_row.skips) == (3, 2, 1.5, 1)
    assert mine_row.share == 0.75
    low, high = mine_row.interval
    assert 0 < low < 0.75 < high <= 1
    assert by_name["sim:opposite"].answers == 0 and by_name["sim:opposite"].share is None
    assert (total.rater, total.made, total.answers, total.personal_wins) == ("total", 6, 2, 1.5)
    # the study's ordinary answers are not A/B answers
    assert sum(r.answers for r in rows) == 2
    database.dispose_engine(url)


def test_ab_answers_do_not_count_as_answers_of_the_study(tmp_path):
    """A rater who finished a 3-item study and answered 2 A/B pairs (and skipped one) still has
    3 answers and no skips in it; the organiser's Made for you table counts the A/B answers."""
    from rlcomposer.feedback.study import study_progress

    url = f"sqlite:///{tmp_path / 'counts.sqlite3'}"
    store, study = make_study(url, "4/4", name="counts")
    answer(store, study, "sim:done", lyrical, 3, seed=1)
    rater = store.find_rater("sim:done")
    store.add_melodies([tune("4/4", 4, seed=20 + i) for i in range(3)], made.personal_tag("counts", rater.id))
    store.add_melodies([tune("4/4", 4, seed=30 + i) for i in range(3)], made.population_tag("counts"))
    for item, choice in zip(made.made_for_you_items(store, study, rater.id).items, ("a", "b", "skip"), strict=True):
        store.submit_comparison(new_client_id(), rater.id, *item.melody_ids, choice, "a", study_id=study.id)
    counts = store.count_submissions(rater.id, study_id=study.id)
    assert (counts["answered"], counts["skips"], counts["comparisons"]) == (3, 0, 3)
    assert store.count_submissions(rater.id)["answered"] == 5  # every answer of theirs, outside a study's count
    assert store.study_answer_counts(study.id) == {rater.id: {"answered": 3, "skips": 0}}
    progress = study_progress(store, study, "simulated")
    assert (progress.raters, progress.completed, progress.answers, progress.skips) == (1, 1, 3, 0)
    [row], total = made.made_for_you_results(store, study)
    assert (row.answers, row.skips, total.answers) == (2, 1, 2)
    # a study whose own pool is made-for-you melodies counts its answers
    pop = create_study(store, StudySpec(name="pop", pool_tags=(made.population_tag("counts"), "tunes-counts"),
                                        mode="mixed-tags", items_per_rater=1, repeat_share=0.0))
    ids = store.melody_ids([made.population_tag("counts")])[0], store.melody_ids(["tunes-counts"])[0]
    store.submit_comparison(new_client_id(), rater.id, *ids, "a", "a", study_id=pop.id)
    assert store.count_submissions(rater.id, study_id=pop.id)["answered"] == 1
    database.dispose_engine(url)
