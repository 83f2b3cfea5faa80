"""The e-mail and webhook channels against real servers on loopback: aiosmtpd and http.server.

Each test starts its own servers on free ports, so tests run in any order and
in parallel. Only the webhook's ``sleep`` is replaced (by a recorder), so its
back-off is observed without waiting.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from keel.kernel.clock import set_clock
from keel.kernel.settings import Settings
from keel.notify import Delivery, Message, Notifier, Recipient, build_notifier
from keel.notify.email import EmailChannel
from keel.notify.webhook import WebhookChannel

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
SECRET = "whsec-7d1f0c2a"
PASSWORD = "smtp-pa55-9e4b"
MESSAGE = Message(
    subject="Ingestion run failed",
    body="Run RUN-20260301-AB12CD34 of connector crm failed after 3 attempts.",
    event="ingestion.run_failed",
    facts={"tenant": "acme", "run": "RUN-20260301-AB12CD34", "attempts": 3},
    id="MSG-20260301-0000TEST",
)


@pytest.fixture(autouse=True)
def frozen_clock():
    set_clock(lambda: NOW)
    yield
    set_clock(None)


# --- a real SMTP server -------------------------------------------------------------------------------


class _Inbox:
    """aiosmtpd handler keeping every accepted envelope, parsed."""

    def __init__(self) -> None:
        self.mails: list[tuple[str, list[str], email.message.EmailMessage]] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.mails.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 Message accepted"


class _LoopbackController(Controller):
    """Binds port 0 and learns the port the OS chose before aiosmtpd's readiness probe connects."""

    def _trigger_server(self) -> None:
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@contextmanager
def smtp_server(*, password: str | None = None) -> Iterator[tuple[int, _Inbox]]:
    inbox = _Inbox()
    extra = {}
    if password is not None:

        def authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
            ok = isinstance(auth_data, LoginPassword) and auth_data.password == password.encode()
            return AuthResult(success=ok, handled=False)  # False: aiosmtpd answers 535

        # Loopback only, so plain-text AUTH without TLS is acceptable for the test.
        extra = {"authenticator": authenticator, "auth_require_tls": False, "auth_required": True}
    controller = _LoopbackController(inbox, hostname="127.0.0.1", port=0, ready_timeout=5, **extra)
    controller.start()
    try:
        yield controller.port, inbox
    finally:
        controller.stop()


# --- a real HTTP receiver -----------------------------------------------------------------------------


@dataclass
class Receiver:
    """Answers each POST with the next of ``statuses`` (the last one repeats) and keeps every request."""

    statuses: list[int]
    hold: threading.Event | None = None  # when set, the receiver waits on it before answering
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""


@contextmanager
def http_receiver(*statuses: int, hold: threading.Event | None = None) -> Iterator[Receiver]:
    receiver = Receiver(list(statuses) or [200], hold)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            receiver.requests.append((self.path, dict(self.headers), body))
            if receiver.hold is not None:
                receiver.hold.wait(5)
            status = receiver.statuses.pop(0) if len(receiver.statuses) > 1 else receiver.statuses[0]
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield receiver
    finally:
        if hold is not None:
            hold.set()
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Sleeps(list):
    """Records the delays the webhook channel asks for instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def delivery(
    recipient: str, channel: str | None, status: str, detail: str = "", attempts: int = 1
) -> Delivery:
    return Delivery(MESSAGE.id, recipient, channel, status, detail, NOW, attempts)  # type: ignore[arg-type]


# --- the tests ----------------------------------------------------------------------------------------


def test_an_email_reaches_a_real_smtp_server_with_its_headers_and_body() -> None:
    with smtp_server() as (port, inbox):
        channel = EmailChannel(host="127.0.0.1", port=port, sender="alerts@keel.test", timeout=5)
        ann = Recipient("USR-1", "Ann Operator", email="ann@acme.test")
        deliveries = Notifier([channel]).deliver(MESSAGE, [ann])

    assert deliveries == [delivery("USR-1", "email", "sent")]
    [(mail_from, rcpt_tos, mail)] = inbox.mails
    assert (mail_from, rcpt_tos) == ("alerts@keel.test", ["ann@acme.test"])
    assert {
        name: str(mail[name]) for name in ("From", "To", "Subject", "X-Keel-Event", "X-Keel-Message-Id")
    } == {
        "From": "alerts@keel.test",
        "To": "Ann Operator <ann@acme.test>",
        "Subject": "Ingestion run failed",
        "X-Keel-Event": "ingestion.run_failed",
        "X-Keel-Message-Id": MESSAGE.id,
    }
    assert mail["Message-ID"] == f"<{MESSAGE.id}.USR-1@keel>"
    assert mail["Date"].datetime == NOW
    assert mail.get_content().replace("\r\n", "\n") == MESSAGE.body + "\n"


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_smtp_login_uses_the_password_and_a_refused_login_never_shows_it(caplog) -> None:
    caplog.set_level(logging.DEBUG)
    ann = Recipient("USR-1", "Ann", email="ann@acme.test")
    with smtp_server(password=PASSWORD) as (port, inbox):
        good = EmailChannel(host="127.0.0.1", port=port, username="keel", password=PASSWORD, timeout=5)
        bad = EmailChannel(
            host="127.0.0.1", port=port, username="keel", password="wrong-" + PASSWORD, timeout=5
        )
        deliveries = Notifier([good]).deliver(MESSAGE, [ann]) + Notifier([bad]).deliver(MESSAGE, [ann])

    assert len(inbox.mails) == 1
    assert deliveries == [
        delivery("USR-1", "email", "sent"),
        delivery(
            "USR-1",
            "email",
            "failed",
            f"SMTP server 127.0.0.1:{port}: login refused (535 5.7.8 Authentication credentials invalid)",
        ),
    ]
    assert PASSWORD not in caplog.text
    assert PASSWORD not in repr(deliveries)


def test_a_webhook_posts_the_message_as_json_signed_with_hmac() -> None:
    with http_receiver(204) as receiver:
        channel = WebhookChannel(signing_secret=SECRET, timeout=5)
        bob = Recipient("USR-2", "Bob", webhook_url=receiver.url + "/hooks/keel?token=abc")
        deliveries = Notifier([channel]).deliver(MESSAGE, [bob])

    assert deliveries == [delivery("USR-2", "webhook", "sent")]
    [(path, headers, body)] = receiver.requests
    assert path == "/hooks/keel?token=abc"
    assert (headers["Content-Type"], headers["X-Keel-Event"]) == ("application/json", "ingestion.run_failed")
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Keel-Signature"], expected)
    assert json.loads(body) == {
        "message_id": MESSAGE.id,
        "event": "ingestion.run_failed",
        "subject": "Ingestion run failed",
        "body": MESSAGE.body,
        "facts": {"tenant": "acme", "run": "RUN-20260301-AB12CD34", "attempts": 3},
        "recipient_id": "USR-2",
    }


def test_an_unsigned_webhook_has_no_signature_header() -> None:
    with http_receiver() as receiver:
        bob = Recipient("USR-2", "Bob", webhook_url=receiver.url)
        assert Notifier([WebhookChannel(timeout=5)]).deliver(MESSAGE, [bob]) == [
            delivery("USR-2", "webhook", "sent")
        ]
    [(_, headers, _)] = receiver.requests
    assert "X-Keel-Signature" not in headers


def test_a_webhook_answering_500_is_retried_then_fails_and_email_delivers_instead() -> None:
    sleeps = Sleeps()
    with smtp_server() as (port, inbox), http_receiver(500) as receiver:
        notifier = Notifier(
            [
                WebhookChannel(signing_secret=SECRET, timeout=5, sleep=sleeps),
                EmailChannel(host="127.0.0.1", port=port, timeout=5),
            ]
        )
        carol = Recipient(
            "USR-3", "Carol", email="carol@acme.test", webhook_url=receiver.url + "/secret-path"
        )
        deliveries = notifier.deliver(MESSAGE, [carol])

    assert deliveries == [
        delivery("USR-3", "webhook", "failed", f"webhook {receiver.url}: 500 Internal Server Error", 2),
        delivery("USR-3", "email", "sent"),
    ]
    assert (len(receiver.requests), sleeps) == (2, [0.5])
    assert [rcpt for _, rcpt, _ in inbox.mails] == [["carol@acme.test"]]


def test_a_webhook_that_recovers_on_the_retry_is_sent_in_two_attempts() -> None:
    sleeps = Sleeps()
    with http_receiver(503, 200) as receiver:
        bob = Recipient("USR-2", "Bob", webhook_url=receiver.url)
        deliveries = Notifier([WebhookChannel(timeout=5, sleep=sleeps)]).deliver(MESSAGE, [bob])
    assert deliveries == [delivery("USR-2", "webhook", "sent", attempts=2)]
    assert sleeps == [0.5]
    assert receiver.requests[0][2] == receiver.requests[1][2]  # the same body, so receivers can de-duplicate


def test_a_webhook_refusing_the_request_is_not_retried() -> None:
    sleeps = Sleeps()
    with http_receiver(404) as receiver:
        bob = Recipient("USR-2", "Bob", webhook_url=receiver.url + "/gone")
        deliveries = Notifier([WebhookChannel(timeout=5, sleep=sleeps)]).deliver(MESSAGE, [bob])
    assert deliveries == [delivery("USR-2", "webhook", "failed", f"webhook {receiver.url}: 404 Not Found")]
    assert (len(receiver.requests), sleeps) == (1, [])


def test_a_webhook_that_does_not_answer_in_time_fails_after_its_bounded_attempts() -> None:
    sleeps = Sleeps()
    with http_receiver(200, hold=threading.Event()) as receiver:
        bob = Recipient("USR-2", "Bob", webhook_url=receiver.url)
        deliveries = Notifier([WebhookChannel(timeout=0.2, sleep=sleeps)]).deliver(MESSAGE, [bob])
    assert deliveries == [
        delivery("USR-2", "webhook", "failed", f"webhook {receiver.url}: no answer in time", 2)
    ]
    assert sleeps == [0.5]


def test_a_closed_smtp_port_fails_and_the_webhook_fallback_succeeds() -> None:
    port = closed_port()
    with http_receiver() as receiver:
        settings = Settings(
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_timeout_seconds=2,
            webhook_signing_secret=SECRET,
            webhook_timeout_seconds=2,
        )
        dave = Recipient("USR-4", "Dave", email="dave@acme.test", webhook_url=receiver.url)
        deliveries = build_notifier(settings).deliver(MESSAGE, [dave])

    assert deliveries == [
        delivery("USR-4", "email", "failed", f"SMTP server 127.0.0.1:{port}: connection refused"),
        delivery("USR-4", "webhook", "sent"),
    ]
    [(_, headers, body)] = receiver.requests
    assert (
        headers["X-Keel-Signature"] == "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    )


def test_a_recipient_with_no_address_is_skipped_while_the_others_are_notified() -> None:
    with smtp_server() as (port, inbox):
        notifier = build_notifier(Settings(smtp_host="127.0.0.1", smtp_port=port, smtp_timeout_seconds=2))
        erin = Recipient("USR-5", "Erin", email="erin@acme.test")
        nobody = Recipient("USR-6", "No Address")
        deliveries = notifier.deliver(MESSAGE, [nobody, erin])

    assert deliveries == [
        delivery(
            "USR-6",
            None,
            "skipped",
            "no channel can reach this recipient: email has no usable address; webhook has no usable address",
            attempts=0,
        ),
        delivery("USR-5", "email", "sent"),
    ]
    assert [rcpt for _, rcpt, _ in inbox.mails] == [["erin@acme.test"]]
