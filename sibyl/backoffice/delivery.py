"""Delivering an operator's reply to the citizen (issue 15): by e-mail through SIBYL_SMTP_*, or as a Telegram
message to the chat through the Bot API. Blocking (stdlib smtplib, httpx): callers run it in a worker
thread, never on the event loop.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import httpx

TELEGRAM_LIMIT = 4096  # characters per message (plain text)


class DeliveryError(RuntimeError):
    """The reply could not be delivered; `key` is the console's message (prompts/operator.*.toml) when it is a
    setup problem, else None and str(self) says what the server answered."""

    def __init__(self, reason: str, key: str | None = None) -> None:
        super().__init__(reason)
        self.key = key


def send_email(settings, to: str, subject: str, body: str) -> str:
    """Send a plain-text UTF-8 e-mail; returns its Message-ID."""
    if not settings.smtp_host:
        raise DeliveryError("SIBYL_SMTP_HOST is not set", "smtp_not_configured")
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = to
    message["Subject"] = " ".join(subject.split())[:300]
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=settings.smtp_from.rpartition("@")[2] or None)
    message.set_content(body)
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout) as smtp:
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_user:
                password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
                smtp.login(settings.smtp_user, password)
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}"[:300]) from exc
    return str(message["Message-ID"])


def _bot_root(base: str | None) -> str:
    root = (base or "https://api.telegram.org").strip().rstrip("/")
    return root[: -len("/bot")] if root.endswith("/bot") else root


def send_telegram(settings, chat_id: str, text: str) -> int:
    """Send plain text to the chat (split under Telegram's limit); returns how many messages were sent."""
    token = settings.telegram_bot_token.get_secret_value().strip() if settings.telegram_bot_token else ""
    if not token:
        raise DeliveryError("TELEGRAM_BOT_TOKEN is not set", "telegram_not_configured")
    parts = [text[i:i + TELEGRAM_LIMIT] for i in range(0, len(text), TELEGRAM_LIMIT)] or [""]
    url = f"{_bot_root(settings.telegram_api_base_url)}/bot{token}/sendMessage"
    try:
        with httpx.Client(timeout=20) as client:
            for part in parts:
                reply = client.post(url, json={"chat_id": chat_id, "text": part})
                data = reply.json() if reply.headers.get("content-type", "").startswith("application/json") else {}
                if reply.status_code != 200 or not data.get("ok"):
                    raise DeliveryError(f"Telegram: {data.get('description') or reply.status_code}"[:300])
    except httpx.HTTPError as exc:
        raise DeliveryError(f"Telegram: {type(exc).__name__}") from exc  # never the URL: it holds the token
    return len(parts)
