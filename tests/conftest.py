"""Shared fixtures: every test gets its own cache folder, a clean environment and no
network beyond this machine."""

import ipaddress
import socket

import pytest
import torch

LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def _is_local(address) -> bool:
    """True for a Unix socket path and for a loopback host (127.0.0.0/8, ::1,
    localhost)."""
    if isinstance(address, (str, bytes)):  # AF_UNIX
        return True
    host = address[0] if isinstance(address, tuple) and address else address
    if isinstance(host, bytes):
        host = host.decode()
    if not isinstance(host, str) or host.lower() in LOCAL_NAMES:
        return isinstance(host, str)
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False  # a host name other than localhost: a lookup would leave


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch, request):
    if request.node.get_closest_marker("site"):
        return  # the site test builds the book with the environment make test set
    monkeypatch.setenv("GMLIB_CACHE", str(tmp_path / "cache"))
    for name in ("GMLIB_DATA", "GMLIB_DEVICE", "GMLIB_ACCEL_ON_CPU"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GMLIB_PROGRESS", "0")


@pytest.fixture(scope="module")
def one_thread():
    """For modules of tiny models (``pytestmark = pytest.mark.usefixtures(...)``): one
    thread spares OpenMP's per-operation overhead, and a second thread costs 10x when
    the other core is busy."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Fail any test that opens a connection (or looks up a name) beyond 127.0.0.1.

    The attempt raises ``ConnectionRefusedError`` where it happens and is also recorded,
    so a test whose code swallows the error (a download chain that falls through to
    the next source) still fails at teardown. Paths that download are tested by faking
    the network layer (``urlopen``), never by calling it.
    """
    attempts: list[str] = []
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def refuse(what: str):
        attempts.append(what)
        raise ConnectionRefusedError(f"tests run without network: refused {what}")

    def connect(sock, address):
        if not _is_local(address):
            refuse(f"a connection to {address!r}")
        return real_connect(sock, address)

    def connect_ex(sock, address):
        if not _is_local(address):
            refuse(f"a connection to {address!r}")
        return real_connect_ex(sock, address)

    def getaddrinfo(host, *args, **kwargs):
        if host is not None and not _is_local((host,)):
            refuse(f"a name lookup of {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield attempts
    if attempts:
        pytest.fail(
            "the test tried to reach the network: " + "; ".join(attempts), pytrace=False
        )
