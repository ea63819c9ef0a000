"""Several pixel servers: each writes its own files, the desktop folds them all,
and no hit is counted twice, whether the files arrive by a folder sync or by
HTTP pull."""

import os
import shutil
import time

import pytest
import requests

from mailtracker.core.contract import pull_token
from mailtracker.core.errors import PullError
from mailtracker.core.paths import Home
from mailtracker.core.secret import read_secret
from mailtracker.core.settings import init_home, load_config
from mailtracker.desktop.fold import fold
from mailtracker.desktop.pull import Puller
from mailtracker.desktop.register import read_register
from mailtracker.desktop.tags import mint_tag
from tests.conftest import AGENT, PixelServer, wait_for


def _hits_per_name(home: Home):
    return {row["name"]: int(row["hits"]) for row in read_register(home.register_path)}


def pull_servers(tmp_path, home: Home, ids: dict):
    """Servers on machines of their own (folder -> server id), with the desktop's secret, serving hits."""
    servers = []
    for where, server_id in ids.items():
        root = Home.locate(str(tmp_path / where))
        init_home(root)
        shutil.copy(home.secret_path, root.secret_path)
        servers.append(PixelServer(root, "--server-id", server_id, "--serve-hits"))
    return servers


def test_two_servers_write_their_own_files_and_each_hit_counts_once(home):
    """Servers a and b share a hits folder; every hit counts once, also after a re-read and a rebuild."""
    config = load_config(home)
    tags = {name: mint_tag(home, config, name=name) for name in ("Ann", "Bob")}
    a = PixelServer(home, "--server-id", "a")
    b = PixelServer(home, "--server-id", "b")
    try:
        for server, counts in ((a, {"Ann": 2, "Bob": 1}), (b, {"Ann": 1, "Bob": 3})):
            for name, n in counts.items():
                for i in range(n):
                    assert requests.get(server.url(tags[name].id), headers={"User-Agent": f"{AGENT} {i}"}).ok
    finally:
        a.stop()
        b.stop()
    hits_dir = home.hits_dir(config)
    assert {p.name.rsplit("-", 3)[0] for p in hits_dir.glob("hits-*.csv")} == {"hits-a", "hits-b"}
    assert fold(home).new_hits == 7
    assert _hits_per_name(home) == {"Ann": 3, "Bob": 4}
    # A sync tool delivers both files again (temp file and rename): nothing more is counted.
    for path in list(hits_dir.glob("hits-*.csv")):
        shutil.copy(path, path.with_name("." + path.name + ".tmp"))
        os.replace(path.with_name("." + path.name + ".tmp"), path)
    result = fold(home)
    assert result.new_hits == 0
    assert fold(home, rebuild=True).new_hits == 7
    assert _hits_per_name(home) == {"Ann": 3, "Bob": 4}


def test_two_servers_pulled_over_http(tmp_path, home):
    """Two servers on their own machines (own folders), one desktop pulling from both."""
    servers = pull_servers(tmp_path, home, {"east": "east", "west": "west"})
    try:
        config = load_config(home)
        tag = mint_tag(home, config, name="Ann")
        for n, server in enumerate(servers):
            for i in range(n + 1):
                assert requests.get(server.url(tag.id), headers={"User-Agent": f"{AGENT} {i}"}).ok
        puller = Puller(home.hits_dir(config), [s.base for s in servers], pull_token(read_secret(home.secret_path)))
        puller.pull_once()
        puller.pull_once()
    finally:
        for server in servers:
            server.stop()
    names = sorted(p.name.rsplit("-", 3)[0] for p in home.hits_dir(config).glob("hits-*.csv"))
    assert names == ["hits-east", "hits-west"]
    assert fold(home).new_hits == 3 and fold(home).new_hits == 0
    assert _hits_per_name(home) == {"Ann": 3}


def test_two_servers_with_the_same_id_are_refused_and_nothing_is_overwritten(tmp_path, home):
    """Two servers both called vps1 (setup-server's old default): the second is refused with
    both named, the first one's file is never written over, and every hit pulled counts.
    Before: each pull replaced the other's file of the same name and hits were lost."""
    servers = pull_servers(tmp_path, home, {"one": "vps1", "two": "vps1"})
    try:
        config = load_config(home)
        tag = mint_tag(home, config, name="Ann")
        puller = Puller(home.hits_dir(config), [s.base for s in servers], pull_token(read_secret(home.secret_path)))
        for round_ in range(3):
            for n, server in enumerate(servers):
                for i in range(n + 2):
                    assert requests.get(server.url(tag.id), headers={"User-Agent": f"{AGENT} {round_} {i}"}).ok
            with pytest.raises(PullError) as refused:
                puller.pull_once()
            assert servers[0].base in str(refused.value) and servers[1].base in str(refused.value)
            assert "server id" in str(refused.value)
            (local,) = home.hits_dir(config).glob("hits-vps1-*.csv")
            assert local.read_bytes() == (servers[0].hits_dir / local.name).read_bytes()
    finally:
        for server in servers:
            server.stop()
    assert fold(home).new_hits == 3 * 2


def test_two_servers_pulled_live_each_bring_their_hit_within_seconds(tmp_path, home):
    """A running puller holds a request on each server: a hit on either arrives within 2 s."""
    servers = pull_servers(tmp_path, home, {"north": "north", "south": "south"})
    config = load_config(home)
    local = home.hits_dir(config)
    tag = mint_tag(home, config, name="Ann")
    puller = Puller(local, [s.base for s in servers], pull_token(read_secret(home.secret_path)))
    try:
        with puller:
            time.sleep(2)  # both caught up, and a request held on each
            for server in reversed(servers):
                sent = time.monotonic()
                assert requests.get(server.url(tag.id), headers={"User-Agent": AGENT}).ok
                wait_for(lambda: any(tag.id in p.read_text(encoding="utf-8-sig")
                                     for p in local.glob(f"hits-{server.server_id}-*.csv")),
                         timeout=2, what=f"the hit on {server.server_id} pulled")
                assert time.monotonic() - sent < 2
            assert puller.status.live
    finally:
        for server in servers:
            server.stop()
