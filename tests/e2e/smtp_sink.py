"""The SMTP sink's handler: aiosmtpd's Maildir handler, refusing the recipients listed in
``<maildir>.refuse`` (one address a line, read at every RCPT), so a test can make one
recipient's send fail and then succeed."""

from pathlib import Path

from aiosmtpd.handlers import Mailbox


class RefusingMailbox(Mailbox):
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        refuse = Path(f"{self.mail_dir}.refuse")
        if refuse.exists() and address.lower() in refuse.read_text().split():
            return "550 5.1.1 this recipient is refused by the test sink"
        envelope.rcpt_tos.append(address)
        return "250 OK"
