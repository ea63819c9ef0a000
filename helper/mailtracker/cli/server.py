"""Commands for the VPS: ``serve`` (the pixel server) and ``setup-server``."""

from pathlib import Path

from mailtracker.cli.output import print_checks, say
from mailtracker.cli.registry import argument, command
from mailtracker.core.errors import CheckFailedError
from mailtracker.core.paths import Home
from mailtracker.server.settings import SETTINGS, resolve


def _flag(setting):
    """``serve``'s flag for one server setting (settings.SETTINGS)."""
    options = {"dest": setting.name, "help": setting.help}
    if setting.kind is bool:
        options.update(action="store_true", default=None)
    elif setting.kind is list:
        options.update(action="append")
    elif setting.kind is int:
        options.update(type=int)
    if setting.metavar:
        options["metavar"] = setting.metavar
    if setting.choices:
        options["choices"] = setting.choices
    return argument(*setting.flags, **options)


@command("serve", help="run the pixel server",
         private_files=False,
         description="Run the pixel server in the foreground. GET/HEAD <prefix>/<token>.gif answers a "
         "43-byte GIF; valid hits are appended to hits-<server-id>-<UTC date>.csv.",
         arguments=[
             argument("--config", metavar="FILE", type=Path,
                      help="read these settings from a server config file (setup-server writes "
                      "/etc/mailtracker/server.toml); a flag given here overrides the file"),
             *(_flag(setting) for setting in SETTINGS),
         ])
def cmd_serve(args, home: Home) -> int:
    from mailtracker.server.run import pick_port, run_server

    given = {setting.name: getattr(args, setting.name) for setting in SETTINGS}
    settings = pick_port(resolve(given, args.config, home))
    # Printed once the server listens: a server that failed to start never announced itself.
    run_server(settings, on_listening=lambda: print(
        f"Pixel server on http://{settings.host}:{settings.port}{settings.path_prefix}/<token>.gif, "
        f"writing hits to {settings.hits_dir}", flush=True))
    return 0


@command("setup-server", help="set this VPS up: user, secret, config, systemd unit, Caddy",
         private_files=False,
         description="As root on a Debian/Ubuntu VPS: create the user mailtracker, "
         "/var/lib/mailtracker/hits, /etc/mailtracker/secret (root only) and "
         "/etc/mailtracker/server.toml, install the hardened systemd unit and the "
         "Caddy site for --domain, enable both, then check them as 'doctor --server' "
         "does. Safe to re-run: only what differs is changed.",
         arguments=[
             argument("--domain", help="the public name pixels are loaded from, e.g. t.example.org "
                      "(needed the first time; its DNS record must point at this machine)"),
             argument("--secret-file", metavar="FILE", type=Path,
                      help="use this secret (the desktop's) instead of generating one"),
             argument("--port", type=int, help="the loopback port behind Caddy (default 56789)"),
             argument("--server-id", metavar="ID", help="names this instance's hits files (default vps1)"),
             argument("--serve-hits", action="store_true",
                      help="serve the hits files to the desktop's 'mailtracker pull'"),
             argument("--root", metavar="DIR", help="write every file under DIR instead of / and run "
                      "no command (for tests and packaging)"),
             argument("--dry-run", action="store_true", help="print every file and command, change nothing"),
             argument("--uninstall", action="store_true",
                      help="remove what setup-server made (never the hits)"),
             argument("--no-check", action="store_true", help="skip the checks at the end"),
         ])
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
        setup.apply_plan(plan, machine, lambda line: say(line, flush=True))
    for note in plan.notes:
        print(f"\n{'After a real run: ' if args.dry_run else ''}{note}")
    pairing = None if args.uninstall or args.dry_run else pairing_command(plan, machine)
    if pairing:
        print(f"\nOn the desktop, pair it with this server in one line (it holds the secret: paste it only "
              f"into your own desktop):\n  {pairing}")
    if args.uninstall or args.dry_run or args.no_check:
        return 0
    if not machine.is_real:
        print("\nNot checked: under --root no service runs.")
        return 0
    print(f"\nChecking https://{plan.domain} from this machine:", flush=True)
    checks = setup.check_server_works(
        f"http://127.0.0.1:{plan.values['port']}", f"https://{plan.domain}",
        read_secret(machine.path(setup.SECRET)), Path(plan.values["hits_dir"]))
    if print_checks(checks):
        return CheckFailedError.code
    print("\nThe server works. On the desktop: the 'mailtracker init --pair …' line above, then "
          "mailtracker doctor --server")
    return 0


def pairing_command(plan, machine) -> str:
    """'mailtracker init --pair CODE' for this server: its https address, whether it serves the
    hits files, and the secret it verifies tokens with."""
    from mailtracker.core.pairing import pairing_code
    from mailtracker.server import setup

    try:
        secret_text = machine.path(setup.SECRET).read_bytes()
    except OSError:
        return ""
    code = pairing_code(f"https://{plan.domain}", secret_text, bool(plan.values.get("serve_hits")))
    return f"mailtracker init --pair {code}"
