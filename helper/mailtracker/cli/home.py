"""Commands that make the home and mint tags by hand: ``init``, ``tag``."""

import json
import os
import sys
from pathlib import Path
from typing import Optional

from mailtracker.cli.registry import argument, command
from mailtracker.core.paths import ENV_HOME, Home
from mailtracker.core.reach import unreachable_problem
from mailtracker.core.settings import init_home, load_config


@command("init", help="create the home, config and secret",
         description="Create (or update) the home: config file, random secret (mode 0600), hits "
         "folder. Safe to re-run; the secret is only replaced with --force.",
         arguments=[
             argument("--server-url", metavar="URL", help="public address of your pixel server"),
             argument("--path-prefix", metavar="/p", help="path before /<token>.gif in pixel URLs"),
             argument("--hits-dir", metavar="DIR", help="where hits-*.csv arrive (default <home>/hits)"),
             argument("--pull-url", metavar="URL", help="pull hits over HTTP(S) from this server "
                      "(started with --serve-hits); '' turns pulling off"),
             argument("--pair", metavar="CODE",
                      help="take the server's address and the shared secret from the one-line pairing "
                      "code setup-server printed"),
             argument("--force", action="store_true",
                      help="replace the secret: every existing tag stops counting"),
         ])
def cmd_init(args, home: Home) -> int:
    if args.pair:
        return init_paired(args, home)
    if args.force and not confirm_new_secret(home):
        print(f"Kept the secret at {home.secret_path}; nothing was changed.")
        return 0
    done = init_home(home, server_url=args.server_url, path_prefix=args.path_prefix,
                     hits_dir=args.hits_dir, force=args.force, pull_url=args.pull_url)
    report_init(home, done)
    return 0


def init_paired(args, home: Home) -> int:
    """init --pair CODE: the server's address (and pull, when it serves hits) and its secret."""
    from mailtracker.core.errors import ConfigError
    from mailtracker.core.files import write_file_atomically
    from mailtracker.core.pairing import read_pairing_code
    from mailtracker.core.secret import parse_secret, read_secret

    pairing = read_pairing_code(args.pair)
    if args.server_url and args.server_url.rstrip("/") != pairing.server_url:
        raise ConfigError(f"--pair names the server {pairing.server_url}; leave out --server-url "
                          f"{args.server_url}")
    new_secret = parse_secret(pairing.secret_text.decode("ascii"), "in the pairing code")
    took_secret = True
    if home.secret_path.exists():
        if read_secret(home.secret_path) == new_secret:
            took_secret = False
        elif not args.force:
            raise ConfigError(f"this home already has another secret ({home.secret_path}): taking the "
                              "server's would make every tag minted so far stop counting; add --force to "
                              "take it anyway")
        elif not confirm_new_secret(home):
            print(f"Kept the secret at {home.secret_path}; nothing was changed.")
            return 0
    pull_url = args.pull_url if args.pull_url is not None else (pairing.server_url if pairing.pull else None)
    if took_secret:
        # Before init_home, which would otherwise make a random one.
        home.secret_path.parent.mkdir(parents=True, exist_ok=True)
        write_file_atomically(home.secret_path, pairing.secret_text, mode=0o600, replace_existing=True)
    done = init_home(home, server_url=pairing.server_url, path_prefix=args.path_prefix,
                     hits_dir=args.hits_dir, pull_url=pull_url)
    report_init(home, done, secret_note=(f"Took the server's secret into {home.secret_path}" if took_secret
                                         else f"The secret at {home.secret_path} is already the server's"))
    print("Paired. Check the way to the server and back: mailtracker doctor --server")
    return 0


def report_init(home: Home, done: dict, secret_note: str = "") -> None:
    config = done["config"]
    print(f"{'Created' if done['created_config'] else 'Updated'} {home.config_path}")
    if secret_note:
        print(secret_note)
    elif done["new_secret"]:
        print(f"Wrote a new secret to {home.secret_path} (copy it to your pixel server)")
    else:
        print(f"Kept the secret at {home.secret_path}")
    print(f"Pixel URLs look like {config.pixel_url('<token>')}")
    problem = unreachable_problem(config.server_url)
    if problem:
        print(problem)
    print(f"Hits are read from {home.hits_dir(config)}")
    if config.pull_urls:
        print(f"'watch' pulls them from {', '.join(config.pull_urls)} as they arrive")


def confirm_new_secret(home: Home) -> bool:
    """--force replaces the secret: say what that costs; on a terminal, ask first.

    A script (no terminal on stdin) gets the warning and goes on, so it stays scriptable.
    """
    if not home.secret_path.exists():
        return True
    minted = 0
    for path in home.log_paths("tags", copies=False):  # every computer's, when it is one of several
        try:
            with open(path, encoding="utf-8-sig") as tags:
                minted += max(sum(1 for _ in tags) - 1, 0)
        except FileNotFoundError:
            pass
    print(f"mailtracker: --force replaces the secret: the tags minted so far ({minted} rows in "
          f"{home.tags_path.name if not home.device else 'the devices folder'}) stop counting, since the server can no longer verify their pixels, "
          "and the pixel server needs the new secret (copy it to /etc/mailtracker/secret, then "
          "'systemctl restart mailtracker').", file=sys.stderr)
    if not sys.stdin.isatty():
        return True
    print("Replace the secret? [y/N] ", end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


@command("tag", help="mint a tracking tag and print its pixel",
         description="Mint a tag, append it to tags.csv and print the pixel URL and the <img> HTML "
         "to paste into an email.",
         arguments=[
             argument("--name", default="", help="who the email is for (shown in the register)"),
             argument("--subject", default="", help="the email's subject"),
             argument("--to", action="append", default=[], metavar="ADDR", help="a recipient (repeatable)"),
             argument("--json", action="store_true", help="print a JSON object with id, url, html"),
         ])
def cmd_tag(args, home: Home) -> int:
    from mailtracker.desktop.tags import mint_tag

    config = load_config(home)
    tag = mint_tag(home, config, name=args.name, subject=args.subject, recipients=args.to)
    problem = unreachable_problem(config.server_url)
    if problem:
        print(f"mailtracker: {problem}", file=sys.stderr)
    if args.json:
        print(json.dumps(tag.to_json()))
    else:
        print(f"Tag {tag.short_id} for {tag.name or tag.recipients or '(no name)'}")
        print(f"Pixel URL: {tag.url}")
        print(f"HTML:      {tag.html}")
    return 0


def home_override(args) -> Optional[str]:
    """The home a launcher must pass on (--home or $MAILTRACKER_HOME), absolute; None for the default."""
    root = args.home or os.environ.get(ENV_HOME)
    return str(Path(root).expanduser().resolve()) if root else None
