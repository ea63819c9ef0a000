"""Commands for the desktop daemon with an icon: ``tray``, ``install-autostart``, ``uninstall-autostart``."""

import signal

from mailtracker.cli.home import home_override
from mailtracker.cli.output import say_all
from mailtracker.cli.registry import command
from mailtracker.core.paths import Home
from mailtracker.core.settings import load_config


@command("tray", help="the desktop daemon: tray icon, notifications, watcher",
         description="Fold the logs whenever they change, show new opens in a tray icon with a menu of "
         "recent tracked emails, and notify when a person opens one. Without a tray it still folds "
         "and says why.")
def cmd_tray(args, home: Home) -> int:
    from mailtracker.desktop.tray.app import Tray

    config = load_config(home)
    tray = Tray(home, config)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: tray.request_stop())
    return tray.run()


@command("install-autostart", help="start 'mailtracker tray' at login",
         description="Linux: an XDG autostart entry; macOS: a LaunchAgent; Windows: a value under the "
         "Run key. Safe to re-run.")
def cmd_install_autostart(args, home: Home) -> int:
    from mailtracker.desktop.autostart import install_autostart

    load_config(home)
    say_all(install_autostart(home_override(args)))
    print("'mailtracker tray' starts at your next login; start it now with 'mailtracker tray &'.")
    return 0


@command("uninstall-autostart", help="remove what install-autostart wrote",
         description="Remove the autostart entry for 'mailtracker tray'.")
def cmd_uninstall_autostart(args, home: Home) -> int:
    from mailtracker.desktop.autostart import uninstall_autostart

    say_all(uninstall_autostart())
    return 0
