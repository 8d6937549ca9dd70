"""The Alembic migrations build exactly the schema the code declares (orchestrator/ledger/schema.py)."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.ledger import schema


def test_migrations_match_the_declared_schema(ledger_url):
    with Ledger(ledger_url) as ledger:
        with ledger.engine_.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), schema.metadata)
    # alembic's own bookkeeping table is not in the declared schema
    diff = [d for d in diff if not (d[0] == "remove_table" and d[1].name == "alembic_version")]
    assert diff == [], f"migrations and schema.py disagree; write a migration for: {diff}"


def test_migrations_have_one_head():
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from importlib.resources import files

    config = Config()
    config.set_main_option("script_location", str(files("clicloop.orchestrator.ledger").joinpath("migrations")))
    heads = ScriptDirectory.from_config(config).get_heads()
    assert len(heads) == 1, f"several migration heads: {heads}; chain them"


def test_a_ledger_from_before_runner_leases_upgrades_and_keeps_its_data(ledger_url):
    from alembic import command
    from alembic.config import Config
    from importlib.resources import files
    from sqlalchemy import create_engine, inspect

    from clicloop.orchestrator.runner import RunnerLease

    engine = create_engine(ledger_url)
    with engine.begin() as conn:  # a ledger as clicloop wrote it at revision 0004, with a loop in it
        config = Config()
        config.set_main_option("script_location", str(files("clicloop.orchestrator.ledger").joinpath("migrations")))
        config.attributes["connection"] = conn
        command.upgrade(config, "0004")
        conn.execute(schema.meta.insert(), [{"key": "app", "value": schema.APP}, {"key": "salt", "value": "0" * 32}])
        conn.execute(schema.loops.insert().values(name="old", config_hash="h", config_json="{}", seed=0, created_at=0.0))
    engine.dispose()
    with Ledger(ledger_url) as ledger:
        assert ledger.loops() == ["old"]
        assert "runner_leases" in inspect(ledger.engine_).get_table_names()
        RunnerLease(ledger, "old").acquire(heartbeat=False).release()
