"""Channels load through the `keel.notifiers` entry points, built-ins too; a broken plugin stays contained."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from keel.kernel.errors import Conflict, InvalidInput, NotFound
from keel.kernel.settings import Settings
from keel.notify import ChannelRegistry, ChannelUnavailable, build_notifier
from keel.notify.email import EmailChannel
from keel.notify.webhook import WebhookChannel


def install_plugin(root: Path, entries: str) -> None:
    """Install a distribution the way pip would (a dist-info with entry_points.txt) on sys.path."""
    dist = root / "keel_test_notifier-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: keel-test-notifier\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[keel.notifiers]\n{entries}\n")


class SmsChannel:
    name = "sms"

    @classmethod
    def from_settings(cls, settings: Settings) -> SmsChannel:
        return cls()

    def can_reach(self, recipient) -> bool:
        return False

    def send(self, message, recipient) -> None:
        return None


def test_the_built_in_channels_register_through_the_entry_points() -> None:
    registry = ChannelRegistry()
    assert (registry.names(), registry.broken) == (["email", "webhook"], {})
    assert (registry.get("email"), registry.get("webhook")) == (EmailChannel, WebhookChannel)


def test_a_broken_plugin_is_reported_by_name_and_the_others_still_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_plugin(
        tmp_path,
        "broken = keel_no_such_notifier_for_tests:Channel\n"
        "misnamed = keel.notify.webhook:WebhookChannel\n"
        "notachannel = keel.kernel.errors:KeelError",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = ChannelRegistry()
    assert registry.names() == ["email", "webhook"]
    assert registry.broken == {
        "broken": "ModuleNotFoundError: No module named 'keel_no_such_notifier_for_tests'",
        "misnamed": "InvalidInput: name: entry point 'misnamed' loads channel 'webhook'",
        "notachannel": "InvalidInput: channel.name: KeelError has no name",
    }
    with pytest.raises(ChannelUnavailable) as caught:
        registry.get("broken")
    assert caught.value.fields == {"channel": "broken"}
    assert "keel_no_such_notifier_for_tests" not in sys.modules


def test_a_channel_registered_by_hand_is_built_and_a_name_clash_is_refused() -> None:
    registry = ChannelRegistry(group=None)
    assert registry.register(SmsChannel) is SmsChannel
    assert registry.register(SmsChannel) is SmsChannel  # idempotent
    assert [c.name for c in registry.build(Settings())] == ["sms"]

    class Impostor(SmsChannel):
        pass

    with pytest.raises(Conflict):
        registry.register(Impostor)
    with pytest.raises(NotFound):
        registry.get("pager")


def test_a_plugin_that_fails_to_build_is_marked_broken_and_the_others_are_built() -> None:
    class Flaky(SmsChannel):
        name = "flaky"

        @classmethod
        def from_settings(cls, settings: Settings) -> Flaky:
            raise RuntimeError("no modem")

    registry = ChannelRegistry(group=None)
    registry.register(Flaky)
    registry.register(SmsChannel)
    assert [c.name for c in registry.build(Settings())] == ["sms"]
    assert (registry.names(), registry.broken) == (["sms"], {"flaky": "RuntimeError: no modem"})


def test_email_is_off_without_an_smtp_host_and_webhooks_are_always_on() -> None:
    assert build_notifier(Settings()).default_order == ("webhook",)
    assert build_notifier(Settings(smtp_host="mail.example.com")).default_order == ("email", "webhook")


def test_the_notifier_tries_the_built_ins_first_then_plugins_by_name() -> None:
    registry = ChannelRegistry()
    registry.register(SmsChannel)
    notifier = build_notifier(Settings(smtp_host="mail.example.com"), registry)
    assert notifier.default_order == ("email", "webhook", "sms")


def test_smtp_settings_reach_the_email_channel_and_the_password_stays_out_of_its_repr() -> None:
    settings = Settings(
        smtp_host="mail.example.com",
        smtp_port=587,
        smtp_sender="alerts@example.com",
        smtp_starttls=True,
        smtp_username="keel",
        smtp_password="pa55-w0rd",
        smtp_timeout_seconds=3,
    )
    channel = EmailChannel.from_settings(settings)
    assert channel == EmailChannel(
        host="mail.example.com",
        port=587,
        sender="alerts@example.com",
        starttls=True,
        username="keel",
        password="pa55-w0rd",
        timeout=3,
    )
    assert "pa55-w0rd" not in repr(channel)
    assert "pa55-w0rd" not in repr(settings)


def test_starttls_and_ssl_together_are_refused_at_build_naming_the_setting() -> None:
    with pytest.raises(InvalidInput) as caught:
        build_notifier(Settings(smtp_host="mail.example.com", smtp_starttls=True, smtp_ssl=True))
    assert caught.value.fields == {"field": "smtp_ssl"}


def test_a_username_without_a_password_is_refused_naming_the_setting() -> None:
    with pytest.raises(InvalidInput) as caught:
        build_notifier(Settings(smtp_host="mail.example.com", smtp_username="keel"))
    assert caught.value.fields == {"field": "smtp_password"}
