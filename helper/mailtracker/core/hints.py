"""One fix per error code: the table the command line and the add-on share.

The command line prints a code's hint under its message (when the message does not already
name that fix); the native host sends it in every error reply (``hint``), and the add-on shows
it as is, so a missing secret is never told to run install-host. The add-on's own hint, for
when no helper answers at all, is the one thing it says by itself.
"""

from typing import Dict

HINTS: Dict[int, str] = {
    1: "Please report it, with the output of the same command run with -v.",
    2: "See 'mailtracker COMMAND --help'.",
    10: "Run 'mailtracker init --server-url https://your.server' (your pixel server's public address).",
    11: "Correct the setting the message names in config.toml, or run 'mailtracker init' again.",
    12: "The desktop and the pixel server need the same secret: 'mailtracker init' makes one on the "
        "desktop, and 'mailtracker init --pair CODE' takes the one setup-server made; on the server it "
        "is /etc/mailtracker/secret.",
    13: "Add the extra the message names to this install, with the command it gives.",
    30: "Free disk space or fix the folder's permissions, then try again: nothing written so far is lost.",
    31: "Another mailtracker process is busy with the home; try again in a moment.",
    32: "Check the permissions of the file the message names, and free disk space.",
    40: "Close register.csv in the program that holds it; it is written again on the next fold.",
    50: "Stop the program that holds the port, or choose another --port.",
    51: "Run it as root on the VPS, with mailtracker installed as the message says.",
    52: "Install mailtracker where the message says Thunderbird can start it, then run "
        "'mailtracker install-host' again.",
    60: "Install the add-on of this helper's version: 'mailtracker addon', then 'mailtracker doctor'.",
    61: "Check the id: 'mailtracker list' shows the tags.",
    70: "Run 'mailtracker doctor --server' to find where the way to the server breaks.",
    71: "Copy this desktop's secret to the server: 'sudo mailtracker setup-server --secret-file FILE'.",
    72: "Is Syncthing running? Pass --address and --api-key if it is not where mailtracker looks.",
    73: "Check this machine's network, or take the lists from a copy: 'ranges update --mirror URL'.",
    80: "A tray already shows this home; quit it first to start another.",
    81: "Resume tracking from the tray icon's menu.",
    82: "Start a notification service (most desktops have one), or use the tray icon's badge.",
    90: "Fix the first BROKEN line, then run the check again.",
}


def hint_for(code: int) -> str:
    return HINTS.get(code, HINTS[1])
