"""Setting a VPS up in one command (``mailtracker setup-server``): the system user, the
state folder, the root-only secret, the server config, the hardened systemd unit and
the Caddy site, enabled, then checked the way ``doctor --server`` checks from outside.

Planning is pure: ``plan_setup`` and ``plan_uninstall`` look at what is there (through a
``Machine``) and return only the steps still needed, so a second run plans nothing.
``apply_plan`` carries them out. ``root`` prefixes every path, as DESTDIR does, and then
no command runs: that is how the tests write a whole setup into a throwaway folder.
"""

import os
import re
import shlex
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

from mailtracker import __version__
from mailtracker.core.checks import Check, Checklist, pixel_problems
from mailtracker.core.contract import SERVER_ID_RE
from mailtracker.core.errors import ConfigError, SetupError
from mailtracker.core.secret import new_secret_text, read_secret
from mailtracker.core.tokens import probe_token
from mailtracker.server.config import read_server_values, read_setup_domain, server_config_text
from mailtracker.server.settings import VPS_HITS_DIR, VPS_SECRET, ServerSettings, vps_values

USER = "mailtracker"
CONFIG_DIR = "/etc/mailtracker"
SECRET = VPS_SECRET
CONFIG = "/etc/mailtracker/server.toml"
STATE_DIR = "/var/lib/mailtracker"
HITS_DIR = VPS_HITS_DIR
UNIT = "/etc/systemd/system/mailtracker.service"
CADDYFILE = "/etc/caddy/Caddyfile"
CADDY_SITE = "/etc/caddy/mailtracker.caddy"
CADDY_IMPORT = f"import {CADDY_SITE}"

# The unit's ExecStart in packaging/systemd names this; setup-server puts the real one.
PACKAGED_EXECUTABLE = "/opt/mailtracker/bin/mailtracker"
# ProtectHome=yes hides these from the service: an install there cannot be started.
HIDDEN_FROM_SERVICE = ("/root", "/home", "/run/user")

_DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$")


def server_id_for(domain: str) -> str:
    """The default server id: the domain, with '-' (it separates the parts of a hits file's name)
    as '_'. Two servers on two names never share an id, so their hits files never share a name."""
    return domain.replace("-", "_")[:63].rstrip(".")


@dataclass(frozen=True)
class Step:
    """One change: ``mkdir``, ``write`` or ``remove`` a path (a system path), or ``run`` a command."""

    action: str
    path: str = ""
    data: bytes = b""
    mode: int = 0o644
    owner: str = "root"
    argv: tuple = ()
    why: str = ""
    secret: bool = False

    def describe(self) -> str:
        if self.action == "run":
            return f"run {shlex.join(self.argv)}" + (f"  ({self.why})" if self.why else "")
        what = {"mkdir": "create the folder", "write": "write", "remove": "remove"}[self.action]
        mode = f" (mode {self.mode:04o}, owner {self.owner})" if self.action != "remove" else ""
        return f"{what} {self.path}{mode}" + (f"  ({self.why})" if self.why else "")


@dataclass
class Options:
    domain: Optional[str] = None
    secret_file: Optional[Path] = None
    port: Optional[int] = None
    server_id: Optional[str] = None
    serve_hits: bool = False
    root: Path = Path("/")
    executable: Optional[str] = None


class Machine:
    """What planning may ask about the machine. Under a throwaway root, only its files."""

    def __init__(self, root: Path = Path("/")):
        self.root = root

    @property
    def is_real(self) -> bool:
        return self.root == Path("/")

    def path(self, system_path: str) -> Path:
        return self.root / system_path.lstrip("/")

    def read(self, system_path: str) -> Optional[bytes]:
        try:
            return self.path(system_path).read_bytes()
        except FileNotFoundError:
            return None

    def exists(self, system_path: str) -> bool:
        return self.path(system_path).exists()

    def user_exists(self, name: str) -> bool:
        if self.is_real:
            import pwd  # POSIX only; check_preconditions has refused other systems

            try:
                pwd.getpwnam(name)
                return True
            except KeyError:
                return False
        # No useradd runs under a throwaway root: the user counts as made with its state folder.
        return self.exists(STATE_DIR)

    def unit_state(self, unit: str) -> Optional[tuple]:
        """(enabled, active) from systemctl; None where systemd cannot be asked (a throwaway root)."""
        if not self.is_real:
            return None
        enabled = _quiet(["systemctl", "is-enabled", "--quiet", unit])
        active = _quiet(["systemctl", "is-active", "--quiet", unit])
        return enabled, active

    def has_program(self, name: str) -> Optional[bool]:
        return shutil.which(name) is not None if self.is_real else None


def _quiet(argv) -> bool:
    try:
        return subprocess.run(argv, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def packaged_file(relative: str) -> Path:
    """A file of packaging/ (the unit, the Caddyfile): in a checkout, or installed beside
    the package (setup.cfg's data_files, in <prefix>/share/mailtracker)."""
    # A checkout first: an editable install must not run a stale copy from an older install.
    candidates = [Path(__file__).resolve().parents[3] / "packaging" / relative,
                  Path(sys.prefix) / "share" / "mailtracker" / relative]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise SetupError(f"{relative} is missing from this install (looked in "
                     f"{', '.join(str(c) for c in candidates)}); reinstall mailtracker")


def service_executable(executable: Optional[str] = None) -> List[str]:
    """How the service starts this mailtracker: its console script beside the interpreter."""
    if executable:
        command = [executable]
    else:
        script = Path(sys.executable).parent / "mailtracker"
        command = [str(script)] if script.is_file() else [sys.executable, "-m", "mailtracker"]
    first = os.path.abspath(command[0])
    for hidden in HIDDEN_FROM_SERVICE:
        if first == hidden or first.startswith(hidden + "/"):
            raise SetupError(
                f"mailtracker is installed under {hidden} ({first}), which the service's sandbox "
                "(ProtectHome) and the user mailtracker cannot reach. Install it system-wide: "
                "sudo PIPX_HOME=/opt/pipx PIPX_BIN_DIR=/usr/local/bin pipx install 'mailtracker[server]'"
            )
    if any(c.isspace() for c in " ".join(command)):
        raise SetupError(f"the path {' '.join(command)} has a space, which ExecStart cannot hold; "
                         "install mailtracker in a path without spaces")
    return command


def unit_text(executable: List[str]) -> bytes:
    text = packaged_file("systemd/mailtracker.service").read_text(encoding="utf-8")
    if PACKAGED_EXECUTABLE not in text:
        raise SetupError(f"the packaged unit has no ExecStart={PACKAGED_EXECUTABLE}; reinstall mailtracker")
    # The version line makes an upgrade rewrite the unit, and so restart the service.
    header = (f"# Written by mailtracker {__version__} setup-server; running it again rewrites this file.\n"
              "# Change settings in /etc/mailtracker/server.toml, not here.\n")
    return (header + text.replace(PACKAGED_EXECUTABLE, " ".join(executable))).encode("utf-8")


def caddy_site_text(domain: str, port: int) -> bytes:
    text = packaged_file("caddy/Caddyfile").read_text(encoding="utf-8")
    header = f"# Written by mailtracker setup-server for {domain}; imported by {CADDYFILE}.\n"
    return (header + text.replace("t.example.org {", f"{domain} {{")
            .replace("127.0.0.1:56789", f"127.0.0.1:{port}")).encode("utf-8")


def caddyfile_with_import(current: Optional[bytes]) -> Optional[bytes]:
    """The main Caddyfile with our import line added; None when it already has it."""
    if current is not None and CADDY_IMPORT.encode() in current.splitlines():
        return None
    base = current or b""
    if base and not base.endswith(b"\n"):
        base += b"\n"
    return base + (b"\n" if base else b"") + (
        f"# The mailtracker pixel server's site (mailtracker setup-server).\n{CADDY_IMPORT}\n".encode())


def caddyfile_without_import(current: bytes) -> bytes:
    lines = current.decode("utf-8").splitlines(keepends=True)
    kept = [line for line in lines if line.strip() != CADDY_IMPORT and
            line.strip() != "# The mailtracker pixel server's site (mailtracker setup-server)."]
    return "".join(kept).rstrip("\n").encode("utf-8") + (b"\n" if kept else b"")


def validate_domain(domain: str) -> str:
    domain = domain.strip().lower().rstrip(".")
    if "://" in domain or "/" in domain:
        raise ConfigError(f"--domain takes a name such as t.example.org, not a URL ({domain!r})")
    if not _DOMAIN_RE.match(domain):
        raise ConfigError(f"--domain {domain!r} is not a DNS name such as t.example.org "
                          "(Caddy needs a name to get a certificate for)")
    return domain


@dataclass
class Plan:
    steps: List[Step] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    domain: str = ""
    values: dict = field(default_factory=dict)

    def add(self, step: Step) -> None:
        self.steps.append(step)

    def writes(self, path: str) -> bool:
        return any(step.action in ("write", "remove") and step.path == path for step in self.steps)


def plan_setup(options: Options, machine: Machine) -> Plan:
    """The steps still needed to set this machine up as ``options`` ask; none on a second run."""
    plan = Plan()
    existing = read_server_values(machine.path(CONFIG)) if machine.exists(CONFIG) else {}
    domain = options.domain or (read_setup_domain(machine.path(CONFIG)) if machine.exists(CONFIG) else None)
    if not domain:
        raise ConfigError("--domain is needed the first time: the name recipients' mail clients will "
                          "load pixels from, e.g. --domain t.example.org (its DNS record must point here)")
    plan.domain = domain = validate_domain(domain)
    # A server set up before keeps its id; a new one is named after its domain (unique by default).
    values = {**vps_values(), "server_id": server_id_for(domain), **existing}
    if options.port is not None:
        if not 0 < options.port < 65536:
            raise ConfigError(f"--port {options.port} is not a port number (1-65535)")
        values["port"] = options.port
    if options.server_id is not None:
        if not SERVER_ID_RE.match(options.server_id):
            raise ConfigError(f"--server-id {options.server_id!r} may hold only letters, digits, '_' and '.', "
                              "up to 63 characters (it becomes part of the hits files' names)")
        values["server_id"] = options.server_id
    if options.serve_hits:
        values["serve_hits"] = True
    plan.values = values
    executable = service_executable(options.executable)

    if not machine.user_exists(USER):
        plan.add(Step("run", argv=("useradd", "--system", "--user-group", "--home-dir", STATE_DIR,
                                   "--shell", "/usr/sbin/nologin", USER),
                      why="the unprivileged user the server runs as"))
    if not machine.exists(CONFIG_DIR):
        plan.add(Step("mkdir", CONFIG_DIR, mode=0o755))
    _plan_secret(plan, options, machine)
    _write_if_changed(plan, machine, CONFIG, server_config_text(values, domain).encode("utf-8"), 0o644,
                      "the server's settings; edit them here")
    for folder in (STATE_DIR, values["hits_dir"]):
        if not machine.exists(folder):
            plan.add(Step("mkdir", folder, mode=0o750, owner=USER,
                          why="the group may read it: Syncthing, rsync"))
    _write_if_changed(plan, machine, UNIT, unit_text(executable), 0o644, "the hardened systemd unit")
    _write_if_changed(plan, machine, CADDY_SITE, caddy_site_text(domain, values["port"]), 0o644,
                      f"Caddy's site for {domain}: HTTPS in front of 127.0.0.1:{values['port']}")
    main = caddyfile_with_import(machine.read(CADDYFILE))
    if main is not None:
        plan.add(Step("write", CADDYFILE, data=main, why=f"import {CADDY_SITE}"))
    _plan_services(plan, machine)
    return plan


def _write_if_changed(plan: Plan, machine: Machine, path: str, data: bytes, mode: int, why: str,
                      secret: bool = False) -> None:
    if machine.read(path) != data:
        plan.add(Step("write", path, data=data, mode=mode, why=why, secret=secret))


def _plan_secret(plan: Plan, options: Options, machine: Machine) -> None:
    current = machine.read(SECRET)
    if options.secret_file is not None:
        read_secret(options.secret_file)  # a malformed file is refused before anything changes
        given = options.secret_file.read_bytes()
        if current is not None and read_secret(machine.path(SECRET)) == read_secret(options.secret_file):
            return
        plan.add(Step("write", SECRET, data=given, mode=0o600, secret=True,
                      why=f"the shared secret, from {options.secret_file}" +
                      (" (replacing the one there: tags minted with the old one stop counting)"
                       if current is not None else "")))
    elif current is None:
        plan.add(Step("write", SECRET, data=new_secret_text(), mode=0o600, secret=True,
                      why="a new shared secret: copy it to your desktop's home"))
        plan.notes.append(f"A new secret was made. The desktop takes it with the pairing line below "
                          f"(or copy it by hand: scp root@{plan.domain}:{SECRET} ~/.config/mailtracker/secret; "
                          "or give the desktop's with --secret-file next time)")


def _plan_services(plan: Plan, machine: Machine) -> None:
    caddy_changed = plan.writes(CADDY_SITE) or plan.writes(CADDYFILE)
    server_changed = plan.writes(UNIT) or plan.writes(CONFIG) or plan.writes(SECRET)
    if machine.has_program("caddy") is False:
        plan.add(Step("run", argv=("apt-get", "install", "-y", "--no-install-recommends", "caddy"),
                      why="the TLS proxy (certificates from Let's Encrypt)"))
        caddy_changed = True
    if plan.writes(UNIT):
        plan.add(Step("run", argv=("systemctl", "daemon-reload")))
    state = machine.unit_state("mailtracker.service")
    if (state is None and plan.writes(UNIT)) or (state is not None and not state[0]):
        plan.add(Step("run", argv=("systemctl", "enable", "mailtracker.service"), why="start at boot"))
    if server_changed or (state is not None and not state[1]):
        plan.add(Step("run", argv=("systemctl", "restart", "mailtracker.service"),
                      why="run the server with these settings"))
    caddy_state = machine.unit_state("caddy.service")
    if caddy_changed:
        plan.add(Step("run", argv=("caddy", "validate", "--adapter", "caddyfile", "--config", CADDYFILE)))
    if caddy_state is not None and not all(caddy_state):
        plan.add(Step("run", argv=("systemctl", "enable", "--now", "caddy.service")))
    if caddy_changed and (caddy_state is None or caddy_state[1]):
        plan.add(Step("run", argv=("systemctl", "reload-or-restart", "caddy.service"),
                      why="serve the new site"))


def plan_uninstall(machine: Machine) -> Plan:
    """Remove what setup made, except the hits, the state folder and the user who owns them."""
    plan = Plan()
    if machine.exists(UNIT):
        plan.add(Step("run", argv=("systemctl", "disable", "--now", "mailtracker.service")))
        plan.add(Step("remove", UNIT))
        plan.add(Step("run", argv=("systemctl", "daemon-reload")))
    caddy_changed = False
    if machine.exists(CADDY_SITE):
        plan.add(Step("remove", CADDY_SITE))
        caddy_changed = True
    main = machine.read(CADDYFILE)
    if main is not None and CADDY_IMPORT.encode() in main.splitlines():
        plan.add(Step("write", CADDYFILE, data=caddyfile_without_import(main), why=f"without {CADDY_IMPORT}"))
        caddy_changed = True
    if caddy_changed:
        plan.add(Step("run", argv=("systemctl", "reload-or-restart", "caddy.service")))
    for path in (CONFIG, SECRET):
        if machine.exists(path):
            plan.add(Step("remove", path))
    if machine.exists(CONFIG_DIR):
        plan.add(Step("remove", CONFIG_DIR, why="if nothing else is in it"))
    if machine.exists(STATE_DIR) or machine.user_exists(USER):
        plan.notes.append(f"Kept the hits in {HITS_DIR} and the user {USER} who owns them; to remove "
                          f"them too: userdel {USER} && rm -r {STATE_DIR}")
    return plan


def apply_plan(plan: Plan, machine: Machine, say: Callable[[str], None]) -> None:
    """Carry out the steps in order; commands only on the real machine."""
    for step in plan.steps:
        if step.action == "run":
            if not machine.is_real:
                say(f"not run under --root: {shlex.join(step.argv)}")
                continue
            say(f"running {shlex.join(step.argv)}")
            proc = subprocess.run(list(step.argv), stdin=subprocess.DEVNULL)
            if proc.returncode != 0:
                raise SetupError(f"{shlex.join(step.argv)} failed with exit code {proc.returncode}; "
                                 "fix what it says and run setup-server again (what is done stays done)")
            continue
        target = machine.path(step.path)
        if step.action == "mkdir":
            target.mkdir(mode=step.mode, parents=True, exist_ok=True)
            os.chmod(target, step.mode)
            _chown(target, step.owner, machine)
        elif step.action == "write":
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.setup-tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, step.mode)
            with os.fdopen(fd, "wb") as handle:
                handle.write(step.data)
            os.chmod(tmp, step.mode)
            os.replace(tmp, target)
        elif step.action == "remove":
            if target.is_dir():
                try:
                    target.rmdir()
                except OSError:
                    say(f"kept {step.path}: it holds files setup-server did not write")
                    continue
            else:
                target.unlink(missing_ok=True)
        # Under --root, say where the file really went (the path in the plan is the machine's).
        say(step.describe() if machine.is_real else step.describe().replace(step.path, str(target), 1))


def _chown(path: Path, owner: str, machine: Machine) -> None:
    # The user does not exist under a throwaway root (its useradd was not run).
    if owner == "root" or not machine.is_real:
        return
    import grp
    import pwd

    os.chown(path, pwd.getpwnam(owner).pw_uid, grp.getgrnam(owner).gr_gid)


def describe_dry_run(plan: Plan, machine: Machine) -> List[str]:
    """Every file with its content and every command, as --dry-run prints them."""
    lines = []
    for step in plan.steps:
        lines.append(f"would {step.describe()}")
        if step.action == "write":
            body = "(the secret: 32 random bytes as base64, not shown)" if step.secret else \
                step.data.decode("utf-8", "replace")
            lines += ["    " + line for line in body.rstrip("\n").splitlines()]
    return lines


def check_preconditions(machine: Machine, dry_run: bool) -> None:
    """The real machine needs root and systemd; a dry run or a throwaway root need neither."""
    if machine.is_real and not sys.platform.startswith("linux"):
        raise SetupError("setup-server sets up a Linux server with systemd; on this system run "
                         "'mailtracker serve --config FILE' under your own service manager")
    if not machine.is_real or dry_run:
        return
    if os.geteuid() != 0:
        raise SetupError("setup-server changes /etc and creates a user: run it as root, "
                         "e.g. sudo mailtracker setup-server --domain t.example.org")
    if shutil.which("systemctl") is None:
        raise SetupError("no systemctl here: setup-server needs systemd (Debian, Ubuntu...)")


def check_server_works(local_url: str, public_url: str, secret: bytes, hits_dir: Path,
                       wait_s: float = 60.0, context: Optional[ssl.SSLContext] = None,
                       path_prefix: str = ServerSettings.path_prefix) -> List[Check]:
    """What ``doctor --server`` checks, from the server itself: the service, the name, TLS,
    the pixel through Caddy, and the test hit in the hits folder. Stops at the first broken one."""
    checks = Checklist()
    add = checks.add

    ok, detail = _wait_answer(f"{local_url}/healthz", 20.0, None)
    if not add("service answers", ok, f"{local_url}/healthz: {detail}"):
        return checks
    host = urllib.parse.urlsplit(public_url).hostname
    try:
        addresses = sorted({info[4][0] for info in socket.getaddrinfo(host, 443, type=socket.SOCK_STREAM)})
    except (socket.gaierror, UnicodeError) as exc:
        add("name resolves", False, f"{host} does not resolve ({exc}): create its DNS record (A/AAAA) "
            "pointing at this machine")
        return checks
    add("name resolves", True, f"{host} -> {', '.join(addresses)}")
    # Caddy gets its certificate on the first start: give it a minute.
    ok, detail = _wait_answer(f"{public_url}/healthz", wait_s, context)
    if not add("TLS and Caddy", ok, f"{public_url}/healthz: {detail}" + (
            "" if ok else "; see journalctl -u caddy (ports 80 and 443 open? DNS pointing here?)")):
        return checks
    nonce = os.urandom(6).hex()
    pixel = f"{public_url}{path_prefix}/{probe_token(secret)}.gif"
    try:
        request = urllib.request.Request(pixel, headers={"User-Agent": f"mailtracker-setup probe-{nonce}"})
        with urllib.request.urlopen(request, timeout=10, context=context) as reply:
            problems = pixel_problems(reply.status, reply.headers.get("Content-Type", ""), reply.read(),
                                      reply.headers.get("Cache-Control", ""))
    except urllib.error.HTTPError as exc:
        problems = pixel_problems(exc.code, exc.headers.get("Content-Type", ""), exc.read(),
                                  exc.headers.get("Cache-Control", ""))
    except (OSError, urllib.error.URLError) as exc:
        add("pixel served", False, f"{pixel}: {exc}")
        return checks
    if not add("pixel served", not problems,
               f"{pixel}: 43-byte GIF, no caching" if not problems else f"{pixel}: {'; '.join(problems)}"):
        return checks
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        if any(f"probe-{nonce}" in path.read_text(encoding="utf-8", errors="replace")
               for path in hits_dir.glob("hits-*.csv")):
            add("test hit logged", True, f"in {hits_dir} (the fold never counts it)")
            return checks
        time.sleep(0.1)
    add("test hit logged", False, f"the pixel was answered but no hit reached {hits_dir}: does the "
        "server have the secret you gave (a foreign token is answered, not logged)?")
    return checks


def _wait_answer(url: str, wait_s: float, context) -> tuple:
    deadline = time.monotonic() + wait_s
    detail = "no answer"
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5, context=context) as reply:
                if reply.status == 200:
                    return True, "ok"
                detail = f"HTTP {reply.status}"
        except urllib.error.HTTPError as exc:
            detail = f"HTTP {exc.code}"
        except (OSError, urllib.error.URLError) as exc:
            detail = str(getattr(exc, "reason", exc))
        if time.monotonic() >= deadline:
            return False, detail
        time.sleep(0.5)
