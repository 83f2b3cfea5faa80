"""Fallback, skip and record rules of the notifier, with fake channels (pure logic, no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from keel.kernel.clock import set_clock
from keel.notify import Delivery, DeliveryFailed, Message, Notifier, Recipient

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
MESSAGE = Message(
    subject="Run failed", body="Run RUN-1 failed.", event="run.failed", facts={"run": "RUN-1"}, id="MSG-1"
)


@pytest.fixture(autouse=True)
def frozen_clock():
    set_clock(lambda: NOW)
    yield
    set_clock(None)


class FakeChannel:
    """Reaches recipients whose id is in ``reaches``; fails with ``fails`` or raises ``crash`` when set."""

    def __init__(self, name: str, *, reaches: set[str], fails: str | None = None, crash=None, attempts=None):
        self.name = name
        self.reaches = reaches
        self.fails = fails
        self.crash = crash
        self.attempts = attempts
        self.sent: list[tuple[str, str]] = []

    def can_reach(self, recipient: Recipient) -> bool:
        return recipient.id in self.reaches

    def send(self, message: Message, recipient: Recipient) -> int | None:
        if self.crash:
            raise self.crash
        if self.fails:
            raise DeliveryFailed(self.name, "unreachable", self.fails, attempts=2)
        self.sent.append((message.id, recipient.id))
        return self.attempts


def delivery(
    recipient: str, channel: str | None, status: str, detail: str = "", attempts: int = 1
) -> Delivery:
    return Delivery("MSG-1", recipient, channel, status, detail, NOW, attempts)  # type: ignore[arg-type]


def test_the_first_channel_that_works_is_the_only_one_used() -> None:
    email, webhook = FakeChannel("email", reaches={"u1"}), FakeChannel("webhook", reaches={"u1"})
    deliveries = Notifier([email, webhook]).deliver(MESSAGE, [Recipient("u1", "Ann")])
    assert deliveries == [delivery("u1", "email", "sent")]
    assert (email.sent, webhook.sent) == ([("MSG-1", "u1")], [])


def test_a_failed_first_channel_and_the_fallback_that_succeeds_are_both_recorded() -> None:
    email = FakeChannel("email", reaches={"u1"}, fails="SMTP server mx:25: connection refused")
    webhook = FakeChannel("webhook", reaches={"u1"}, attempts=2)
    deliveries = Notifier([email, webhook]).deliver(MESSAGE, [Recipient("u1", "Ann")])
    assert deliveries == [
        delivery("u1", "email", "failed", "SMTP server mx:25: connection refused", attempts=2),
        delivery("u1", "webhook", "sent", attempts=2),
    ]


def test_the_recipients_preference_replaces_the_default_order() -> None:
    email, webhook = FakeChannel("email", reaches={"u1"}), FakeChannel("webhook", reaches={"u1"})
    recipient = Recipient("u1", "Ann", channels=("webhook", "email"))
    assert Notifier([email, webhook]).deliver(MESSAGE, [recipient]) == [delivery("u1", "webhook", "sent")]


def test_channels_that_cannot_reach_a_recipient_are_passed_over_without_a_record() -> None:
    email, webhook = FakeChannel("email", reaches=set()), FakeChannel("webhook", reaches={"u1"})
    assert Notifier([email, webhook]).deliver(MESSAGE, [Recipient("u1", "Ann")]) == [
        delivery("u1", "webhook", "sent")
    ]


def test_a_recipient_no_channel_can_reach_gets_one_skipped_record_saying_why() -> None:
    notifier = Notifier([FakeChannel("webhook", reaches=set())])
    recipient = Recipient("u1", "Ann", channels=("email", "webhook"))
    assert notifier.deliver(MESSAGE, [recipient]) == [
        delivery(
            "u1",
            None,
            "skipped",
            "no channel can reach this recipient: email is not configured; webhook has no usable address",
            attempts=0,
        )
    ]


def test_a_notifier_without_channels_skips_everyone() -> None:
    assert Notifier([]).deliver(MESSAGE, [Recipient("u1", "Ann")]) == [
        delivery("u1", None, "skipped", "no channel can reach this recipient: no channels configured", 0)
    ]


def test_when_every_channel_fails_each_failure_is_recorded_and_nothing_is_raised() -> None:
    email = FakeChannel("email", reaches={"u1"}, fails="e-mail down")
    webhook = FakeChannel("webhook", reaches={"u1"}, fails="webhook down")
    assert Notifier([email, webhook]).deliver(MESSAGE, [Recipient("u1", "Ann")]) == [
        delivery("u1", "email", "failed", "e-mail down", attempts=2),
        delivery("u1", "webhook", "failed", "webhook down", attempts=2),
    ]


def test_a_crashing_channel_is_recorded_as_failed_without_its_message_and_the_fallback_still_runs() -> None:
    email = FakeChannel("email", reaches={"u1"}, crash=RuntimeError("password=hunter2"))
    webhook = FakeChannel("webhook", reaches={"u1"})
    assert Notifier([email, webhook]).deliver(MESSAGE, [Recipient("u1", "Ann")]) == [
        delivery("u1", "email", "failed", "channel error: RuntimeError"),
        delivery("u1", "webhook", "sent"),
    ]


def test_each_recipient_is_routed_on_its_own() -> None:
    email = FakeChannel("email", reaches={"u1"}, fails="e-mail down")
    webhook = FakeChannel("webhook", reaches={"u1", "u2"})
    recipients = [Recipient("u1", "Ann"), Recipient("u2", "Bob"), Recipient("u3", "Cy")]
    assert Notifier([email, webhook]).deliver(MESSAGE, recipients) == [
        delivery("u1", "email", "failed", "e-mail down", attempts=2),
        delivery("u1", "webhook", "sent"),
        delivery("u2", "webhook", "sent"),
        delivery(
            "u3",
            None,
            "skipped",
            "no channel can reach this recipient: email has no usable address; webhook has no usable address",
            attempts=0,
        ),
    ]
    assert webhook.sent == [("MSG-1", "u1"), ("MSG-1", "u2")]


def test_message_facts_must_be_flat_scalars() -> None:
    from keel.kernel.errors import InvalidInput

    with pytest.raises(InvalidInput) as caught:
        Message("s", "b", "e", facts={"rows": [1, 2]})  # type: ignore[dict-item]
    assert caught.value.fields == {"field": "facts"}
    assert Message("s", "b", "e").id.startswith("MSG-")
