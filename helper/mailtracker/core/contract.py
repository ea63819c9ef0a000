"""What the pixel server and the desktop agree on over HTTP: the pixel itself,
the routes and names of the hits files a desktop may pull (and of the device logs
it may push and pull), and the pull token.
"""

import base64
import hashlib
import hmac
import re

GIF = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00"
       b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")


HITS_ROUTE = "/hits/"
# Where the computers of one person meet (with --serve-hits): each pushes its own desktop logs
# there and pulls the others' (names as core.paths.DeviceLog tells them: no conflict copies).
DEVICES_ROUTE = "/devices/"
# The most one push may carry, and the most one device log may grow to on the server.
MAX_PUSH_BYTES = 1 << 20
MAX_DEVICE_LOG_BYTES = 256 << 20


# Only hits files straight in the hits folder: no slash can match, so no path
# leaves the folder, and dot files (locks, sync tools' temp files) never match.
HITS_NAME_RE = re.compile(r"hits-[A-Za-z0-9][A-Za-z0-9_.-]*\.csv")

# A server id names the server's hits files (hits-<id>-<day>.csv): no '-', no separator.
SERVER_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.]{0,62}$")


_TOKEN_LABEL = b"mailtracker-pull-token-v1"


CHUNK_BYTES = 256 << 10


def pull_token(secret: bytes) -> str:
    """The bearer token both sides derive from the shared secret."""
    digest = hmac.new(secret, _TOKEN_LABEL, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")

