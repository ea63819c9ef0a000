"""Opening a file in the program the user chose for its type (a spreadsheet for CSV).
"""

import os
import subprocess

from mailtracker.desktop.platforms import platform_key

# How each platform opens a file in the program the user chose for its type.
OPENERS = {"linux": ["xdg-open"], "darwin": ["open"], "win32": None}


def open_in_system_program(path: str) -> None:
    """Open a file in the program the user chose for its type (a spreadsheet for CSV)."""
    command = OPENERS.get(platform_key(), OPENERS["linux"])
    if command is None:
        os.startfile(path)  # Windows
        return
    # Detached: the spreadsheet outlives the click, and nobody waits for it.
    subprocess.Popen(command + [path], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, start_new_session=True)

