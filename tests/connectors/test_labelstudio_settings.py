"""The ML backend's settings (``connectors/labelstudio/settings.py``): a value out of range is
refused naming the command-line option a user gave, not only the internal name."""

from __future__ import annotations

import pytest

from clicloop.connectors.labelstudio.settings import ServeSettings
from clicloop.orchestrator.errors import ConfigError

TOKEN = "0123456789abcdef0123"


@pytest.mark.parametrize(("values", "says"), [
    ({"hourly_wage": -5}, r"--hourly-wage \(hourly_wage\) must be 0 or more, not -5"),
    ({"train_every": -1}, r"--train-every \(train_every\) must be 0 or more, not -1"),
    ({"max_body_bytes": 10}, r"--max-body-mb \(max_body_bytes\) must allow 1024 bytes at least, not 10"),
    ({"min_labels": 1}, r"min_labels must be 2 or more, not 1"),
])
def test_a_value_out_of_range_names_its_option(values, says):
    """Before, every one of these said "train_every >= 0, min_labels >= 2, max_body_bytes >= 1024
    and hourly_wage >= 0 are required", naming no option and not the value given."""
    with pytest.raises(ConfigError, match=says):
        ServeSettings(token=TOKEN, **values)


XML = '<View><Text name="t" value="$t"/><Choices name="c" toName="t"><Choice value="a"/><Choice value="b"/></Choices></View>'


def _project(**settings):
    from clicloop.connectors.labelstudio.engine import ProjectModel
    from clicloop.connectors.labelstudio.labelset import parse_schema

    pm = ProjectModel(ServeSettings(token=TOKEN, **settings), 1, parse_schema(XML), registry=None)
    pm.retrain_due_ = False
    return pm


def test_the_configured_api_key_never_goes_to_a_host_a_setup_names():
    """Before, with $LABEL_STUDIO_API_KEY set and no --label-studio-url, a /setup naming any
    ``hostname`` without an ``access_token`` got the operator's key sent to that host."""
    pm = _project(label_studio_api_key="SECRET-LS-KEY")
    pm.connect("http://127.0.0.1:9199", None)
    assert not hasattr(pm, "client_")
    pm.connect("http://127.0.0.1:9199", "setup-token")  # the token that came with that /setup
    assert (pm.client_.url, pm.client_.api_key) == ("http://127.0.0.1:9199", "setup-token")


def test_the_configured_url_takes_the_configured_key_until_a_setup_brings_one():
    pm = _project(label_studio_url="http://ls.internal:8080", label_studio_api_key="SECRET-LS-KEY")
    pm.connect("http://elsewhere:9199", None)
    assert (pm.client_.url, pm.client_.api_key) == ("http://ls.internal:8080", "SECRET-LS-KEY")
    pm.connect("http://elsewhere:9199", "setup-token")
    assert (pm.client_.url, pm.client_.api_key) == ("http://ls.internal:8080", "setup-token")


@pytest.mark.parametrize("token", ["pässwörd-0123456789ab", "0123456789abcdef 012", "0123456789abcdef\t012"])
def test_a_token_no_client_can_send_is_refused_at_startup(token):
    """Found 2026-12-07: a non-ASCII token could never be sent (headers are read as Latin-1), so
    every request got 401 with no word of why."""
    from clicloop.orchestrator.postdeploy.server import IngestSettings

    with pytest.raises(ConfigError, match="printable ASCII without spaces"):
        ServeSettings(token=token)
    with pytest.raises(ConfigError, match="printable ASCII without spaces"):
        IngestSettings(token=token, ledger="sqlite://", deployment="d")
