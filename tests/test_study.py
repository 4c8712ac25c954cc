"""Studies: settings checked with clear messages, create / list / close on the command line,
progress per study (people and simulated apart), the statistics the organiser sees,
and the study an experiment's people round creates."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from rlcomposer.cli.main import main
from rlcomposer.feedback import database
from rlcomposer.feedback.export import export_ratings, format_rows
from rlcomposer.feedback.store import InvalidToken, new_client_id, open_store
from rlcomposer.feedback.study import (
    StudyError,
    StudySpec,
    close_study,
    create_study,
    default_study,
    get_study,
    list_studies,
    reopen_study,
    study_progress,
    sync_study,
)
from rlcomposer.feedback.study_statistics import (
    activity_series,
    agreement_summary,
    answer_counts,
    answers_of_kind,
    wilson_interval,
    win_rates_with_intervals,
)
from rlcomposer.music.melody import random_melody


@pytest.fixture
def store(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.sqlite3'}"
    store = open_store(url)
    rng = np.random.default_rng(1)
    store.add_melodies([random_melody(rng, 32) for _ in range(4)], "prior")
    store.add_melodies([random_melody(rng, 32) for _ in range(4)], "tuned")
    yield store
    database.dispose_engine(url)


@pytest.mark.parametrize("settings, message", [
    ({"name": "has space"}, "study name"),
    ({"name": "s", "mode": "duet"}, "study mode"),
    ({"name": "s", "mode": "mixed-tags", "pool_tags": ("prior",)}, "exactly two different pool tags"),
    ({"name": "s", "items_per_rater": 0}, "items per rater"),
    ({"name": "s", "selection": "active"}, "needs a reward model"),
    ({"name": "s", "listen_fraction": 1.5}, "listen fraction"),
    ({"name": "s", "repeat_share": 0.9}, "repeat share"),
    ({"name": "s", "completion_code": "x" * 65}, "completion code"),
])
def test_bad_study_settings_are_refused_naming_the_setting(settings, message):
    with pytest.raises(StudyError, match=message):
        StudySpec(**settings)


def test_a_study_with_empty_pool_tags_or_a_taken_name_is_refused(store):
    with pytest.raises(StudyError, match="pool tag 'nothing' has no melodies"):
        create_study(store, StudySpec(name="s", pool_tags=("nothing",)))
    create_study(store, StudySpec(name="s", pool_tags=("prior",)))
    with pytest.raises(StudyError, match="exists already"):
        create_study(store, StudySpec(name="s"))


def test_a_missing_or_taken_study_is_refused_alike_by_the_store_and_the_study_functions(store):
    for refuse in (lambda: close_study(store, "nope"), lambda: reopen_study(store, "nope"),
                   lambda: store.set_study_status("nope", "closed"), lambda: store.update_study("nope")):
        with pytest.raises(StudyError, match="there is no study called 'nope'"):
            refuse()
    create_study(store, StudySpec(name="s", pool_tags=("prior",)))
    with pytest.raises(StudyError, match="a study called 's' exists already"):
        store.create_study("s", pool_tags=[], mode="pairs")
    assert [s.name for s in list_studies(store)] == ["s"]


def test_progress_counts_answers_not_skips_and_people_apart_from_simulated(store):
    study = create_study(store, StudySpec(name="p", items_per_rater=2))
    ann, bob = store.sign_in("Ann"), store.sign_in("Bob")
    sim = store.sign_in("sim:lyrical", kind="simulated")
    ids = store.melody_ids()
    for rater, a, b, choice in [(ann, 0, 1, "a"), (ann, 2, 3, "b"), (bob, 0, 1, "skip"), (sim, 4, 5, "a")]:
        store.submit_comparison(new_client_id(), rater.id, ids[a], ids[b], choice, "a", study_id=study.id)
    store.submit_comparison(new_client_id(), bob.id, ids[6], ids[7], "a", "a")  # outside the study
    people = study_progress(store, study)
    assert (people.raters, people.completed, people.answers, people.skips) == (2, 1, 2, 1)
    assert people.completion == 0.5
    assert study_progress(store, study, "simulated").answers == 1
    with pytest.raises(Exception, match="already answered"):  # the same pair again in the study
        store.submit_comparison(new_client_id(), ann.id, ids[1], ids[0], "b", "b", study_id=study.id)
    close_study(store, "p")
    with pytest.raises(Exception, match="closed"):
        store.submit_comparison(new_client_id(), bob.id, ids[2], ids[3], "a", "a", study_id=study.id)


def test_sync_study_follows_its_settings(store):
    first = sync_study(store, StudySpec(name="default", pool_tags=("prior",)))
    second = sync_study(store, StudySpec(name="default", pool_tags=("tuned",), mode="stars"))
    assert first.id == second.id and second.spec.pool_tags == ("tuned",) and second.spec.mode == "stars"


def test_a_study_named_default_keeps_its_settings_against_the_apps(store):
    main(["study", "create", "default", "--db", store.url, "--tags", "tuned", "--mode", "stars", "--items", "7"])
    app_settings = StudySpec(name="default", pool_tags=("prior",), mode="pairs", items_per_rater=20)
    study = default_study(store, app_settings)
    assert (study.spec.pool_tags, study.spec.mode, study.spec.items_per_rater) == (("tuned",), "stars", 7)
    close_study(store, "default")
    assert not default_study(store, app_settings).is_open  # a closed default study stays closed
    # made from the app's settings when there is none
    other = default_study(store, StudySpec(name="other", pool_tags=("prior",)))
    assert other.spec.pool_tags == ("prior",)


def test_a_pairs_study_never_mentions_stars_and_a_stars_study_does():
    assert "star" not in StudySpec(name="p").instructions.lower()
    assert "star" not in StudySpec(name="m", mode="mixed-tags", pool_tags=("a", "b")).instructions.lower()
    assert "1 star" in StudySpec(name="s", mode="stars").instructions
    assert StudySpec(name="own", instructions="Listen well.").instructions == "Listen well."


def test_study_link_issues_a_working_link_and_retires_the_old_one(store, capsys):
    create_study(store, StudySpec(name="spring", pool_tags=("prior",)))
    kim, old_token = store.register_rater("Keyboard Kim")
    assert main(["study", "link", "spring", "keyboard kim", "--db", store.url, "--json",
                 "--base-url", "https://rate.example.org"]) == 0
    link = json.loads(capsys.readouterr().out)["url"]
    assert link.startswith("https://rate.example.org/?study=spring&token=")
    new_token = link.split("&token=")[1]
    assert store.sign_in_with_token(new_token).id == kim.id
    with pytest.raises(InvalidToken):
        store.sign_in_with_token(old_token)
    assert main(["study", "link", "spring", "nobody", "--db", store.url]) == 2
    err = capsys.readouterr().err
    assert "no rater called 'nobody'" in err and len(err.strip().splitlines()) == 1
    assert main(["study", "link", "autumn", "keyboard kim", "--db", store.url]) == 2
    assert "no study called 'autumn'" in capsys.readouterr().err
    store.sign_in_with_token(new_token)  # a refused link request changed nothing


def test_dashboard_counts_and_charts_agree_skips_apart(store):
    study = create_study(store, StudySpec(name="p", pool_tags=("prior",)))
    ann = store.sign_in("Ann")
    ids = store.melody_ids(["prior"])
    pairs = [(ids[0], ids[1]), (ids[2], ids[3]), (ids[0], ids[2])]
    for (a, b), choice in zip(pairs, ("a", "skip", "tie"), strict=True):
        store.submit_comparison(new_client_id(), ann.id, a, b, choice, "a", study_id=study.id)
    store.submit_rating(new_client_id(), ann.id, ids[1], 4, study_id=study.id)
    rows = answers_of_kind(store, "person", study.id)
    counts = answer_counts(rows)
    assert counts == {"raters": 1, "stars": 1, "comparisons": 2, "skips": 1}
    series = activity_series(rows, "rater", cumulative=True)
    assert sum(s["count"] for s in series if s["hour"] == series[-1]["hour"]) == counts["stars"] + counts["comparisons"]


def test_the_export_names_the_study_and_escapes_formulas_in_csv_only(store, tmp_path):
    study = create_study(store, StudySpec(name="spring", pool_tags=("prior",)))
    ids = store.melody_ids(["prior"])
    names = ["=HYPERLINK(\"http://x\",\"y\")", "+1", "-2", "@SUM(A1)", "plain"]
    for i, name in enumerate(names):
        rater = store.sign_in(name)
        store.submit_comparison(new_client_id(), rater.id, ids[i % 3], ids[3], "a", "a", study_id=study.id)
    export_ratings(store, tmp_path / "r.csv")
    export_ratings(store, tmp_path / "r.jsonl")
    rows = list(csv.DictReader((tmp_path / "r.csv").open(newline="")))
    assert {r["study"] for r in rows} == {"spring"}
    assert [r["rater"] for r in rows] == ["'" + " ".join(n.split()) if n != "plain" else n for n in names]
    lines = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [r["rater"] for r in lines] == [" ".join(n.split()) for n in names]  # raw in JSONL
    assert all(r["study"] == "spring" for r in lines)
    assert rows[0]["melody_tokens"][0] != "'"  # numbers and token lists untouched
    # a tab or carriage return first (text from elsewhere, e.g. a model name) is a formula too
    text = format_rows([{"rater": "\tx", "melody_model": "\r=1", "melody_seed": -3}], "csv")
    assert text.splitlines()[1].startswith(",,,,'\tx,") and "'\r=1" in text and ",-3," in text


def test_win_rates_have_95_percent_intervals_and_agreement_says_why_it_is_empty(store):
    ann, sim = store.sign_in("Ann"), store.sign_in("sim:x", kind="simulated")
    prior, tuned = store.melody_ids(["prior"]), store.melody_ids(["tuned"])
    for i in range(4):
        store.submit_comparison(new_client_id(), ann.id, tuned[i], prior[i], "a" if i < 3 else "tie", "a")
    store.submit_comparison(new_client_id(), sim.id, tuned[0], prior[0], "b", "a")
    people = answers_of_kind(store, "person")
    rates = {(r["tag"], r["against"]): r for r in win_rates_with_intervals(people)}
    tuned_rate = rates[("tuned", "prior")]
    assert tuned_rate["win_rate"] == pytest.approx(3.5 / 4) and tuned_rate["comparisons"] == 4
    assert tuned_rate["low_95"] < 0.875 < tuned_rate["high_95"] <= 1.0
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.404, abs=0.001) and high == pytest.approx(0.596, abs=0.001)
    summary = agreement_summary(store, people)
    assert summary.pair_agreement is None and summary.pair_n == 0
    assert "two different raters" in summary.reasons["pairs"] and "4 comparisons by 1 raters" in summary.reasons["pairs"]
    both = agreement_summary(store, answers_of_kind(store, "person") + answers_of_kind(store, "simulated"))
    assert both.pair_n == 1 and both.pair_agreement == 0.0  # Ann said tuned, the simulated listener prior
    series = activity_series(people, "tag", cumulative=True)
    assert series[-1]["count"] == 4 and series[-1]["hour"].endswith(":00")


def test_study_commands_create_list_and_close(store, capsys):
    url = store.url
    assert main(["study", "create", "spring", "--db", url, "--tags", "prior,tuned", "--mode", "mixed-tags",
                 "--items", "5", "--completion-code", "SPRING-1", "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["url"].endswith("/?study=spring") and created["pool_tags"] == ["prior", "tuned"]
    assert main(["study", "list", "--db", url]) == 0
    assert "spring\topen\tmixed-tags" in capsys.readouterr().out
    assert main(["study", "close", "spring", "--db", url]) == 0
    assert get_study(store, "spring").status == "closed"
    assert main(["study", "create", "bad", "--db", url, "--tags", "nothing"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rlcomposer: error: ") and "no melodies" in err and len(err.strip().splitlines()) == 1
    assert main(["study", "close", "nowhere", "--db", url]) == 2


def test_an_experiment_waiting_for_people_creates_its_rounds_study_and_says_its_address(tmp_path):
    from rlcomposer.experiments.loop import Experiment, ExperimentConfig, ExperimentWaiting

    config = ExperimentConfig(name="folk", listener="people", pool_size=6, comparisons_per_round=4,
                              evaluation_pairs=4, rounds=1)
    experiment = Experiment(config, tmp_path / "folk", log=lambda _: None, progress=False)
    with pytest.raises(ExperimentWaiting, match=r"study folk/round-0, http://localhost:8501/\?study=folk%2Fround-0"):
        experiment.run()
    study = get_study(open_store(experiment.db_url), "folk/round-0")
    assert study.spec.pool_tags == ("folk/round-0",) and study.spec.mode == "pairs"
