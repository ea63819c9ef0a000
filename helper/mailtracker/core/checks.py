"""A check: one named step of a chain (Thunderbird to the helper, the desktop to the pixel
server and back, the server to the world) that holds or is broken, with what was seen.

Both sides use it: ``doctor`` on the desktop, ``setup-server`` on the VPS. ``Checklist``
collects a chain's checks (each side stops at its first broken one), and
``pixel_problems`` says what is wrong with a pixel's answer, whichever HTTP client got it.
The CLI prints them (``cli.output.print_checks``).
"""

from dataclasses import dataclass
from typing import List

from mailtracker.core.contract import GIF


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


class Checklist(List[Check]):
    """A chain's checks in order."""

    def add(self, name: str, ok: bool, detail: str) -> bool:
        """Note a check; whether it holds (a chain stops at the first that does not)."""
        self.append(Check(name, ok, detail))
        return ok


def pixel_problems(status: int, content_type: str, body: bytes, cache_control: str) -> List[str]:
    """What keeps a pixel's answer from being the server's: none when it is the 43-byte GIF,
    answered 200 as image/gif and never cached."""
    problems = []
    if status != 200:
        problems.append(f"HTTP {status} instead of 200")
    if content_type != "image/gif":
        problems.append(f"Content-Type {content_type!r} instead of image/gif")
    if body != GIF:
        problems.append(f"a {len(body)}-byte body instead of the 43-byte GIF")
    if "no-store" not in cache_control:
        problems.append("no 'Cache-Control: no-store' (a cache in between would hide opens)")
    return problems
