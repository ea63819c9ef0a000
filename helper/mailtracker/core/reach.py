"""Whether recipients can load a pixel from a server URL.

A pixel on a loopback, private, link-local or local-network host can be loaded only by this
machine or this network: a recipient's mail client never reaches it, so no open is ever seen.
``init``, ``tag``, ``doctor`` and the add-on's options (through the host's ``config``) say so
with this one sentence; ``demo`` is local on purpose and says that instead.
"""

import ipaddress
from typing import Optional
from urllib.parse import urlsplit

# Names that resolve only inside a home or office network (RFC 6762, RFC 8375, common uses).
LOCAL_SUFFIXES = (".local", ".lan", ".home.arpa", ".internal", ".localdomain")

FIX = "set your server's public address: mailtracker init --server-url https://t.example.org"


def where_only(server_url: str) -> Optional[str]:
    """'this machine' or 'this network' when only they can reach ``server_url``; None when others may."""
    host = (urlsplit(server_url).hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return "this machine"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if "." not in host or host.endswith(LOCAL_SUFFIXES):
            return "this network"
        return None
    if address.is_loopback or address.is_unspecified:
        return "this machine"
    if address.is_private or address.is_link_local or address.is_reserved:
        return "this network"
    return None


def unreachable_problem(server_url: str) -> str:
    """The sentence saying recipients cannot reach ``server_url`` with its fix, or ''."""
    only = where_only(server_url)
    if only is None:
        return ""
    return (f"Recipients cannot reach this server: {server_url} can be loaded only from {only}, so no "
            f"recipient's open will ever be seen; {FIX}")
