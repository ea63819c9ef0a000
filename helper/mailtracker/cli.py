"""The ``mailtracker`` command line: the only place that configures logging and prints."""

import argparse
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import List, Optional

from mailtracker import __version__
from mailtracker.core.errors import (
    CheckFailedError,
    FileAccessError,
    MailtrackerError,
    MissingExtraError,
    NotInitialisedError,
    RegisterLockedError,
)
from mailtracker.core.paths import ENV_HOME, Home
from mailtracker.core.settings import init_home, load_config

log = logging.getLogger("mailtracker")

# Which install extra brings each optional library (setup.cfg), to name it when one is missing.
EXTRA_OF_LIBRARY = {
    "granian": "server", "uvloop": "server",
    "requests": "desktop", "watchdog": "desktop", "ua_parser": "desktop", "tqdm": "desktop",
    "pystray": "desktop", "PIL": "desktop",
}


# Options whose value may begin with '-' (a Syncthing API key can): 'KEY' is taken as
# the value even when argparse would read it as an option.
DASH_VALUE_OPTIONS = ("--api-key",)


def main(argv: Optional[List[str]] = None) -> int:
    try:
        try:
            return _main(argv)
        finally:
            # Flushed here, not at exit (also after argparse's --help exits), so a reader
            # that went away is seen below.
            sys.stdout.flush()
    except BrokenPipeError:
        return stdout_closed()


def stdout_closed() -> int:
    """The reader of stdout went away (``mailtracker tag | head``): end quietly, like a
    program killed by SIGPIPE, instead of a BrokenPipeError traceback."""
    # Python flushes stdout again at exit; point it at /dev/null so that flush is silent.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + 13


def join_dash_values(argv: List[str]) -> List[str]:
    """``--api-key -abc`` as ``--api-key=-abc``, which argparse reads as the value."""
    joined, args = [], iter(argv)
    for arg in args:
        if arg in DASH_VALUE_OPTIONS:
            value = next(args, None)
            joined.append(arg if value is None else f"{arg}={value}")
        else:
            joined.append(arg)
    return joined


def _main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(join_dash_values(sys.argv[1:] if argv is None else list(argv)))
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s: %(message)s" if not args.verbose else "%(asctime)s %(name)s %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return args.run(args, Home.locate(args.home)) or 0
    except MailtrackerError as exc:
        print(f"mailtracker: {exc}", file=sys.stderr)
        return exc.code
    except BrokenPipeError:
        raise  # stdout's reader went away: not a file problem (main ends quietly)
    except OSError as exc:
        # A file the command needed: say which and why, in words, not a traceback.
        where = f" {exc.filename}" if exc.filename else ""
        error = FileAccessError(f"cannot read or write{where}: {exc.strerror or exc}")
        print(f"mailtracker: {error}", file=sys.stderr)
        return error.code
    except ModuleNotFoundError as exc:
        extra = EXTRA_OF_LIBRARY.get((exc.name or "").split(".")[0])
        if extra is None:
            raise
        error = MissingExtraError(f"this command needs mailtracker's '{extra}' extra ({exc.name} is not "
                                  f"installed): pip install 'mailtracker[{extra}]'")
        print(f"mailtracker: {error}", file=sys.stderr)
        return error.code
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailtracker",
        description="Email-open tracking with your own pixel server.",
        epilog="Every command takes --help. Files live in the home: --home, $MAILTRACKER_HOME, "
               "or the platform's standard config and data folders.",
    )
    parser.add_argument("--version", action="version", version=f"mailtracker {__version__}")
    parser.add_argument("--home", metavar="DIR", help="use this directory for all files")
    parser.add_argument("-v", "--verbose", action="store_true", help="say more, with timestamps")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    cmd = commands.add_parser("init", help="create the home, config and secret",
                              description="Create (or update) the home: config file, random "
                              "secret (mode 0600), hits folder. Safe to re-run; the secret is "
                              "only replaced with --force.")
    cmd.add_argument("--server-url", metavar="URL", help="public address of your pixel server")
    cmd.add_argument("--path-prefix", metavar="/p", help="path before /<token>.gif in pixel URLs")
    cmd.add_argument("--hits-dir", metavar="DIR", help="where hits-*.csv arrive (default <home>/hits)")
    cmd.add_argument("--pull-url", metavar="URL", help="pull hits over HTTP(S) from this server "
                     "(started with --serve-hits); '' turns pulling off")
    cmd.add_argument("--force", action="store_true", help="replace the secret: every existing tag stops counting")
    cmd.set_defaults(run=cmd_init)

    cmd = commands.add_parser("tag", help="mint a tracking tag and print its pixel",
                              description="Mint a tag, append it to tags.csv and print the "
                              "pixel URL and the <img> HTML to paste into an email.")
    cmd.add_argument("--name", default="", help="who the email is for (shown in the register)")
    cmd.add_argument("--subject", default="", help="the email's subject")
    cmd.add_argument("--to", action="append", default=[], metavar="ADDR", help="a recipient (repeatable)")
    cmd.add_argument("--json", action="store_true", help="print a JSON object with id, url, html")
    cmd.set_defaults(run=cmd_tag)

    cmd = commands.add_parser("serve", help="run the pixel server",
                              description="Run the pixel server in the foreground. GET/HEAD "
                              "<prefix>/<token>.gif answers a 43-byte GIF; valid hits are appended "
                              "to hits-<server-id>-<UTC date>.csv.")
    cmd.add_argument("--config", metavar="FILE", type=Path,
                     help="read these settings from a server config file (setup-server writes "
                     "/etc/mailtracker/server.toml); a flag given here overrides the file")
    cmd.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    cmd.add_argument("--port", type=int, help="port to listen on (default 56789)")
    cmd.add_argument("--hits-dir", metavar="DIR", help="where to write hits (default: the home's)")
    cmd.add_argument("--path-prefix", metavar="/p", help="shown in the start-up message; any "
                     "prefix is accepted so old links keep working")
    cmd.add_argument("--server-id", help="names this instance's hits files (default pixel)")
    cmd.add_argument("--trusted-proxy", action="append", metavar="ADDR",
                     help="take X-Forwarded-For only from this address or network (repeatable)")
    cmd.add_argument("--secret-file", metavar="FILE", help="the shared secret (default: the home's)")
    cmd.add_argument("--client-address", choices=("full", "truncated", "hash"),
                     help="how client addresses are stored (default: the config's, else truncated)")
    cmd.add_argument("--workers", type=int, help="worker processes, each with its own file (default 1)")
    cmd.add_argument("--serve-hits", action="store_true", default=None,
                     help="serve the hits files read-only at /hits/ to the desktop's 'pull' "
                     "(bearer token derived from the secret)")
    cmd.add_argument("--origins", metavar="FILE",
                     help="network origins snapshot written by 'ranges update' (default: the home's "
                     "if there is one, else the one shipped with mailtracker)")
    cmd.add_argument("--retention-days", type=int, metavar="N",
                     help="delete this server's hits files dated more than N days ago (default 0: keep all)")
    cmd.set_defaults(run=cmd_serve)

    cmd = commands.add_parser("setup-server", help="set this VPS up: user, secret, config, systemd unit, Caddy",
                              description="As root on a Debian/Ubuntu VPS: create the user mailtracker, "
                              "/var/lib/mailtracker/hits, /etc/mailtracker/secret (root only) and "
                              "/etc/mailtracker/server.toml, install the hardened systemd unit and the "
                              "Caddy site for --domain, enable both, then check them as 'doctor --server' "
                              "does. Safe to re-run: only what differs is changed.")
    cmd.add_argument("--domain", help="the public name pixels are loaded from, e.g. t.example.org "
                     "(needed the first time; its DNS record must point at this machine)")
    cmd.add_argument("--secret-file", metavar="FILE", type=Path,
                     help="use this secret (the desktop's) instead of generating one")
    cmd.add_argument("--port", type=int, help="the loopback port behind Caddy (default 56789)")
    cmd.add_argument("--server-id", metavar="ID", help="names this instance's hits files (default vps1)")
    cmd.add_argument("--serve-hits", action="store_true",
                     help="serve the hits files to the desktop's 'mailtracker pull'")
    cmd.add_argument("--root", metavar="DIR", help="write every file under DIR instead of / and run "
                     "no command (for tests and packaging)")
    cmd.add_argument("--dry-run", action="store_true", help="print every file and command, change nothing")
    cmd.add_argument("--uninstall", action="store_true",
                     help="remove what setup-server made (never the hits)")
    cmd.add_argument("--no-check", action="store_true", help="skip the checks at the end")
    cmd.set_defaults(run=cmd_setup_server)

    cmd = commands.add_parser("fold", help="fold new hits into register.csv once",
                              description="Read what is new in tags.csv and hits-*.csv and "
                              "update register.csv; prints what it folded.")
    cmd.set_defaults(run=cmd_fold)

    cmd = commands.add_parser("watch", help="fold whenever a log changes (foreground)",
                              description="Watch the hits folder and tags.csv and keep "
                              "register.csv up to date until interrupted.")
    cmd.set_defaults(run=cmd_watch)

    cmd = commands.add_parser("rebuild", help="regenerate register.csv from the logs alone",
                              description="Forget all fold state and count every log again.")
    cmd.set_defaults(run=cmd_rebuild)

    cmd = commands.add_parser("list", help="show tags with their opens (the old -dump)",
                              description="Show every tag with short id, opens and last open, as the last fold "
                              "counted them (a running tray or watch keeps that current).")
    cmd.add_argument("--json", action="store_true", help="print the register rows as JSON")
    cmd.set_defaults(run=cmd_list)

    cmd = commands.add_parser("show", help="one tag's hits with labels and reasons",
                              description="Show one tag (by short id, id or Message-ID): "
                              "its opens, and each recent hit with its label, client and reason.")
    cmd.add_argument("tag", help="short id (7 characters), full id, or Message-ID")
    cmd.set_defaults(run=cmd_show)

    cmd = commands.add_parser("ranges", help="the networks of providers and scanners: status, update",
                              description="Where a fetch comes from (Microsoft 365, Google, Apple's "
                              "relays, mail gateways) decides its label. A dated snapshot of the "
                              "ranges the providers publish ships with mailtracker; 'update' fetches "
                              "fresh copies, 'status' says how old each is. 'load' adds a copy of "
                              "Apple's egress-ip-ranges.csv by hand.")
    actions = cmd.add_subparsers(title="actions", metavar="ACTION", dest="ranges_action", required=True)
    actions.add_parser("status", help="each source of network ranges, its date and age")
    update = actions.add_parser("update", help="fetch the providers' current lists (only what changed)")
    update.add_argument("--mirror", metavar="URL", default="",
                        help="fetch every list by its file name from this base URL instead (an offline copy)")
    update.add_argument("--output", metavar="FILE", type=Path,
                        help="where to write the snapshot (default: the home's state folder; a pixel "
                        "server reads it with 'serve --origins FILE')")
    load = actions.add_parser("load", help="load a CSV of Apple's relay ranges (first column a CIDR)")
    load.add_argument("file", type=Path, help="Apple's egress-ip-ranges.csv")
    actions.add_parser("forget", help="remove what 'load' and 'update' stored (the shipped snapshot stays)")
    cmd.set_defaults(run=cmd_ranges)

    cmd = commands.add_parser("host", help="the native messaging host (Thunderbird starts it)",
                              description="Speak the native messaging protocol on stdin/stdout. "
                              "Thunderbird starts this through the launcher that install-host writes.")
    cmd.add_argument("thunderbird_args", nargs="*", help=argparse.SUPPRESS)
    cmd.set_defaults(run=cmd_host)

    cmd = commands.add_parser("install-host", help="let Thunderbird's add-on reach this helper",
                              description="Write the native messaging host manifest and a launcher "
                              "where Thunderbird looks for them (Linux ~/.mozilla/native-messaging-hosts, "
                              "macOS ~/Library/Mozilla/NativeMessagingHosts, Windows a registry key); for a "
                              "Flatpak Thunderbird also inside its sandbox, and for a snap it says what "
                              "the portal needs. Safe to re-run.")
    cmd.add_argument("--system", action="store_true", help="install for all users (needs admin rights)")
    cmd.set_defaults(run=cmd_install_host)

    cmd = commands.add_parser("uninstall-host", help="remove what install-host wrote",
                              description="Remove the host manifest, launcher and registry key.")
    cmd.add_argument("--system", action="store_true", help="remove the all-users install")
    cmd.set_defaults(run=cmd_uninstall_host)

    cmd = commands.add_parser("doctor", help="check each link from Thunderbird to the helper",
                              description="Check the host manifest, the allowed extension id, the "
                              "launcher, a real ping through it, and the home and secret; name the "
                              "first broken link.")
    cmd.add_argument("--system", action="store_true", help="check the all-users install")
    cmd.add_argument("--server", action="store_true",
                     help="check the pixel server instead: name, TLS, health, pixel headers, and a "
                     "test hit (never counted) coming back into the hits folder")
    cmd.add_argument("--wait", type=float, default=20.0, metavar="S",
                     help="with --server: how long the test hit may take to arrive (default 20 s)")
    cmd.set_defaults(run=cmd_doctor)

    cmd = commands.add_parser("demo", help="run a local pixel server, the watcher and a demo tag",
                              description="Everything on this machine: a pixel server on "
                              "127.0.0.1, the watcher, and a demo tag to open with curl.")
    cmd.add_argument("--port", type=int, default=56789, help="pixel server port (default 56789)")
    cmd.set_defaults(run=cmd_demo)

    cmd = commands.add_parser("tray", help="the desktop daemon: tray icon, notifications, watcher",
                              description="Fold the logs whenever they change, show new opens in a "
                              "tray icon with a menu of recent tracked emails, and notify when a "
                              "person opens one. Without a tray it still folds and says why.")
    cmd.set_defaults(run=cmd_tray)

    cmd = commands.add_parser("report", help="write the HTML report (timelines, opens per day)",
                              description="Write a self-contained HTML report of the last fold's counts: an open "
                              "timeline per email, opens per day, and a table with labels.")
    cmd.add_argument("--output", metavar="FILE", help="where to write it (default <home>/report.html)")
    cmd.add_argument("--open", action="store_true", help="open it in the web browser")
    cmd.set_defaults(run=cmd_report)

    cmd = commands.add_parser("install-autostart", help="start 'mailtracker tray' at login",
                              description="Linux: an XDG autostart entry; macOS: a LaunchAgent; "
                              "Windows: a value under the Run key. Safe to re-run.")
    cmd.set_defaults(run=cmd_install_autostart)

    cmd = commands.add_parser("uninstall-autostart", help="remove what install-autostart wrote",
                              description="Remove the autostart entry for 'mailtracker tray'.")
    cmd.set_defaults(run=cmd_uninstall_autostart)

    cmd = commands.add_parser("pull", help="pull new hits from the server over HTTP(S) once",
                              description="Fetch the new bytes of the server's hits files (the "
                              "server runs with --serve-hits) into the hits folder, from pull_url "
                              "in config.toml or --url. 'watch' does this on an interval by itself.")
    cmd.add_argument("--url", action="append", metavar="URL", help="pull from this server (repeatable)")
    cmd.add_argument("--print-token", action="store_true",
                     help="print the bearer token (derived from the secret), e.g. for curl, and exit")
    cmd.set_defaults(run=cmd_pull)

    cmd = commands.add_parser("syncthing", help="Syncthing folder settings for both sides, and a check",
                              description="Print the folder settings for the server side (send-only) "
                              "and the desktop side (receive-only), or check a running Syncthing's "
                              "hits folder through its REST API (--fix repairs the settings).")
    actions = cmd.add_subparsers(title="actions", metavar="ACTION", dest="syncthing_action", required=True)
    show = actions.add_parser("settings", help="print the folder settings for both sides")
    show.add_argument("--server-path", default=None, metavar="DIR",
                      help="the hits folder on the server (default /var/lib/mailtracker/hits)")
    show.add_argument("--desktop-path", default=None, metavar="DIR",
                      help="the hits folder on the desktop (default: this home's)")
    show.add_argument("--folder-id", default=None, metavar="ID", help="default mailtracker-hits")
    show.add_argument("--json", action="store_true", help="print the settings as Syncthing REST JSON")
    check = actions.add_parser("check", help="check a running Syncthing's hits folder")
    check.add_argument("--side", choices=("desktop", "server"), default="desktop",
                       help="which side this Syncthing is (default desktop)")
    check.add_argument("--path", metavar="DIR", help="the hits folder (default: this home's on the "
                       "desktop, /var/lib/mailtracker/hits on the server)")
    check.add_argument("--folder-id", metavar="ID", help="the folder's ID (default: found by path)")
    check.add_argument("--address", metavar="URL", help="Syncthing's GUI/REST address, e.g. http://127.0.0.1:8384")
    check.add_argument("--api-key", metavar="KEY", help="Syncthing's API key (default: from its config.xml)")
    check.add_argument("--syncthing-home", metavar="DIR", type=Path, help="the folder of Syncthing's config.xml")
    check.add_argument("--fix", action="store_true", help="change the settings that are wrong")
    cmd.set_defaults(run=cmd_syncthing)
    return parser


def cmd_init(args, home: Home) -> int:
    if args.force and not confirm_new_secret(home):
        print(f"Kept the secret at {home.secret_path}; nothing was changed.")
        return 0
    done = init_home(home, server_url=args.server_url, path_prefix=args.path_prefix,
                     hits_dir=args.hits_dir, force=args.force, pull_url=args.pull_url)
    config = done["config"]
    print(f"{'Created' if done['created_config'] else 'Updated'} {home.config_path}")
    if done["new_secret"]:
        print(f"Wrote a new secret to {home.secret_path} (copy it to your pixel server)")
    else:
        print(f"Kept the secret at {home.secret_path}")
    print(f"Pixel URLs look like {config.pixel_url('<token>')}")
    print(f"Hits are read from {home.hits_dir(config)}")
    if config.pull_urls:
        print(f"'watch' pulls them from {', '.join(config.pull_urls)} every {config.pull_interval_s:g} s")
    return 0


def confirm_new_secret(home: Home) -> bool:
    """--force replaces the secret: say what that costs; on a terminal, ask first.

    A script (no terminal on stdin) gets the warning and goes on, so it stays scriptable.
    """
    if not home.secret_path.exists():
        return True
    try:
        with open(home.tags_path, encoding="utf-8-sig") as tags:
            minted = max(sum(1 for _ in tags) - 1, 0)
    except FileNotFoundError:
        minted = 0
    print(f"mailtracker: --force replaces the secret: the tags minted so far ({minted} rows in "
          f"{home.tags_path.name}) stop counting, since the server can no longer verify their pixels, "
          "and the pixel server needs the new secret (copy it to /etc/mailtracker/secret, then "
          "'systemctl restart mailtracker').", file=sys.stderr)
    if not sys.stdin.isatty():
        return True
    print("Replace the secret? [y/N] ", end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def cmd_tag(args, home: Home) -> int:
    from mailtracker.desktop.tags import mint_tag

    tag = mint_tag(home, load_config(home), name=args.name, subject=args.subject, recipients=args.to)
    if args.json:
        print(json.dumps(tag.to_json()))
    else:
        print(f"Tag {tag.short_id} for {tag.name or tag.recipients or '(no name)'}")
        print(f"Pixel URL: {tag.url}")
        print(f"HTML:      {tag.html}")
    return 0


def cmd_serve(args, home: Home) -> int:
    from mailtracker.server.run import pick_port, run_server

    settings = pick_port(serve_settings(args, home))
    print(f"Pixel server on http://{settings.host}:{settings.port}{settings.path_prefix}/<token>.gif, "
          f"writing hits to {settings.hits_dir}", flush=True)
    run_server(settings)
    return 0


def serve_settings(args, home: Home):
    """ServerSettings from, in this order: the flags, --config's file, the home's config, defaults."""
    from mailtracker.server.app import ServerSettings
    from mailtracker.server.config import read_server_config

    given = {"host": args.host, "port": args.port, "hits_dir": args.hits_dir,
             "secret_file": args.secret_file, "server_id": args.server_id,
             "path_prefix": args.path_prefix, "workers": args.workers,
             "trusted_proxies": args.trusted_proxy, "client_address": args.client_address,
             "serve_hits": args.serve_hits, "retention_days": args.retention_days,
             "origins_file": args.origins}
    values = read_server_config(args.config) if args.config else {}
    values.update({key: value for key, value in given.items() if value is not None})
    if not (values.get("secret_file") and values.get("hits_dir")):
        # Only what the flags and the file leave open comes from the home, so a VPS with
        # a server config needs no desktop home at all.
        config = load_config(home)
        values.setdefault("hits_dir", str(home.hits_dir(config)))
        values.setdefault("secret_file", str(home.secret_path))
        values.setdefault("path_prefix", config.path_prefix)
        values.setdefault("client_address", config.client_address)
    else:
        try:
            config = load_config(home)
        except NotInitialisedError:
            config = None
        if config is not None:
            values.setdefault("path_prefix", config.path_prefix)
            values.setdefault("client_address", config.client_address)
    if not values.get("origins_file"):
        values["origins_file"] = str(home.origins_path) if home.origins_path.exists() else ""
    for key in ("hits_dir", "secret_file"):
        values[key] = str(Path(values[key]).expanduser().resolve())
    return ServerSettings(**values)


def cmd_setup_server(args, home: Home) -> int:
    from mailtracker.core.secret import read_secret
    from mailtracker.server import setup

    machine = setup.Machine(Path(args.root).resolve() if args.root else Path("/"))
    setup.check_preconditions(machine, args.dry_run)
    if args.uninstall:
        plan = setup.plan_uninstall(machine)
    else:
        plan = setup.plan_setup(setup.Options(
            domain=args.domain, secret_file=args.secret_file, port=args.port, server_id=args.server_id,
            serve_hits=args.serve_hits, root=machine.root), machine)
    if not plan.steps:
        print("Nothing to change: " + ("nothing of setup-server's is installed." if args.uninstall else
              f"the pixel server for {plan.domain} is set up as asked."))
    elif args.dry_run:
        print("Dry run: nothing is changed. setup-server would:")
        for line in setup.describe_dry_run(plan, machine):
            print(line)
    else:
        setup.apply_plan(plan, machine, lambda line: print(line[0].upper() + line[1:], flush=True))
    for note in plan.notes:
        print(f"\n{'After a real run: ' if args.dry_run else ''}{note}")
    if args.uninstall or args.dry_run or args.no_check:
        return 0
    if not machine.is_real:
        print("\nNot checked: under --root no service runs.")
        return 0
    print(f"\nChecking https://{plan.domain} from this machine:", flush=True)
    checks = setup.check_server_works(
        f"http://127.0.0.1:{plan.values['port']}", f"https://{plan.domain}",
        read_secret(machine.path(setup.SECRET)), Path(plan.values["hits_dir"]))
    for check in checks:
        print(f"{'ok ' if check.ok else 'BROKEN'}  {check.name}: {check.detail}")
    if not all(check.ok for check in checks):
        return CheckFailedError.code
    print(f"\nThe server works. On the desktop: mailtracker init --server-url https://{plan.domain} "
          "&& mailtracker doctor --server")
    return 0


def cmd_fold(args, home: Home) -> int:
    from mailtracker.desktop.fold import fold

    result = fold(home)
    print(f"Folded {result.summary()}")
    if result.register_error:
        print(f"mailtracker: {result.register_error}", file=sys.stderr)
        return RegisterLockedError.code
    return 0


def cmd_rebuild(args, home: Home) -> int:
    from mailtracker.desktop.fold import fold

    result = fold(home, rebuild=True, progress=True)
    if result.register_error:
        print(f"Counted the logs again ({result.summary()}), but register.csv was not written.")
        print(f"mailtracker: {result.register_error}", file=sys.stderr)
        return RegisterLockedError.code
    print(f"Rebuilt register.csv: {result.summary()}")
    return 0


def cmd_watch(args, home: Home) -> int:
    from mailtracker.desktop.daemon import Daemon

    config = load_config(home)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with Daemon(home, config) as daemon:
        if not daemon.leading.is_set():
            print("Another mailtracker process (the tray, another 'watch', or Thunderbird's helper) "
                  "keeps the counts current; this one takes over when it stops.", flush=True)
        print(f"Watching {home.hits_dir(config)}; register at {home.register_path}. "
              "Ctrl-C stops.", flush=True)
        if config.pull_urls:
            print(f"Pulling hits from {', '.join(config.pull_urls)} every {config.pull_interval_s:g} s "
                  "('mailtracker pull' pulls now).", flush=True)
        try:
            while not stop.wait(3600):
                pass
        except KeyboardInterrupt:
            pass
    return 0


def _read_register(home: Home):
    """The read model, with a word on stderr when nobody keeps it current."""
    from mailtracker.desktop.daemon import daemon_running
    from mailtracker.desktop.register import Register

    load_config(home)  # an uninitialised home says so, rather than showing nothing
    if not daemon_running(home):
        print("mailtracker: no daemon is folding ('mailtracker tray', 'watch', or Thunderbird's "
              "helper): these are the counts of the last fold; 'mailtracker fold' updates them",
              file=sys.stderr)
    return Register.load(home)


def cmd_list(args, home: Home) -> int:
    with _read_register(home) as register:
        rows = register.rows()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("No tags yet: mint one with 'mailtracker tag --name NAME'.")
        return 0
    print(format_table(rows))
    return 0


def format_table(rows, now: Optional[datetime] = None) -> str:
    """One line per tag; the copies of a mail sent individually stand together, under
    their group's first 8 characters in the GROUP column."""
    from mailtracker.desktop.register import grouped

    now = now or datetime.now(timezone.utc)
    header = ("ID", "NAME", "SUBJECT", "OPENS", "CLICKS", "LAST OPEN", "REMINDER", "NOT COUNTED", "GROUP")
    lines = [header]
    for row in (row for members in grouped(rows) for row in members):
        ignored = []
        if row["machine_hits"]:
            ignored.append(f"{row['machine_hits']} machine")
        if row["self_hits"]:
            ignored.append(f"{row['self_hits']} yours")
        lines.append((row["short_id"], _clip(row["name"] or row["recipients"], 24),
                      _clip(row["subject"], 32), str(row["opens"]), str(row.get("clicks", 0)),
                      describe_time(row["last_open"], now), describe_reminder(row, now),
                      ", ".join(ignored), _printable((row.get("group") or "")[:8])))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()
                     for line in lines)


def _clip(text: str, width: int) -> str:
    text = _printable(text)
    return text if len(text) <= width else text[: width - 1] + "…"


# C0, DEL and C1 (CSI U+009B and OSC U+009D drive a terminal as ESC [ and ESC ] do):
# names, subjects and clients come from outside and must not reach the terminal raw.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _printable(text: str) -> str:
    return _UNPRINTABLE.sub(" ", text)


def describe_reminder(row, now: datetime) -> str:
    """'-', or when the follow-up reminder is (or was) due, with 'due' once it passed unopened."""
    stamp = row.get("remind_at") or ""
    if not stamp:
        return "-"
    from mailtracker.core.timestamps import parse_timestamp

    try:
        passed = parse_timestamp(stamp) <= now.timestamp()
    except ValueError:
        passed = False
    due = passed and not row.get("opened", row.get("opens"))
    return f"{stamp[:10]} {stamp[11:16]} UTC" + (" (due)" if due else "")


def describe_time(stamp: str, now: datetime) -> str:
    """'2026-11-24 22:31 UTC (5 min ago)', or 'never'."""
    if not stamp:
        return "never"
    from mailtracker.core.timestamps import ago

    return f"{stamp[:10]} {stamp[11:16]} UTC ({ago(stamp, now.timestamp())})"


def cmd_show(args, home: Home) -> int:
    from mailtracker.core.errors import UnknownTagError
    from mailtracker.desktop.classify import explain

    with _read_register(home) as register:
        row = register.find(args.tag)
        if row is None:
            raise UnknownTagError(f"no tag matches {args.tag!r} (a short id, full id or Message-ID)")
        timeline = register.timeline(row["id"])
        members = register.group(row.get("group") or "")
    print(_printable(f"{row['short_id']}  {row['name'] or row['recipients']}  {row['subject']}"))
    if members:
        opened = sum(1 for member in members if member.get("opened", member["opens"]))
        print(_printable(f"sent individually (group {row['group'][:8]}): {len(members)} recipients, "
                         f"{opened} opened"))
        for member in members:
            mark = "*" if member["id"] == row["id"] else " "
            print(_printable(f" {mark}{member['short_id']}  {_clip(member['recipients'], 32):<32} "
                             f"{member['opens']} opens, {member.get('clicks', 0)} clicks, "
                             f"last open {member['last_open'] or '-'}"))
    print(f"{row['opens']} opens (first {row['first_open'] or '-'}, last {row['last_open'] or '-'}); "
          f"{row['machine_hits']} machine hits and {row['self_hits']} of your own, not counted")
    if row.get("remind_at"):
        print(f"reminder if not opened: {describe_reminder(row, datetime.now(timezone.utc))}")
    links = row.get("links") or []
    if links:
        print(f"{row.get('clicks', 0)} clicks (first {row.get('first_click') or '-'}, "
              f"last {row.get('last_click') or '-'}) on {len(links)} tracked links:")
        for link in links:
            text = f"'{_clip(link['text'], 32)}' " if link["text"] else ""
            last = f", last {link['last_click']}" if link["last_click"] else ""
            print(f"  link {link['link']}: {text}{_clip(link['target'], 60)} — "
                  f"{link['clicks']} clicks{last}")
    for stamp, label, counted, reason, client in timeline:
        mark = "" if counted else " (not counted again)"
        print(_printable(f"  {stamp}  {label:<8} {client:<32} {explain(reason)}{mark}"))
    return 0


def cmd_ranges(args, home: Home) -> int:
    from mailtracker.desktop import ranges

    if args.ranges_action == "load":
        count = ranges.load_apple_ranges(home, args.file)
        print(f"Loaded {count} Apple relay ranges; the next fold labels the whole history again.")
    elif args.ranges_action == "forget":
        print("Removed the ranges stored here; the shipped snapshot is used." if ranges.forget_ranges(home)
              else "Nothing was stored; the shipped snapshot is used.")
    elif args.ranges_action == "update":
        reports, path = ranges.update_ranges(home, mirror=args.mirror, output=args.output)
        for report in reports:
            print(f"{report.outcome:<9}  {report.id:<13} {report.url}"
                  + (f": {report.detail}" if report.detail else ""))
        if path is None:
            from mailtracker.core.errors import RangesUpdateError

            raise RangesUpdateError("no list could be fetched; the ranges in use are unchanged")
        print(f"Wrote {path}; the next fold labels the whole history again.")
    else:
        for line in ranges.describe_ranges(home):
            print(line)
    return 0


def cmd_host(args, home: Home) -> int:
    from mailtracker.desktop.host import run_host

    return run_host(home, args.thunderbird_args)


def _home_override(args) -> Optional[str]:
    root = args.home or os.environ.get(ENV_HOME)
    return str(Path(root).expanduser().resolve()) if root else None


def cmd_install_host(args, home: Home) -> int:
    from mailtracker.desktop.install import install_host

    load_config(home)
    for line in install_host(home, _home_override(args), system=args.system):
        print(line[0].upper() + line[1:])
    print("Restart Thunderbird, then check with 'mailtracker doctor'.")
    return 0


def cmd_uninstall_host(args, home: Home) -> int:
    from mailtracker.desktop.install import uninstall_host

    for line in uninstall_host(home, system=args.system):
        print(line[0].upper() + line[1:])
    return 0


def cmd_doctor(args, home: Home) -> int:
    from mailtracker.desktop.install import check_host_chain, own_copy_identities

    if args.server:
        return _doctor_server(args, home)
    checks = check_host_chain(home, system=args.system)
    for check in checks:
        print(f"{'ok ' if check.ok else 'BROKEN'}  {check.name}: {check.detail}")
    for identity in own_copy_identities(home):
        print(f"note    Sent copies: tracked mail from {identity} goes out through Gmail, which files its "
              "own copy, pixel included, in All Mail, where your phone and webmail see it (the README's "
              "'The Sent copy'); send tracked mail through another SMTP server for clean copies")
    broken = [check for check in checks if not check.ok]
    if broken:
        print(f"\nThe chain breaks at: {broken[0].name}.")
        return CheckFailedError.code
    print("\nThunderbird can reach the helper.")
    return 0


def cmd_tray(args, home: Home) -> int:
    from mailtracker.desktop.tray.app import Tray

    config = load_config(home)
    tray = Tray(home, config)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: tray.request_stop())
    return tray.run()


def cmd_report(args, home: Home) -> int:
    import webbrowser

    from mailtracker.desktop.report import write_report

    _read_register(home).close()  # only for its word when no daemon keeps the counts current
    path = write_report(home, Path(args.output).resolve() if args.output else None)
    print(f"Wrote the report {path}")
    if args.open:
        webbrowser.open(path.as_uri())
    return 0


def cmd_install_autostart(args, home: Home) -> int:
    from mailtracker.desktop.autostart import install_autostart

    load_config(home)
    for line in install_autostart(_home_override(args)):
        print(line[0].upper() + line[1:])
    print("'mailtracker tray' starts at your next login; start it now with 'mailtracker tray &'.")
    return 0


def cmd_uninstall_autostart(args, home: Home) -> int:
    from mailtracker.desktop.autostart import uninstall_autostart

    for line in uninstall_autostart():
        print(line[0].upper() + line[1:])
    return 0


def cmd_demo(args, home: Home) -> int:
    from mailtracker.desktop.daemon import Daemon
    from mailtracker.desktop.register import Register
    from mailtracker.desktop.tags import mint_tag

    init_home(home, server_url=f"http://127.0.0.1:{args.port}")
    config = load_config(home)
    server = subprocess.Popen([sys.executable, "-m", "mailtracker", "--home", str(home.data_dir),
                               "serve", "--port", str(args.port)])
    try:
        _wait_healthy(f"http://127.0.0.1:{args.port}/healthz", server)
        tag = mint_tag(home, config, name="Demo recipient", subject="mailtracker demo")

        shown = [0]

        def report(result):
            with Register.load(home) as register:
                row = register.get(tag.id)
            if row is not None and row["opens"] > shown[0]:
                shown[0] = row["opens"]
                print(f"Opened: tag {tag.short_id} opens={row['opens']} last_open={row['last_open']}",
                      flush=True)

        with Daemon(home, config, on_change=report):
            print(f"\nDemo home: {home.data_dir}\nDemo tag {tag.short_id}: {tag.url}\n\n"
                  f"Trigger an open:  curl -s -o /dev/null {tag.url}\n"
                  f"See the counts:   {_own_command()} --home {home.data_dir} list\n"
                  f"The register:     {home.register_path}\n\nCtrl-C stops.", flush=True)
            stop = threading.Event()
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            try:
                while not stop.wait(1.0) and server.poll() is None:
                    pass
            except KeyboardInterrupt:
                pass
    finally:
        server.terminate()
        server.wait(timeout=15)
    return 0


def _own_command() -> str:
    """How to run this mailtracker again: its console script, which may not be on PATH (a venv)."""
    import shutil

    script = Path(sys.executable).parent / ("mailtracker.exe" if os.name == "nt" else "mailtracker")
    if shutil.which("mailtracker") == str(script) or not script.exists():
        return "mailtracker"
    return str(script)


def _wait_healthy(url: str, server: subprocess.Popen, timeout_s: float = 20.0) -> None:
    import requests

    from mailtracker.desktop.client import session

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise MailtrackerError(f"the pixel server exited with code {server.returncode}")
        try:
            if session().get(url, timeout=1).ok:
                return
        except requests.RequestException:
            time.sleep(0.1)
    raise MailtrackerError(f"the pixel server did not answer {url} within {timeout_s:.0f} s")


def cmd_pull(args, home: Home) -> int:
    from mailtracker.core.contract import pull_token
    from mailtracker.core.errors import PullError
    from mailtracker.core.secret import read_secret
    from mailtracker.desktop.pull import Puller

    token = pull_token(read_secret(home.secret_path))
    if args.print_token:
        print(token)
        return 0
    config = load_config(home)
    urls = args.url or config.pull_urls
    if not urls:
        raise PullError(f"no server to pull from: set pull_url in {home.config_path} "
                        "(or 'mailtracker init --pull-url URL'), or pass --url")
    result = Puller(home.hits_dir(config), urls, token).pull_once()
    print(f"Pulled {result.summary()}")
    return 0


def _doctor_server(args, home: Home) -> int:
    from mailtracker.desktop.probe import check_server

    config = load_config(home)
    print(f"Checking {config.server_url} from here (the test hit is never counted as an open).",
          flush=True)
    try:
        checks = check_server(home, config, wait_s=args.wait)
    except Exception as exc:  # a diagnosis names what broke; it never ends in a traceback
        log.debug("doctor --server failed unexpectedly", exc_info=True)
        from mailtracker.desktop.install import Check

        checks = [Check("the check itself", False, f"it failed unexpectedly ({type(exc).__name__}: {exc}); "
                        "please report it, with the output of 'mailtracker -v doctor --server'")]
    for check in checks:
        print(f"{'ok ' if check.ok else 'BROKEN'}  {check.name}: {check.detail}")
    broken = [check for check in checks if not check.ok]
    if broken:
        print(f"\nThe path to the server breaks at: {broken[0].name}.")
        return CheckFailedError.code
    print("\nThe server works, and its hits reach this desktop.")
    return 0


def cmd_syncthing(args, home: Home) -> int:
    from mailtracker.desktop import syncthing

    if args.syncthing_action == "settings":
        desktop_path = args.desktop_path or _desktop_hits_dir(home, "<your desktop hits folder>")
        server_path = args.server_path or syncthing.SERVER_HITS_DIR
        folder_id = args.folder_id or syncthing.FOLDER_ID
        if args.json:
            print(json.dumps({"server": syncthing.folder_settings("server", server_path, folder_id),
                              "desktop": syncthing.folder_settings("desktop", desktop_path, folder_id)},
                             indent=2))
            return 0
        print(syncthing.describe_settings("server", server_path, folder_id))
        print()
        print(syncthing.describe_settings("desktop", desktop_path, folder_id))
        print("\nThen check each side: 'mailtracker syncthing check' here, and on the server "
              f"'mailtracker syncthing check --side server --path {server_path}'.")
        return 0
    path = args.path or (syncthing.SERVER_HITS_DIR if args.side == "server" else _desktop_hits_dir(home))
    if args.api_key:
        address = args.address or syncthing.DEFAULT_ADDRESS
        api_key = args.api_key
    else:
        address, api_key, _ = syncthing.find_gui(args.syncthing_home)
        address = args.address or address
    api = syncthing.SyncthingAPI(address, api_key)
    result = syncthing.check_folder(api, args.side, path, args.folder_id)
    if args.fix and result.changes:
        changed = syncthing.fix_folder(api, result)
        print(f"Changed {', '.join(changed)}")
        result = syncthing.check_folder(api, args.side, path, args.folder_id)
    for check in result.checks:
        print(f"{'ok ' if check.ok else 'BROKEN'}  {check.name}: {check.detail}")
    if not result.ok:
        hint = " ('--fix' changes the settings)" if result.changes and not args.fix else ""
        print(f"\nSyncthing's {args.side} side needs attention{hint}.")
        return CheckFailedError.code
    print(f"\nSyncthing's {args.side} side is set up for mailtracker.")
    return 0


def _desktop_hits_dir(home: Home, fallback: Optional[str] = None) -> str:
    try:
        return str(home.hits_dir(load_config(home)))
    except NotInitialisedError:
        if fallback is None:
            raise
        return fallback
