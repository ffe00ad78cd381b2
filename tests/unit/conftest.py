from pathlib import Path

import pytest

from installer.detect import HostFacts
from unitdata import BRIDGE_KEY


@pytest.fixture
def facts() -> HostFacts:
    """A bridge-like host: ens3 with a public address, sshd on 22, Docker's bridges."""
    return HostFacts(
        interfaces={"lo": ["127.0.0.1/8"], "ens3": ["198.51.100.1/24"],
                    "docker0": ["172.17.0.1/16"]},
        default_interface="ens3",
        routes=[("198.51.100.0/24", "ens3"), ("172.17.0.0/16", "docker0")],
        sockets=[],
        docker_subnets=["172.17.0.0/16"],
    )


@pytest.fixture
def key_file(tmp_path) -> Path:
    path = tmp_path / "private.key"
    path.write_text(BRIDGE_KEY + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture(autouse=True)
def lock_dir(tmp_path_factory, monkeypatch) -> Path:
    """The interfaces' locks (installer/interface_lock.py) in a directory of the test's own,
    never the host's /run/cgnat."""
    from installer import interface_lock
    where = tmp_path_factory.mktemp("run-cgnat")
    monkeypatch.setattr(interface_lock, "LOCK_DIR", where)
    return where
