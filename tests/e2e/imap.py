"""A real IMAP server for end-to-end tests: Debian's Dovecot on loopback with a
throwaway config, one throwaway user (passwd-file) and its mail in a temp dir,
run in the foreground by the test session and stopped with it; plus imaplib
readers for what a mail client on another device would see."""

import email
import email.policy
import imaplib
import os
import pwd
import shutil
import subprocess
import tempfile
import textwrap
from pathlib import Path
from typing import List

from tests.e2e.thunderbird import free_port, wait_until

DOVECOT = "/usr/sbin/dovecot"
USER = "sender"
PASSWORD = "throwaway-imap-password"


class Dovecot:
    """dovecot -F with its own config, base_dir and mail root; never the system one."""

    def __init__(self):
        self.port = free_port()
        # Dovecot's auth and mail processes drop to unprivileged users when the
        # session runs as root, and pytest's temp dirs are root-only: so the
        # server gets a temp dir of its own, readable by them.
        root = Path(tempfile.mkdtemp(prefix="mailtracker-imap-"))
        root.chmod(0o755)
        self.root = root
        self.run_dir = root / "run"
        self.run_dir.mkdir()
        self.mail_dir = root / "mail"
        self.mail_dir.mkdir()
        if os.geteuid() == 0:
            mail_user = pwd.getpwnam("nobody")
            login_user, internal_user = "dovenull", "dovecot"
        else:
            mail_user = pwd.getpwuid(os.getuid())
            login_user = internal_user = mail_user.pw_name
        # "Readonly" exists and can be read but not written (ACL "lr"): the server refuses
        # every APPEND to it, as a full or read-only mailbox would.
        for sub in ("cur", "new", "tmp"):
            (self.mail_dir / USER / ".Readonly" / sub).mkdir(parents=True)
        (self.mail_dir / USER / "subscriptions").write_text("Readonly\n")
        for path in [self.mail_dir, *self.mail_dir.rglob("*")]:
            os.chown(path, mail_user.pw_uid, mail_user.pw_gid)
        acl = root / "acl"
        acl.write_text(f"Readonly owner lr\nReadonly user={USER} lr\n")
        acl.chmod(0o644)
        passwd = root / "passwd"
        passwd.write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")
        passwd.chmod(0o644)
        self.log_path = root / "dovecot.log"
        self.config = root / "dovecot.conf"
        self.config.write_text(textwrap.dedent(f"""\
            base_dir = {self.run_dir}
            state_dir = {root / "state"}
            log_path = {self.log_path}
            protocols = imap
            listen = 127.0.0.1
            ssl = no
            disable_plaintext_auth = no
            auth_mechanisms = plain login
            default_login_user = {login_user}
            default_internal_user = {internal_user}
            first_valid_uid = {mail_user.pw_uid}
            last_valid_uid = {mail_user.pw_uid}
            mail_location = maildir:{self.mail_dir}/%u
            # One log line per message saved, so a test can tell what ever reached the server.
            mail_plugins = $mail_plugins mail_log notify acl
            plugin {{
              mail_log_events = save copy expunge
              mail_log_fields = uid box msgid
              acl = vfile:{acl}
            }}
            protocol imap {{
              mail_plugins = $mail_plugins imap_acl
            }}
            passdb {{
              driver = passwd-file
              args = {passwd}
            }}
            userdb {{
              driver = static
              args = uid={mail_user.pw_uid} gid={mail_user.pw_gid} home={self.mail_dir}/%u
            }}
            namespace inbox {{
              inbox = yes
              separator = /
              mailbox Sent {{
                auto = subscribe
                special_use = \\Sent
              }}
              mailbox Trash {{
                auto = subscribe
                special_use = \\Trash
              }}
            }}
            service imap-login {{
              inet_listener imap {{
                address = 127.0.0.1
                port = {self.port}
              }}
              inet_listener imaps {{
                port = 0
              }}
            }}
            service stats {{
              unix_listener stats-writer {{
                mode = 0666
              }}
            }}
            """))
        (root / "state").mkdir()
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", str(self.config)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_until(self._answers, 20, "Dovecot to accept an IMAP login")

    def _answers(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"dovecot exited {self.proc.returncode}: {self.proc.stderr.read().decode()}\n"
                                 f"{self.log()}")
        try:
            with self.connect():
                return True
        except OSError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def saved(self, message_id: str) -> List[str]:
        """The mail_log lines of every save (APPEND, copy) of message_id, ever."""
        return [line for line in self.log().splitlines()
                if "save:" in line.lower() or "copy:" in line.lower()
                if f"msgid={message_id}" in line]

    def connect(self) -> imaplib.IMAP4:
        client = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        client.login(USER, PASSWORD)
        return client

    def messages(self, mailbox: str) -> List[email.message.Message]:
        """Every message in mailbox not flagged \\Deleted, parsed from its full source."""
        with self.connect() as client:
            status, _ = client.select(f'"{mailbox}"', readonly=True)
            assert status == "OK", f"no mailbox {mailbox}"
            _, data = client.search(None, "UNDELETED")
            found = []
            for number in data[0].split():
                _, parts = client.fetch(number, "(BODY.PEEK[])")
                found.append(email.message_from_bytes(parts[0][1], policy=email.policy.compat32))
            return found

    def append(self, mailbox: str, source: bytes) -> None:
        with self.connect() as client:
            status, _ = client.append(f'"{mailbox}"', None, None, source)
            assert status == "OK"

    def pause(self) -> None:
        """Stop every Dovecot process (SIGSTOP) so a client's command hangs mid-way."""
        for pid in self._pids():
            os.kill(pid, 19)

    def resume(self) -> None:
        for pid in self._pids():
            os.kill(pid, 18)

    def _pids(self) -> List[int]:
        # The master and the children it forked: the processes whose parent chain reaches it.
        out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout
        children = {}
        for line in out.splitlines():
            pid, ppid = (int(x) for x in line.split())
            children.setdefault(ppid, []).append(pid)
        pids, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            todo.extend(children.get(pid, []))
        return pids

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc.stderr.close()
        shutil.rmtree(self.root, ignore_errors=True)

