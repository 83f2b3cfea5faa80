"""The connector protocol: config validation, secret redaction, the registry."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from keel.connectors import (
    Catalog,
    Connector,
    ConnectorRegistry,
    ConnectorUnavailable,
    Message,
    redact,
    validate_config,
)
from keel.connectors.files import FilesConnector
from keel.connectors.protocol import jsonable, jsonable_column
from keel.kernel.errors import Conflict, InvalidInput, NotFound

API_SPEC: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["base_url", "auth"],
    "additionalProperties": False,
    "properties": {
        "base_url": {"type": "string", "format": "uri", "minLength": 8},
        "page_size": {"type": "integer", "minimum": 1, "default": 100},
        "auth": {
            "oneOf": [
                {
                    "type": "object",
                    "required": ["token"],
                    "properties": {"token": {"type": "string", "minLength": 10, "airbyte_secret": True}},
                },
                {
                    "type": "object",
                    "required": ["user", "password"],
                    "properties": {
                        "user": {"type": "string"},
                        "password": {"type": "string", "x-secret": True},
                    },
                },
            ]
        },
        "headers": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "value": {"type": "string", "x-secret": True}},
            },
        },
        "api_key": {"type": "string", "minLength": 12, "x-secret": True},
    },
}


class ApiConnector(Connector):
    """A connector with secrets in its spec; only ``spec`` is exercised here."""

    name = "test_api"
    version = "0.1.0"

    def spec(self) -> dict[str, Any]:
        return API_SPEC

    def probe(self, cfg: dict[str, Any]) -> tuple[bool, str, None]:
        return True, "not contacted", None

    def discover(self, config: Mapping[str, Any]) -> Catalog:
        return Catalog()

    def read(
        self,
        config: Mapping[str, Any],
        stream: str,
        state: Mapping[str, Any] | None,
        *,
        batch_size: int = 1000,
    ) -> Iterator[Message]:
        return iter(())


def invalid_field(connector: Connector, config: Any) -> tuple[str, str]:
    with pytest.raises(InvalidInput) as caught:
        validate_config(connector, config)
    return caught.value.fields["field"], caught.value.detail


def test_valid_config_comes_back_with_defaults_filled_in(tmp_path: Path) -> None:
    config = {"path": str(tmp_path), "pattern": "*.csv", "format": "csv"}
    assert validate_config(FilesConnector(), config) == {
        "path": str(tmp_path),
        "pattern": "*.csv",
        "format": "csv",
        "csv": {"delimiter": ",", "header": True},
        "on_change": "error",
    }
    assert config == {"path": str(tmp_path), "pattern": "*.csv", "format": "csv"}  # input untouched


def test_a_missing_required_setting_is_named_by_its_path() -> None:
    assert invalid_field(FilesConnector(), {"pattern": "*.csv", "format": "csv"}) == (
        "config.path",
        "config.path: is required",
    )


def test_a_wrong_nested_value_is_named_by_its_path(tmp_path: Path) -> None:
    config = {"path": str(tmp_path), "pattern": "*.csv", "format": "csv", "csv": {"delimiter": ";;"}}
    field, detail = invalid_field(FilesConnector(), config)
    assert field == "config.csv.delimiter"
    assert "too long" in detail


def test_an_unknown_setting_is_named(tmp_path: Path) -> None:
    config = {"path": str(tmp_path), "pattern": "*.csv", "format": "csv", "delimter": ";"}
    assert invalid_field(FilesConnector(), config) == (
        "config.delimter",
        "config.delimter: is not a known setting",
    )


def test_an_unsupported_format_is_named(tmp_path: Path) -> None:
    field, detail = invalid_field(FilesConnector(), {"path": str(tmp_path), "pattern": "*", "format": "xml"})
    assert (field, "'xml' is not one of ['csv', 'jsonl', 'parquet']" in detail) == ("config.format", True)


def test_a_config_that_is_not_an_object_is_refused() -> None:
    assert invalid_field(FilesConnector(), ["path"]) == ("config", "config: must be an object")


def test_an_invalid_secret_is_named_without_showing_its_value() -> None:
    config = {"base_url": "https://crm.example", "auth": {"token": "x"}, "api_key": "short-key"}
    field, detail = invalid_field(ApiConnector(), config)
    assert field == "config.api_key"
    assert "short-key" not in detail
    assert detail == "config.api_key: is invalid (minLength)"


def test_redact_hides_every_secret_and_keeps_the_rest() -> None:
    config = {
        "base_url": "https://crm.example",
        "page_size": 50,
        "auth": {"user": "etl", "password": "hunter2"},
        "headers": [{"name": "X-Tenant", "value": "s3cr3t"}],
        "api_key": "abcdefghijklmnop",
    }
    assert redact(API_SPEC, config) == {
        "base_url": "https://crm.example",
        "page_size": 50,
        "auth": {"user": "etl", "password": "***"},
        "headers": [{"name": "X-Tenant", "value": "***"}],
        "api_key": "***",
    }
    assert config["auth"]["password"] == "hunter2"  # the caller's config is not modified


def test_redact_hides_a_secret_of_any_variant() -> None:
    assert redact(API_SPEC, {"auth": {"token": "0123456789abc"}}) == {"auth": {"token": "***"}}


def test_the_registry_finds_the_files_connector_through_its_entry_point() -> None:
    registry = ConnectorRegistry()
    assert "files" in registry.names()
    assert registry.get("files") is FilesConnector
    assert registry.broken == {}


def test_an_unknown_connector_is_not_found() -> None:
    with pytest.raises(NotFound) as caught:
        ConnectorRegistry().get("nope")
    assert caught.value.fields == {"kind": "connector", "id": "nope"}


def install_plugin(root: Path, entries: str) -> None:
    """Install a distribution the way pip would (a dist-info with entry_points.txt) on sys.path."""
    dist = root / "keel_test_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: keel-test-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[keel.connectors]\n{entries}\n")


def test_a_broken_plugin_is_reported_by_name_and_the_others_still_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_plugin(
        tmp_path,
        "broken = keel_no_such_module_for_tests:Connector\nnotaconnector = keel.kernel.errors:KeelError",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = ConnectorRegistry()
    assert registry.names() == [
        "files",
        "http",
        "singer",
        "sql",
    ]  # the built-ins, untouched by the broken plugin
    assert registry.broken == {
        "broken": "ModuleNotFoundError: No module named 'keel_no_such_module_for_tests'",
        "notaconnector": (
            "InvalidInput: connector: <class 'keel.kernel.errors.KeelError'> is not a Connector class"
        ),
    }
    with pytest.raises(ConnectorUnavailable) as caught:
        registry.get("broken")
    assert caught.value.fields == {"connector": "broken"}
    assert "keel_no_such_module_for_tests" in caught.value.detail
    assert registry.get("files") is FilesConnector
    assert "keel_no_such_module_for_tests" not in sys.modules


def test_a_connector_registered_by_hand_is_found_and_a_name_clash_is_refused() -> None:
    registry = ConnectorRegistry(group=None)
    assert registry.names() == []
    assert registry.register(ApiConnector) is ApiConnector
    assert registry.get("test_api") is ApiConnector
    assert registry.register(ApiConnector) is ApiConnector  # idempotent

    class Impostor(ApiConnector):
        pass

    with pytest.raises(Conflict):
        registry.register(Impostor)


def test_a_connector_without_a_semver_version_is_refused() -> None:
    class Unversioned(ApiConnector):
        name = "unversioned"
        version = "latest"

    with pytest.raises(InvalidInput) as caught:
        ConnectorRegistry(group=None).register(Unversioned)
    assert caught.value.fields["field"] == "connector.version"


def test_a_connector_without_window_support_says_so() -> None:
    with pytest.raises(InvalidInput) as caught:
        ApiConnector().window_state({}, "orders", "2026-01-01")
    assert caught.value.detail == "window: the test_api connector cannot read a window of a stream"
    assert ApiConnector.repeats_boundary_records is False


def test_a_column_converts_to_json_values_as_each_value_would() -> None:
    columns = [
        [1, None, "x", 2.5, True],
        [dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC), None],
        [dt.date(2026, 1, 2), dt.time(3, 4)],
        [Decimal("1.50"), None, Decimal("1E-7")],
        [b"\x00\x01", dt.timedelta(seconds=90), [Decimal("2")], {"k": dt.date(2026, 1, 1)}],
    ]
    for values in columns:
        assert jsonable_column(values) == [jsonable(v) for v in values]
    assert jsonable_column(columns[1]) == ["2026-01-02T03:04:05+00:00", None]
