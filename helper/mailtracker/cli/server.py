"""Commands for the VPS: ``serve`` (the pixel server) and ``setup-server``."""

from pathlib import Path

from mailtracker.cli.output import print_checks, say
from mailtracker.cli.registry import argument, command
from mailtracker.core.errors import CheckFailedError, NotInitialisedError
from mailtracker.core.paths import Home
from mailtracker.core.settings import load_config


@command("serve", help="run the pixel server",
         description="Run the pixel server in the foreground. GET/HEAD <prefix>/<token>.gif answers a "
         "43-byte GIF; valid hits are appended to hits-<server-id>-<UTC date>.csv.",
         arguments=[
             argument("--config", metavar="FILE", type=Path,
                      help="read these settings from a server config file (setup-server writes "
                      "/etc/mailtracker/server.toml); a flag given here overrides the file"),
             argument("--host", help="address to listen on (default 127.0.0.1)"),
             argument("--port", type=int, help="port to listen on (default 56789)"),
             argument("--hits-dir", metavar="DIR", help="where to write hits (default: the home's)"),
             argument("--path-prefix", metavar="/p", help="shown in the start-up message; any "
                      "prefix is accepted so old links keep working"),
             argument("--server-id", help="names this instance's hits files (default pixel)"),
             argument("--trusted-proxy", action="append", metavar="ADDR",
                      help="take X-Forwarded-For only from this address or network (repeatable)"),
             argument("--secret-file", metavar="FILE", help="the shared secret (default: the home's)"),
             argument("--client-address", choices=("full", "truncated", "hash"),
                      help="how client addresses are stored (default: the config's, else truncated)"),
             argument("--workers", type=int, help="worker processes, each with its own file (default 1)"),
             argument("--serve-hits", action="store_true", default=None,
                      help="serve the hits files read-only at /hits/ to the desktop's 'pull' "
                      "(bearer token derived from the secret)"),
             argument("--origins", metavar="FILE",
                      help="network origins snapshot written by 'ranges update' (default: the home's "
                      "if there is one, else the one shipped with mailtracker)"),
             argument("--retention-days", type=int, metavar="N",
                      help="delete this server's hits files dated more than N days ago (default 0: keep all)"),
         ])
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


@command("setup-server", help="set this VPS up: user, secret, config, systemd unit, Caddy",
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
    print(f"\nThe server works. On the desktop: mailtracker init --server-url https://{plan.domain} "
          "&& mailtracker doctor --server")
    return 0
