"""The deployment template (story 00a): defaults, errors naming their field, fit to the installation."""

import pytest

from keel.kernel.errors import InvalidInput
from keel.platform.errors import TemplateMismatch
from keel.platform.template import DEFAULT_TEMPLATE, check_fits, parse_template


def test_the_default_template_provisions_every_part_with_the_documented_defaults():
    assert parse_template(DEFAULT_TEMPLATE).model_dump() == {
        "name": "keel-embedded",
        "version": "1",
        "control_plane": {"store": None},
        "data_plane": {"engine": "duckdb", "region": "local"},
        "shared_services": {
            "secrets": "envelope-aes-256-gcm",
            "evidence": "merkle-ed25519",
            "monitoring": "prometheus",
        },
        "iam": {"required_roles": ["PO", "PA", "SA", "CO", "AU"], "network": "loopback"},
    }


@pytest.mark.parametrize(
    ("template", "field"),
    [
        ({"version": "1"}, "template.name"),
        ({"name": "", "version": "1"}, "template.name"),
        ({"name": "x"}, "template.version"),
        ({"name": "x", "version": "1", "extra": True}, "template.extra"),
        ({"name": "x", "version": "1", "data_plane": {"engine": "sqlite"}}, "template.data_plane.engine"),
        ({"name": "x", "version": "1", "iam": {"network": "internet"}}, "template.iam.network"),
        ({"name": "x", "version": "1", "control_plane": {"store": "mysql"}}, "template.control_plane.store"),
        (
            {"name": "x", "version": "1", "iam": {"required_roles": ["PA", "TA"]}},
            "template.iam.required_roles",
        ),
        ({"name": "x", "version": "1", "iam": {"required_roles": ["root"]}}, "template.iam.required_roles"),
        ("not a mapping", "template"),
    ],
)
def test_a_template_error_names_the_field_it_is_in(template, field):
    with pytest.raises(InvalidInput) as raised:
        parse_template(template)
    assert raised.value.fields["field"] == field
    assert raised.value.detail.startswith(f"{field}: ")


def test_a_required_role_must_be_a_provider_persona():
    with pytest.raises(InvalidInput, match="'TA' is not a provider role"):
        parse_template({"name": "x", "version": "1", "iam": {"required_roles": ["TA"]}})


@pytest.mark.parametrize(
    ("store", "dialect"),
    [(None, "sqlite"), (None, "postgresql"), ("embedded", "sqlite"), ("postgresql", "postgresql")],
)
def test_a_template_fits_the_store_it_names_or_any_store_when_it_names_none(store, dialect):
    template = parse_template({"name": "x", "version": "1", "control_plane": {"store": store}})
    assert check_fits(template, store_dialect=dialect) is None


@pytest.mark.parametrize(
    ("store", "dialect", "running"),
    [("postgresql", "sqlite", "embedded"), ("embedded", "postgresql", "postgresql")],
)
def test_a_template_naming_another_store_does_not_fit_and_names_the_field(store, dialect, running):
    template = parse_template({"name": "x", "version": "1", "control_plane": {"store": store}})
    with pytest.raises(TemplateMismatch) as raised:
        check_fits(template, store_dialect=dialect)
    assert raised.value.fields == {"field": "template.control_plane.store"}
    assert raised.value.detail == (
        f"template.control_plane.store: the template deploys a '{store}' control plane "
        f"but this installation runs '{running}'"
    )
    assert raised.value.code == "invalid_input"  # rendered as 422, like any bad input
