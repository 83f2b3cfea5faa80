"""Settings are declared once and documented in one place."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.kernel.errors import InvalidInput
from keel.kernel.settings import Settings, settings_table
from keel.secrets.envelope import parse_master_key

DOC = Path(__file__).parents[3] / "docs" / "configuration.md"


def test_configuration_page_shows_exactly_the_declared_settings():
    text = DOC.read_text()
    start, end = text.index("<!-- settings-table:start -->"), text.index("<!-- settings-table:end -->")
    documented = text[start:end].split("\n", 1)[1].strip()
    assert documented == settings_table()


def test_every_setting_has_help_text():
    missing = [name for name, field in Settings.model_fields.items() if not field.description]
    assert missing == []


def test_environment_overrides_keel_toml_which_overrides_defaults(tmp_path, monkeypatch):
    config = tmp_path / "keel.toml"
    config.write_text('port = 9100\nmax_tenants = 7\nhome = "' + str(tmp_path / "h") + '"\n')
    monkeypatch.setenv("KEEL_CONFIG", str(config))
    monkeypatch.setenv("KEEL_PORT", "9200")
    settings = Settings()
    assert (settings.port, settings.max_tenants, settings.home) == (9200, 7, (tmp_path / "h").resolve())


def test_a_bad_value_names_the_setting(monkeypatch):
    monkeypatch.setenv("KEEL_PORT", "not-a-port")
    with pytest.raises(ValueError, match="port"):
        Settings()


def test_a_malformed_master_key_is_refused_with_its_name():
    with pytest.raises(InvalidInput, match="KEEL_MASTER_KEY"):
        parse_master_key("c2hvcnQ=")
