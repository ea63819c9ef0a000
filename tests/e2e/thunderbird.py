"""A real Thunderbird for end-to-end tests: a fresh profile with an account that
sends to a local SMTP sink, started headless with Marionette, and driven from its
chrome context the way a user's clicks would drive it."""

import json
import mailbox
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

REPO = Path(__file__).resolve().parents[2]
# The Thunderbird the e2e suite drives (Debian's, 153 ESR), and the older ESR it also runs
# the core path on (140: the add-on's strict_min_version), which `make system-packages`
# unpacks from Debian's archive into .cache/; each can be pointed elsewhere.
THUNDERBIRD = os.environ.get("MAILTRACKER_THUNDERBIRD", "/usr/lib/thunderbird/thunderbird")
OLDER_THUNDERBIRD = os.environ.get("MAILTRACKER_OLDER_THUNDERBIRD",
                                   str(REPO / ".cache" / "thunderbird-140" / "usr" / "lib" / "thunderbird" / "thunderbird"))
SENDER = "sender@example.org"
EXTENSION_ID = "mailtracker@mailtracker.invalid"

# First-run noise off, no network, no updates (see shared THUNDERBIRD.md).
QUIET_PREFS = {
    "mail.provider.enabled": False,
    "mailnews.start_page.enabled": False,
    "mail.shell.checkDefaultClient": False,
    "mail.rights.override": True,
    "mail.startup.enabledMailCheckOnce": True,
    "app.update.auto": False,
    "app.update.enabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "extensions.update.enabled": False,
    "services.settings.server": "http://127.0.0.1:9/",
    "network.connectivity-service.enabled": False,
    "network.captive-portal-service.enabled": False,
    "mail.spotlight.firstRunDone": True,
    "mail.winsearch.firstRunDone": True,
    "browser.dom.window.dump.enabled": True,
    "devtools.console.stdout.chrome": True,
    "extensions.logging.enabled": False,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def account_prefs(smtp_port: int) -> Dict[str, object]:
    """A never-polled POP3 account with Local Folders, sending via the local sink."""
    return {
        "mail.accountmanager.accounts": "account1,account2",
        "mail.accountmanager.defaultaccount": "account1",
        "mail.accountmanager.localfoldersserver": "server2",
        "mail.account.account1.identities": "id1",
        "mail.account.account1.server": "server1",
        "mail.account.account2.server": "server2",
        "mail.server.server1.type": "pop3",
        "mail.server.server1.hostname": "127.0.0.1",
        "mail.server.server1.port": 9,
        "mail.server.server1.userName": "sender",
        "mail.server.server1.name": SENDER,
        "mail.server.server1.login_at_startup": False,
        "mail.server.server1.check_new_mail": False,
        "mail.server.server1.deferred_to_account": "account2",
        "mail.server.server2.type": "none",
        "mail.server.server2.hostname": "Local Folders",
        "mail.server.server2.userName": "nobody",
        "mail.server.server2.name": "Local Folders",
        "mail.identity.id1.useremail": SENDER,
        "mail.identity.id1.fullName": "Sender",
        "mail.identity.id1.valid": True,
        "mail.identity.id1.compose_html": True,
        "mail.identity.id1.fcc": True,
        "mail.identity.id1.smtpServer": "smtp1",
        "mail.smtpservers": "smtp1",
        "mail.smtp.defaultserver": "smtp1",
        "mail.smtpserver.smtp1.hostname": "127.0.0.1",
        "mail.smtpserver.smtp1.port": smtp_port,
        "mail.smtpserver.smtp1.authMethod": 1,
        "mail.smtpserver.smtp1.try_ssl": 0,
        "mail.smtpserver.smtp1.username": "",
    }


def write_user_js(profile: Path, prefs: Dict[str, object]) -> None:
    lines = [f"user_pref({json.dumps(name)}, {json.dumps(value)});" for name, value in prefs.items()]
    (profile / "user.js").write_text("\n".join(lines) + "\n")


class SmtpSink:
    """aiosmtpd in its own process, storing every message in a Maildir; ``refuse`` makes it
    refuse some recipients (tests/e2e/smtp_sink.py)."""

    def __init__(self, root: Path):
        self.port = free_port()
        self.maildir = root / "maildir"
        repo = Path(__file__).resolve().parents[2]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{self.port}",
             "-c", "tests.e2e.smtp_sink.RefusingMailbox", str(self.maildir)],
            cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._listening, 20, "the SMTP sink to listen")

    def _listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def refuse(self, addresses: List[str]) -> None:
        """From now on refuse these recipients (an empty list refuses none)."""
        Path(f"{self.maildir}.refuse").write_text("\n".join(a.lower() for a in addresses))

    def messages(self) -> List:
        if not self.maildir.exists():
            return []
        return list(mailbox.Maildir(str(self.maildir), create=False))

    def wait_for_message(self, subject: str, timeout: float = 90.0):
        def find():
            for message in self.messages():
                if message["Subject"] == subject:
                    return message
        return wait_until(find, timeout, f"a message with subject {subject!r} at the SMTP sink")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Thunderbird:
    """One headless Thunderbird process with Marionette, for a whole test session."""

    def __init__(self, root: Path, env: Dict[str, str], smtp_port: int, extra_prefs=None,
                 headless: bool = True, binary: str = THUNDERBIRD):
        from marionette_driver.marionette import Marionette

        self.profile = root / "profile"
        # An existing profile is started again as it was left (a restart).
        self.profile.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        prefs = {**QUIET_PREFS, **account_prefs(smtp_port), "marionette.port": self.port,
                 **(extra_prefs or {})}
        write_user_js(self.profile, prefs)
        self.log_path = root / "thunderbird.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [binary, "--no-remote", "--profile", str(self.profile),
             *(["--headless"] if headless else []), "--marionette", "--remote-allow-system-access"],
            env={**env, "MOZ_CRASHREPORTER_DISABLE": "1", **({"MOZ_HEADLESS": "1"} if headless else {})},
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        self.client = Marionette(host="127.0.0.1", port=self.port)
        wait_until(self._marionette_up, 60, "Thunderbird's Marionette port")
        self.client.start_session()
        self.client.set_context(self.client.CONTEXT_CHROME)

    def _marionette_up(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"Thunderbird exited {self.proc.returncode}:\n{self.log()[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def version(self) -> str:
        """Thunderbird's version, as the running program says it (e.g. "140.12.0")."""
        return self.js('resolve(Services.appinfo.version);')

    def install_addon(self, path: Path) -> str:
        from marionette_driver.addons import Addons

        return Addons(self.client).install(str(path.resolve()), temp=True)

    def js(self, script: str, args: Optional[list] = None, timeout_s: float = 30.0):
        """Run async chrome-context JS; the script calls ``resolve(value)``."""
        self.client.timeout.script = timeout_s
        wrapped = (
            "const args = Array.from(arguments).slice(0, -1); const resolve = arguments[arguments.length - 1];\n"
            "(async () => {\n" + script + "\n})().catch(e => resolve({__error: String(e) + '\\n' + e.stack}));"
        )
        result = self.client.execute_async_script(wrapped, script_args=args or [])
        if isinstance(result, dict) and "__error" in result:
            raise AssertionError(f"chrome script failed: {result['__error']}")
        return result

    # --- what a user does, driven from the chrome context -------------------------

    def set_pref(self, name: str, value) -> None:
        kind = {bool: "Bool", int: "Int", str: "String"}[type(value)]
        self.js(f"Services.prefs.set{kind}Pref(args[0], args[1]); resolve(null);", [name, value])

    def compose_and_send(self, subject: str, to: str, body_html: str = "<p>Hello <b>there</b></p>",
                         identity_key: Optional[str] = None, attachments: Optional[List[Path]] = None,
                         fcc_folder_uri: Optional[str] = None, command: str = "cmd_sendNow",
                         ready: Optional[str] = None, cc: str = "", bcc: str = "") -> None:
        """Open an HTML compose window like Write does, wait until it is ready, press Send.
        identity_key picks another identity than the default account's; attachments are files;
        fcc_folder_uri is a Sent folder picked for this email (Options > Send a Copy To);
        command "cmd_sendLater" puts it in the Outbox instead, None leaves the window open
        (press_send sends it); ready is a JS condition on the compose window (``win``) to wait
        for before pressing it."""
        self.js("""
        const [subject, to, body, identityKey, files, fcc, command, ready, cc, bcc] = args;
        const params = Cc["@mozilla.org/messengercompose/composeparams;1"].createInstance(Ci.nsIMsgComposeParams);
        const fields = Cc["@mozilla.org/messengercompose/composefields;1"].createInstance(Ci.nsIMsgCompFields);
        fields.to = to; fields.cc = cc; fields.bcc = bcc; fields.subject = subject; fields.body = body;
        if (fcc) fields.fcc = fcc;
        for (const path of files) {
          const attachment = Cc["@mozilla.org/messengercompose/attachment;1"].createInstance(Ci.nsIMsgAttachment);
          const file = Cc["@mozilla.org/file/local;1"].createInstance(Ci.nsIFile);
          file.initWithPath(path);
          attachment.url = Services.io.newFileURI(file).spec;
          attachment.name = file.leafName;
          fields.addAttachment(attachment);
        }
        params.composeFields = fields;
        params.format = Ci.nsIMsgCompFormat.HTML;
        params.type = Ci.nsIMsgCompType.New;
        params.identity = identityKey ? MailServices.accounts.getIdentity(identityKey)
          : MailServices.accounts.defaultAccount.defaultIdentity;
        const opened = new Promise(done => {
          const observer = {
            observe(win) {
              win.addEventListener("compose-editor-ready", () => done(win), { once: true });
              Services.obs.removeObserver(observer, "chrome-document-global-created");
            },
          };
          Services.obs.addObserver(observer, "chrome-document-global-created");
        });
        MailServices.compose.OpenComposeWindowWithParams(null, params);
        const win = await opened;
        const isReady = new Function("win", "return " + (ready || "true") + ";");
        for (let i = 0; i < 200 && !isReady(win); i++) {
          await new Promise(r => setTimeout(r, 50));
        }
        if (!isReady(win)) throw new Error("the compose window never got ready: " + ready);
        if (command) win.goDoCommand(command);
        resolve(null);
        """, [subject, to, body_html, identity_key, [str(p.resolve()) for p in attachments or []], fcc_folder_uri,
              command, ready, cc, bcc], timeout_s=60)

    def press_send(self, subject: str) -> None:
        """Press Send in the open compose window of this subject."""
        self.js("""
        for (const win of Services.wm.getEnumerator("msgcompose")) {
          if (win.document.getElementById("msgSubject")?.value === args[0]) {
            win.goDoCommand("cmd_sendNow"); resolve(null); return;
          }
        }
        throw new Error("no compose window with subject " + args[0]);
        """, [subject])

    def accept_dialog(self, title: str, timeout_s: float = 30.0) -> str:
        """Wait for a dialog with this title (e.g. "Send Message Error") and press its OK,
        as a user would; returns the dialog's text."""
        return self.js("""
        const [title, tries] = args;
        for (let i = 0; i < tries; i++) {
          for (const win of Services.wm.getEnumerator(null)) {
            if (win.document.title === title && win.document.querySelector("dialog")) {
              const text = win.document.getElementById("infoBody")?.textContent ?? "";
              win.document.querySelector("dialog").acceptDialog();
              resolve(text); return;
            }
          }
          await new Promise(r => setTimeout(r, 50));
        }
        throw new Error("no dialog " + title);
        """, [title, int(timeout_s * 20)], timeout_s=timeout_s + 10)

    def compose_windows(self) -> List[str]:
        """The subjects of the open compose windows."""
        return self.js("""
        resolve([...Services.wm.getEnumerator("msgcompose")].map(
          w => w.document.getElementById("msgSubject")?.value ?? ""));
        """)

    def compose_tab_id(self, subject: str) -> int:
        """The add-on's tab id of the open compose window with this subject."""
        return self.in_extension_tab("options/options.html", """
            await waitFor(d => d.getElementById("cleanSentCopy"), "the options page");
            const browser = doc().defaultView.wrappedJSObject.browser;
            const query = Cu.cloneInto({ type: "messageCompose" }, doc().defaultView);
            for (const tab of await browser.tabs.query(query)) {
                if ((await browser.compose.getComposeDetails(tab.id)).subject === args[0]) return tab.id;
            }
            throw new Error("no compose tab");
        """, [subject])

    def extension_url(self, path: str) -> str:
        host = self.js("resolve(WebExtensionPolicy.getByID(args[0]).mozExtensionHostname);", [EXTENSION_ID])
        return f"moz-extension://{host}/{path}"

    def in_extension_tab(self, path: str, script: str, args: Optional[list] = None, timeout_s: float = 30.0):
        """Open an extension page in a tab of the main window, run ``script`` with
        ``doc`` (its document) and ``waitFor(fn)``, then close the tab."""
        return self.js("""
        const [url, inner, innerArgs] = args;
        const win = Services.wm.getMostRecentWindow("mail:3pane");
        const tabmail = win.document.getElementById("tabmail");
        const tab = tabmail.openTab("contentTab", { url });
        const waitFor = async (fn, what) => {
          for (let i = 0; i < 400; i++) {
            const doc = tab.browser.contentDocument;
            const value = doc && doc.readyState == "complete" && doc.location.href == url && fn(doc);
            if (value) return value;
            await new Promise(r => setTimeout(r, 50));
          }
          throw new Error("timed out waiting for " + what);
        };
        try {
          const run = new Function("doc", "waitFor", "args", "return (async () => {" + inner + "})();");
          resolve(await run(() => tab.browser.contentDocument, waitFor, innerArgs));
        } finally {
          tabmail.closeTab(tab);
        }
        """, [self.extension_url(path), script, args or []], timeout_s=timeout_s)

    def display_sent_message(self, message_id: str) -> dict:
        """Show the Sent copy in a message tab and wait until it (and its images) loaded."""
        return self.js("""
        const [messageId] = args;
        const root = MailServices.accounts.localFoldersServer.rootFolder;
        const sent = root.getChildNamed("Sent");
        let hdr = null;
        for (let i = 0; i < 200 && !hdr; i++) {
          hdr = sent.msgDatabase.getMsgHdrForMessageID(messageId);
          if (!hdr) await new Promise(r => setTimeout(r, 50));
        }
        if (!hdr) throw new Error("no Sent copy of " + messageId);
        const win = Services.wm.getMostRecentWindow("mail:3pane");
        const tabmail = win.document.getElementById("tabmail");
        const tab = tabmail.openTab("mailMessageTab", { messageURI: sent.getUriForMsg(hdr), background: false });
        let browser = null;
        for (let i = 0; i < 400; i++) {
          browser = tab.chromeBrowser?.contentWindow?.getMessagePaneBrowser?.();
          const doc = browser?.contentDocument;
          if (doc && doc.readyState == "complete" && doc.body && doc.body.textContent.trim()) break;
          await new Promise(r => setTimeout(r, 50));
        }
        const images = [...browser.contentDocument.images].map(img => ({ src: img.src, complete: img.complete, width: img.naturalWidth }));
        tabmail.closeTab(tab);
        resolve({ images });
        """, [message_id], timeout_s=60)

    def kill(self) -> None:
        """End the process group at once (SIGKILL), as a crash or power cut would."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=20)
        self._log.close()

    def stop(self) -> None:
        try:
            self.client.delete_session()
        except Exception:  # noqa: BLE001 - the process is going away either way
            pass
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log.close()
