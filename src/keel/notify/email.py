"""The e-mail channel: plain-text mail through an SMTP server, with the standard library.

The password is held out of ``repr`` and never appears in a log line or in a
``DeliveryFailed``; errors name the server (``host:port``) and the reason.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime, formataddr

from keel.kernel.clock import utcnow
from keel.kernel.errors import InvalidInput
from keel.kernel.settings import Settings
from keel.notify.errors import DeliveryFailed
from keel.notify.model import Message, Recipient


@dataclass(frozen=True)
class EmailChannel:
    """Sends each message as one e-mail to the recipient's address."""

    host: str
    port: int = 25
    sender: str = "keel@localhost"
    starttls: bool = False
    use_ssl: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 10.0
    name = "email"

    def __post_init__(self) -> None:
        if self.starttls and self.use_ssl:
            raise InvalidInput("smtp_ssl", "cannot be combined with smtp_starttls (choose one)")
        if self.username and self.password is None:
            raise InvalidInput("smtp_password", "is required when smtp_username is set")

    @classmethod
    def from_settings(cls, settings: Settings) -> EmailChannel | None:
        if not settings.smtp_host:
            return None
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_sender,
            starttls=settings.smtp_starttls,
            use_ssl=settings.smtp_ssl,
            username=settings.smtp_username,
            password=settings.smtp_password,
            timeout=settings.smtp_timeout_seconds,
        )

    def can_reach(self, recipient: Recipient) -> bool:
        return bool(recipient.email)

    def send(self, message: Message, recipient: Recipient) -> None:
        mail = self.compose(message, recipient)
        try:
            with self._connect() as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(mail)
        except (smtplib.SMTPException, OSError) as exc:
            reason, why = _explain(exc)
            raise DeliveryFailed(self.name, reason, f"SMTP server {self.host}:{self.port}: {why}") from exc

    def compose(self, message: Message, recipient: Recipient) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = formataddr((recipient.name, recipient.email or ""))
        mail["Subject"] = message.subject
        mail["Date"] = format_datetime(utcnow())
        mail["Message-ID"] = f"<{message.id}.{recipient.id}@keel>"
        mail["X-Keel-Event"] = message.event
        mail["X-Keel-Message-Id"] = message.id
        mail.set_content(message.body)
        return mail

    def _connect(self) -> smtplib.SMTP:
        if self.use_ssl:
            context = ssl.create_default_context()
            return smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        return smtplib.SMTP(self.host, self.port, timeout=self.timeout)


def _explain(exc: BaseException) -> tuple[str, str]:
    """A machine reason and a sentence; server replies are kept, our credentials never were in them."""
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return "auth", f"login refused ({_reply(exc)})"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        replies = "; ".join(f"{code} {_text(text)}" for code, text in exc.recipients.values())
        return "rejected", f"recipient refused ({replies})"
    if isinstance(exc, smtplib.SMTPResponseException):
        return "rejected", f"refused ({_reply(exc)})"
    if isinstance(exc, smtplib.SMTPServerDisconnected) and isinstance(exc.__context__, TimeoutError):
        return "timeout", "no answer in time"
    if isinstance(exc, smtplib.SMTPException):  # disconnected, no STARTTLS offered, ...
        return "error", f"{type(exc).__name__}: {exc}"
    if isinstance(exc, TimeoutError):
        return "timeout", "no answer in time"
    if isinstance(exc, ConnectionRefusedError):
        return "unreachable", "connection refused"
    return "unreachable", f"{type(exc).__name__}: {exc}"


def _reply(exc: smtplib.SMTPResponseException) -> str:
    return f"{exc.smtp_code} {_text(exc.smtp_error)}"


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
