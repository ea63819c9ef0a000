"""Commands that join Thunderbird's add-on to this helper: ``host``, ``install-host``,
``uninstall-host`` and ``doctor`` (which also checks the pixel server with ``--server``)."""

import argparse
import logging

from mailtracker.cli.home import home_override
from mailtracker.cli.output import print_checks, say_all
from mailtracker.cli.registry import argument, command
from mailtracker.core.errors import CheckFailedError
from mailtracker.core.paths import Home
from mailtracker.core.settings import load_config

log = logging.getLogger("mailtracker")


@command("host", help="the native messaging host (Thunderbird starts it)",
         description="Speak the native messaging protocol on stdin/stdout. Thunderbird starts this "
         "through the launcher that install-host writes.",
         arguments=[argument("thunderbird_args", nargs="*", help=argparse.SUPPRESS)])
def cmd_host(args, home: Home) -> int:
    from mailtracker.desktop.host import run_host

    return run_host(home, args.thunderbird_args)


@command("install-host", help="let Thunderbird's add-on reach this helper",
         description="Write the native messaging host manifest and a launcher where Thunderbird looks "
         "for them (Linux ~/.mozilla/native-messaging-hosts, macOS ~/Library/Mozilla/NativeMessagingHosts, "
         "Windows a registry key); for a Flatpak Thunderbird also inside its sandbox, and for a snap it "
         "says what the portal needs. Safe to re-run.",
         arguments=[argument("--system", action="store_true",
                             help="install for all users (needs admin rights)")])
def cmd_install_host(args, home: Home) -> int:
    from mailtracker.desktop.install import install_host

    load_config(home)
    say_all(install_host(home, home_override(args), system=args.system))
    print("Restart Thunderbird, then check with 'mailtracker doctor'.")
    return 0


@command("addon", help="write the Thunderbird add-on (.xpi) of this helper's version",
         description="Write the add-on of exactly this mailtracker version, to install in Thunderbird "
         "(Add-ons and Themes › gear › Install Add-on From File…). Without --output it goes to your "
         "Downloads folder, and the command says where.",
         arguments=[argument("--output", metavar="FILE", help="where to write the .xpi (a folder: "
                             "the release's file name in it)")])
def cmd_addon(args, home: Home) -> int:
    from pathlib import Path

    from mailtracker.desktop.addon import default_destination, write_addon

    target = write_addon(Path(args.output).expanduser() if args.output else default_destination(home))
    print(f"Wrote the add-on to {target}")
    print("In Thunderbird: Add-ons and Themes › gear menu › Install Add-on From File…, pick that file, "
          "then check with 'mailtracker doctor'.")
    return 0


@command("uninstall-host", help="remove what install-host wrote",
         description="Remove the host manifest, launcher and registry key.",
         arguments=[argument("--system", action="store_true", help="remove the all-users install")])
def cmd_uninstall_host(args, home: Home) -> int:
    from mailtracker.desktop.install import uninstall_host

    say_all(uninstall_host(home, system=args.system))
    return 0


@command("doctor", help="check each link from Thunderbird to the helper",
         description="Check the host manifest, the allowed extension id, the launcher, a real ping "
         "through it, and the home and secret; name the first broken link.",
         arguments=[
             argument("--system", action="store_true", help="check the all-users install"),
             argument("--server", action="store_true",
                      help="check the pixel server instead: name, TLS, health, pixel headers, and a "
                      "test hit (never counted) coming back into the hits folder"),
             argument("--wait", type=float, default=20.0, metavar="S",
                      help="with --server: how long the test hit may take to arrive (default 20 s)"),
         ])
def cmd_doctor(args, home: Home) -> int:
    from mailtracker.desktop.addon import addon_checks
    from mailtracker.desktop.install import check_host_chain, own_copy_identities

    if args.server:
        return doctor_server(args, home)
    broken = print_checks(check_host_chain(home, system=args.system) + addon_checks())
    problem = unreachable(home)
    if problem:
        print(f"note    {problem}")
    for identity in own_copy_identities(home):
        print(f"note    Sent copies: tracked mail from {identity} goes out through Gmail, which files its "
              "own copy, pixel included, in All Mail, where your phone and webmail see it (the README's "
              "'The Sent copy'); send tracked mail through another SMTP server for clean copies")
    if home.device or home.devices_dir.is_dir():
        from mailtracker.cli.sync import print_computers
        from mailtracker.desktop.devices import heard_from, left_behind

        print_computers(home, heard_from(home))
        for name in left_behind(home):
            print(f"note    {name} was written after this computer joined; 'mailtracker devices join' "
                  "moves its rows to your other computers")
    if broken:
        print(f"\nThe chain breaks at: {broken[0].name}.")
        return CheckFailedError.code
    print("\nThunderbird can reach the helper.")
    return 0


def unreachable(home: Home) -> str:
    """Why recipients cannot load this home's pixels, or '' (also when the home cannot be read:
    the chain's "home and secret readable" names that)."""
    from mailtracker.core.errors import MailtrackerError
    from mailtracker.core.reach import unreachable_problem

    try:
        return unreachable_problem(load_config(home).server_url)
    except MailtrackerError:
        return ""


def doctor_server(args, home: Home) -> int:
    from mailtracker.desktop.probe import check_server

    config = load_config(home)
    print(f"Checking {config.server_url} from here (the test hit is never counted as an open).",
          flush=True)
    try:
        checks = check_server(home, config, wait_s=args.wait)
    except Exception as exc:  # a diagnosis names what broke; it never ends in a traceback
        log.debug("doctor --server failed unexpectedly", exc_info=True)
        from mailtracker.core.checks import Check

        checks = [Check("the check itself", False, f"it failed unexpectedly ({type(exc).__name__}: {exc}); "
                        "please report it, with the output of 'mailtracker -v doctor --server'")]
    broken = print_checks(checks)
    for line in last_seen_lines(home, config):
        print(f"note    {line}")
    if broken:
        print(f"\nThe path to the server breaks at: {broken[0].name}.")
        return CheckFailedError.code
    print("\nThe server works, and its hits reach this desktop.")
    return 0


def last_seen_lines(home: Home, config) -> list:
    """How the daemon last saw each pull server (servers-seen.json, as the add-on is told it),
    with when, beside doctor's own live check: the daemon's view may be older, or the other
    way round. A home whose hits come by a sync tool: when a hits file last changed."""
    from datetime import datetime, timezone

    from mailtracker.cli.output import describe_time
    from mailtracker.desktop.pull import FAILING, REACHABLE, UNREACHABLE
    from mailtracker.desktop.reachability import server_seen

    now = datetime.now(timezone.utc)
    seen = server_seen(home, config)
    if seen["how"] == "sync":
        changed = seen["hits_changed"]
        return [f"hits come by a sync tool: a hits file last changed {describe_time(changed, now)}"
                if changed else "hits come by a sync tool: no hits file has arrived yet"]
    lines = []
    for server in seen["servers"]:
        state, name = server["state"], server["server"]
        since = describe_time(server.get("since", ""), now)
        if state == REACHABLE:
            what = f"answered every pull since {since}"
        elif state == UNREACHABLE:
            what = (f"did not answer since {since}: {server['reason'] or server['message']}; "
                    f"it last answered {describe_time(server['last_reached'], now)}")
        elif state == FAILING:
            what = (f"answered, but the pull failed since {since}: {server['message']}; "
                    f"it last answered {describe_time(server['last_reached'], now)}")
        else:
            what = "not pulled from yet (the tray, 'watch' or Thunderbird's helper pulls)"
        lines.append(f"last seen by the daemon: {name} {what}")
    return lines
