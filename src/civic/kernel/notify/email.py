"""E-mail through an SMTP server, with a text and an HTML part."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib

from civic.kernel.notify.channels import GiveUp, Outgoing, Sent, TryAgain


class SmtpChannel:
    """Sends e-mail through one SMTP server (plain, STARTTLS or TLS)."""

    transport = "smtp"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        username: str | None = None,
        password: str | None = None,
        tls: str = "starttls",
        timeout: float = 10,
    ) -> None:
        """Send through host:port as sender, logging in when username is given."""
        self.host = host
        self.port = port
        self.sender = sender
        self.username = username
        self.password = password
        self.tls = tls
        self.timeout = timeout

    def message(self, outgoing: Outgoing) -> EmailMessage:
        """Build the e-mail of one delivery."""
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = outgoing.address
        mail["Subject"] = outgoing.title
        domain = self.sender.rsplit("@", 1)[-1].strip(">") or "civic.invalid"
        mail["Message-ID"] = make_msgid(idstring=outgoing.delivery_id, domain=domain)
        # Lets a receiving system spot a repeated send after a crash.
        mail["X-Civic-Idempotency-Key"] = outgoing.idempotency_key
        if outgoing.urgency == "emergency":
            mail["Importance"] = "high"
            mail["X-Priority"] = "1"
        mail.set_content(outgoing.body)
        if outgoing.html:
            mail.add_alternative(outgoing.html, subtype="html")
        return mail

    async def send(self, outgoing: Outgoing) -> Sent:
        """Send the e-mail; a 5xx refusal gives up, a 4xx or a lost connection retries."""
        try:
            errors, reply = await aiosmtplib.send(
                self.message(outgoing),
                hostname=self.host,
                port=self.port,
                username=self.username,
                password=self.password,
                use_tls=self.tls == "tls",
                start_tls=self.tls == "starttls",
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [error.code for error in exc.recipients]
            detail = f"SMTP refused the recipient: {exc}"
            if codes and all(code < 500 for code in codes):
                raise TryAgain(detail, status_code=codes[0]) from exc
            raise GiveUp(detail, status_code=codes[0] if codes else None) from exc
        except aiosmtplib.SMTPResponseException as exc:
            detail = f"SMTP answered {exc.code}: {exc.message}"
            if exc.code >= 500:
                raise GiveUp(detail, status_code=exc.code) from exc
            raise TryAgain(detail, status_code=exc.code) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise TryAgain(f"SMTP server unreachable: {exc!r}") from exc
        return Sent(status_code=250, detail=reply[:200])

    async def close(self) -> None:
        """Nothing to release: each send has its own connection."""
