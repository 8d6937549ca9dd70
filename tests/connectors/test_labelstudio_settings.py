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
