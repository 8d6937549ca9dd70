from pathlib import Path

import pytest

from clicloop.orchestrator.config import config_from_dict, load_config
from clicloop.orchestrator.errors import BudgetError, ConfigError
from tests.conftest import digits_config


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_errors_name_the_file_and_the_field(tmp_path):
    path = write(tmp_path, "bad.yaml", "loop: {purpose: 'Label digits for a form reader.', batch_size: 0}\ndata: {builtin: digits}\nstop: {max_rounds: 2}\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(path) in str(e.value) and "loop.batch_size" in str(e.value)


def test_unknown_fields_are_refused_not_ignored(tmp_path):
    path = write(tmp_path, "typo.yaml", "loop: {purpose: 'Label digits for a form reader.', batchsize: 5}\ndata: {builtin: digits}\nstop: {max_rounds: 2}\n")
    with pytest.raises(ConfigError, match=r"loop\.batchsize.*unknown field"):
        load_config(path)


def test_missing_purpose_is_required():
    cfg = digits_config("sqlite://")
    del cfg["loop"]["purpose"]
    with pytest.raises(ConfigError, match="loop.purpose.*required"):
        config_from_dict(cfg)


def test_a_loop_needs_a_stop_rule():
    with pytest.raises(ConfigError, match="stop rule"):
        config_from_dict(digits_config("sqlite://", stop={"max_labels": None}))


def test_a_label_budget_below_one_batch_is_refused():
    with pytest.raises(BudgetError, match=r"stop.max_labels.*one batch"):
        config_from_dict(digits_config("sqlite://", stop={"max_labels": 5}))


def test_invalid_yaml_names_the_file(tmp_path):
    path = write(tmp_path, "broken.yaml", "loop: [unclosed\n")
    with pytest.raises(ConfigError, match="broken.yaml.*not valid YAML"):
        load_config(path)


@pytest.mark.parametrize("text", ["loop: {name: a}\nstop: {max_cost: 0.3}\nstop: {max_rounds: 6}\n",
                                  "loop: {name: a, batch_size: 5, batch_size: 7}\n"])
def test_a_key_written_twice_is_refused_not_the_last_one_kept(tmp_path, text):
    """Found 2026-12-06: a second ``stop:`` section silently dropped the first one's max_cost,
    and the run spent six times the cap."""
    path = write(tmp_path, "twice.yaml", text)
    with pytest.raises(ConfigError, match=r"(?s)twice.yaml.*not valid YAML.*found the key '(stop|batch_size)' twice"):
        load_config(path)


def test_a_merge_key_may_still_be_overridden(tmp_path):
    from clicloop.orchestrator.yamlfile import load_yaml

    assert load_yaml("a: &x {b: 1, c: 2}\nd:\n  <<: *x\n  b: 3\n")["d"] == {"b": 3, "c": 2}


def test_toml_works_and_relative_paths_resolve_against_the_file(tmp_path):
    path = write(tmp_path, "c.toml", """
ledger = "sqlite:///runs/l.db"
[loop]
purpose = "Sort support tickets by topic."
[data.pool]
path = "pool.csv"
text = "text"
[stop]
max_rounds = 3
""")
    cfg = load_config(path)
    assert cfg.data.pool.path == tmp_path / "pool.csv"
    assert cfg.ledger == f"sqlite:///{tmp_path / 'runs' / 'l.db'}"


def test_the_starter_config_is_valid():
    from importlib.resources import files

    template = Path(str(files("clicloop.orchestrator").joinpath("templates/clicloop.yaml")))
    cfg = load_config(template)
    assert cfg.strategy.name == "margin-coverage" and cfg.stop.max_labels == 300


def test_a_plugin_named_alone_is_a_plugin_without_params(tmp_path):
    """The docs write ``model: auto``; as YAML it was refused with pydantic's class name
    ("Input should be a valid dictionary or instance of PluginRef")."""
    from clicloop.orchestrator.loop_setup import fingerprint

    path = write(tmp_path, "short.yaml", "loop: {purpose: 'Label digits for a form reader.'}\ndata: {builtin: digits}\n"
                                         "stop: {max_rounds: 2}\nmodel: auto\nstrategy: margin\n")
    short = load_config(path)
    assert (short.model.name, short.model.params, short.strategy.name) == ("auto", {}, "margin")
    long = load_config(write(tmp_path, "long.yaml", path.read_text().replace("model: auto", "model: {name: auto}")
                             .replace("strategy: margin", "strategy: {name: margin}")))
    assert fingerprint(short) == fingerprint(long)
    with pytest.raises(ConfigError, match=r"field 'strategy': give a plugin's name \(e.g. margin\), or \{name: NAME"):
        load_config(write(tmp_path, "bad.yaml", path.read_text().replace("strategy: margin", "strategy: [margin]")))


def test_a_ledger_url_of_another_database_is_named_and_its_password_not_shown():
    """`ledger: mysql://...` failed at run time with "No module named 'MySQLdb'"."""
    import pytest

    from clicloop.orchestrator.errors import ConfigError
    from tests.conftest import digits_config

    with pytest.raises(ConfigError, match=r"ledger.*SQLite or PostgreSQL URL") as e:
        config_from_dict(digits_config("mysql://me:s3cret@db.example.org/labels"))
    assert "s3cret" not in str(e.value)


def test_a_number_field_refuses_true_and_false():
    """`batch_size: true` ran as a batch of 1."""
    with pytest.raises(ConfigError, match=r"batch_size is a number, not true"):
        config_from_dict(digits_config("sqlite:///x.db", loop={"batch_size": True}))
    with pytest.raises(ConfigError, match=r"max_labels is a number, not false"):
        config_from_dict(digits_config("sqlite:///x.db", stop={"max_labels": False}))
    assert config_from_dict(digits_config("sqlite:///x.db", loop={"batch_size": 10})).loop.batch_size == 10


def test_whole_number_class_names_are_taken_in_data_labels():
    """Found 2026-12-06: ``labels: [0, 1, 2]`` was refused ("Input should be a valid string")."""
    config = config_from_dict({**digits_config("sqlite://"), "data": {"builtin": "digits", "labels": list(range(10))}})
    assert config.data.labels == [str(i) for i in range(10)]
    with pytest.raises(ConfigError, match="data.labels"):
        config_from_dict({**digits_config("sqlite://"), "data": {"builtin": "digits", "labels": [True, 1.5]}})


@pytest.mark.parametrize(("section", "value"), [("ledger", "sqlite:///${HOME}/c.db"), ("ledger", "sqlite:///~/c.db"),
                                                ("pool", "$HOME/pool.csv"), ("pool", "~/pool.csv")])
def test_a_path_with_tilde_or_a_variable_is_refused_not_made_a_folder(section, value):
    """Found 2026-12-06: ``ledger: sqlite:///${HOME}/c.db`` made a folder literally named
    ``${HOME}`` beside the config; only secrets take ``{env: ...}``."""
    cfg = digits_config("sqlite://")
    if section == "ledger":
        cfg["ledger"] = value
    else:
        cfg["data"] = {"pool": {"path": value}}
    with pytest.raises(ConfigError, match=r"expands no '~' or '\$VARIABLE' in paths; write the path in full"):
        config_from_dict(cfg)


@pytest.mark.parametrize("path", ["data/price$usd.csv", "data/a~b.csv", "data/v$2/pool.csv"])
def test_a_dollar_or_tilde_inside_a_file_name_is_a_file_name(path):
    """Found 2026-12-07 in review: 'price$usd.csv' was refused as a variable."""
    config_from_dict({**digits_config("sqlite://"), "data": {"pool": {"path": path}}})


@pytest.mark.parametrize("path", ["data/$NOT_A_SET_VARIABLE_X/pool.csv", "~backup/pool.csv"])
def test_a_variable_is_refused_whatever_the_environment_holds(path, monkeypatch):
    """Found 2026-12-07 in re-check: a $NAME refused only while set was accepted under cron, where
    it was unset, and made a fresh ledger in a folder of that name; ~backup/ is user backup's home."""
    monkeypatch.delenv("NOT_A_SET_VARIABLE_X", raising=False)
    with pytest.raises(ConfigError, match="expands no"):
        config_from_dict({**digits_config("sqlite://"), "data": {"pool": {"path": path}}})


def test_a_payments_journal_sits_beside_the_config_and_leaves_the_loop_fingerprint_alone(tmp_path):
    """Found 2026-12-07 in re-check: adding params.payments_journal to a Prolific loop's config
    changed its fingerprint (the resume was refused), and a relative journal was read from the
    folder the run started in: a resume elsewhere found it empty and would pay again."""
    import yaml

    from clicloop.orchestrator.loop_setup import fingerprint

    base = {**digits_config("sqlite:///l.db"), "backend": {"name": "prolific", "params": {"survey_url": "http://s"}}}
    with_journal = {**base, "backend": {"name": "prolific", "params": {"survey_url": "http://s",
                                                                       "payments_journal": "paid.jsonl"}}}
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(base))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(with_journal))
    a, b = load_config(tmp_path / "a.yaml"), load_config(tmp_path / "b.yaml")
    assert b.backend.params["payments_journal"] == str(tmp_path / "paid.jsonl")
    assert fingerprint(a)[0] == fingerprint(b)[0]


def test_a_misspelled_required_field_is_named_not_only_the_one_it_meant(tmp_path):
    path = write(tmp_path, "typo.yaml", "loop: {purpos: 'Label digits for a form reader.'}\ndata: {builtin: digits}\nstop: {max_rounds: 2}\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert e.value.field == "loop.purpos" and "did you mean 'purpose'" in str(e.value), str(e.value)
    assert "more problem(s): loop.purpose" in str(e.value)


def test_a_misspelled_nested_field_is_named_before_the_required_one_it_hid():
    cfg = digits_config("sqlite://")
    cfg["stop"]["plateau"] = {"min_point_per_hour": 1}
    with pytest.raises(ConfigError) as e:
        config_from_dict(cfg)
    assert e.value.field == "stop.plateau.min_point_per_hour" and "unknown field" in str(e.value), str(e.value)
