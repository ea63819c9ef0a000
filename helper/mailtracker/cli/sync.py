"""Commands that bring hits home and share a person's logs between their computers:
``pull`` (HTTP), ``syncthing`` (settings and a check) and ``devices`` (join, list)."""

import json
from dataclasses import replace
from pathlib import Path
from typing import Optional

from mailtracker.cli.output import print_checks
from mailtracker.cli.registry import Action, argument, command
from mailtracker.core.errors import CheckFailedError, NotInitialisedError
from mailtracker.core.paths import Home
from mailtracker.core.settings import load_config, save_config


@command("pull", help="pull new hits from the server over HTTP(S) once",
         description="Fetch the new bytes of the server's hits files (the server runs with "
         "--serve-hits) into the hits folder, from pull_url in config.toml or --url. A computer that "
         "joined with 'devices join --via-server' also pushes its own device logs there and pulls its "
         "other computers'. "
         "'watch' does this by itself, live: the server answers its waiting request as soon as a hit arrives.",
         arguments=[
             argument("--url", action="append", metavar="URL", help="pull from this server (repeatable)"),
             argument("--print-token", action="store_true",
                      help="print the bearer token (derived from the secret), e.g. for curl, and exit"),
         ])
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
    puller = Puller(home.hits_dir(config), urls, token, devices=home if config.devices_via_server else None)
    result = puller.pull_all()
    print(f"Pulled {result.summary()}")
    if home.device and puller.devices is not None:  # one of several computers: they meet at the server
        print(f"Device logs: {puller.devices.sync_all().summary()}")
    return 0


@command("syncthing", help="Syncthing folder settings for both sides, and a check",
         description="Print the folder settings for the server side (send-only) and the desktop side "
         "(receive-only), or check a running Syncthing's hits folder through its REST API (--fix "
         "repairs the settings).",
         actions=[
             Action("settings", "print the folder settings for both sides", [
                 argument("--server-path", default=None, metavar="DIR",
                          help="the hits folder on the server (default /var/lib/mailtracker/hits)"),
                 argument("--desktop-path", default=None, metavar="DIR",
                          help="the hits folder on the desktop (default: this home's)"),
                 argument("--folder-id", default=None, metavar="ID", help="default mailtracker-hits"),
                 argument("--json", action="store_true", help="print the settings as Syncthing REST JSON"),
                 argument("--devices", action="store_true",
                          help="print the devices folder's instead, which a person's computers share "
                          "(see 'mailtracker devices join')"),
             ]),
             Action("check", "check a running Syncthing's hits folder", [
                 argument("--side", choices=("desktop", "server", "devices"), default="desktop",
                          help="which side this Syncthing is (default desktop; devices: the folder "
                          "this computer shares with the person's other computers)"),
                 argument("--path", metavar="DIR", help="the folder (default: this home's hits folder on "
                          "the desktop, its devices folder for devices, /var/lib/mailtracker/hits on the "
                          "server)"),
                 argument("--folder-id", metavar="ID", help="the folder's ID (default: found by path)"),
                 argument("--address", metavar="URL",
                          help="Syncthing's GUI/REST address, e.g. http://127.0.0.1:8384"),
                 argument("--api-key", metavar="KEY",
                          help="Syncthing's API key (default: from its config.xml)"),
                 argument("--syncthing-home", metavar="DIR", type=Path,
                          help="the folder of Syncthing's config.xml"),
                 argument("--fix", action="store_true", help="change the settings that are wrong"),
             ]),
         ])
def cmd_syncthing(args, home: Home) -> int:
    from mailtracker.desktop import syncthing

    if args.syncthing_action == "settings" and args.devices:
        path = str(home.devices_dir)
        if args.json:
            print(json.dumps({"devices": syncthing.folder_settings("devices", path, args.folder_id)}, indent=2))
            return 0
        print(syncthing.describe_settings("devices", path, args.folder_id))
        print("\nThe same on each computer, with its own path; then 'mailtracker syncthing check --side devices'.\n"
              "Syncthing sends a changed log's last block (up to 128 KiB) again: set each other computer's\n"
              "Edit Device > Advanced > Compression to 'All Data' (the logs are text: a third of the bytes).")
        return 0
    if args.syncthing_action == "settings":
        desktop_path = args.desktop_path or desktop_hits_dir(home, "<your desktop hits folder>")
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
    path = args.path or {"server": syncthing.SERVER_HITS_DIR, "devices": str(home.devices_dir)}.get(args.side) \
        or desktop_hits_dir(home)
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
    print_checks(result.checks)
    if not result.ok:
        hint = " ('--fix' changes the settings)" if result.changes and not args.fix else ""
        print(f"\nSyncthing's {args.side} side needs attention{hint}.")
        return CheckFailedError.code
    print(f"\nSyncthing's {args.side} side is set up for mailtracker.")
    return 0


def desktop_hits_dir(home: Home, fallback: Optional[str] = None) -> str:
    try:
        return str(home.hits_dir(load_config(home)))
    except NotInitialisedError:
        if fallback is None:
            raise
        return fallback


@command("devices", help="use one home from several computers: join, and list the computers",
         description="'join' makes this computer one of the person's computers: it gets a device id, and "
         "the logs it kept alone (tags, self-fetches, links, replies) move into the devices folder under "
         "that id. Share that folder between the computers (Syncthing: 'syncthing settings --devices'), "
         "or, with --via-server, let them meet at the pull servers (pull_url; the server runs with "
         "--serve-hits and keeps the logs); each computer writes only its own logs and reads everyone's. "
         "'list' names the computers this home has heard from and when each last wrote.",
         actions=[Action("join", "make this computer one of several (safe to re-run)", arguments=[
                      argument("--via-server", action="store_true",
                               help="the computers meet at the pull servers, which then keep their logs (the "
                                    "names, subjects and recipients of the tracked mail); sets devices_via_server "
                                    "in config.toml")]),
                  Action("list", "the computers this home has heard from")])
def cmd_devices(args, home: Home) -> int:
    from mailtracker.desktop import devices

    if args.devices_action == "join":
        config = load_config(home)
        if args.via_server and not config.devices_via_server:
            config = replace(config, devices_via_server=True)
            save_config(home, config)
        joined = devices.join(home)
        print(f"This computer is {joined.device}" + (" (new)." if joined.created else "."))
        for name in joined.moved:
            print(f"Moved {name} into {home.devices_dir}: your other computers get its whole history.")
        if config.devices_via_server and config.pull_urls:
            print(f"Your computers meet at {', '.join(config.pull_urls)}: 'watch' (or 'pull') pushes this "
                  "computer's logs there and brings the others'.")
        elif config.devices_via_server:
            print(f"Your computers meet at the pull servers once pull_url is set in {home.config_path}.")
        else:
            print(f"Share {home.devices_dir} with your other computers: 'mailtracker syncthing settings --devices' "
                  "shows the Syncthing folder" + (", or join with --via-server to meet at your pull server."
                                                   if config.pull_urls else "."))
        return 0
    print_computers(home, devices.heard_from(home))
    return 0


def print_computers(home: Home, computers) -> None:
    """One line per computer: its id, this one or not, when it last wrote, its conflict copies;
    then, per pull server they meet at, when this computer's logs were last pushed and the
    others' pulled."""
    if not computers:
        print("This home has heard from no other computer ('mailtracker devices join' makes it one of several).")
        return
    _print_computers(home, computers)
    if home.device:
        _print_meeting_points(home)


def _print_meeting_points(home: Home) -> None:
    from mailtracker.desktop.devicesync import read_sync_state

    for url, entry in sorted(read_sync_state(home).items()):
        problem = f"; last try failed: {entry['problem']}" if entry.get("problem") else ""
        print(f"server {url}: this computer's logs last pushed {entry.get('pushed') or 'never'}, "
              f"the others' last pulled {entry.get('pulled') or 'never'}{problem}")


def _print_computers(home: Home, computers) -> None:
    for computer in computers:
        mine = " (this computer)" if computer.this else ""
        copies = f"; {computer.conflict_copies} conflict copies (read, never counted twice)" \
            if computer.conflict_copies else ""
        print(f"computer {computer.device}{mine}: last wrote {computer.last_write or 'never'} "
              f"({', '.join(computer.logs) or 'no logs'}){copies}")
