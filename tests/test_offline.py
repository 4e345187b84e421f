"""The no-network fixture of conftest.py: it refuses and reports what leaves the
machine, and lets the loopback through (the site test serves the book on 127.0.0.1)."""

from __future__ import annotations

import socket
import socketserver
import threading
import urllib.request

import pytest
from conftest import _is_local


@pytest.mark.parametrize(
    "address, local",
    [
        (("127.0.0.1", 80), True),
        (("127.5.5.5", 80), True),
        (("::1", 80, 0, 0), True),
        (("localhost", 8000), True),
        ("/tmp/some.sock", True),
        (("93.184.216.34", 80), False),
        (("10.0.0.1", 80), False),
        (("example.com", 443), False),
        (("2606:4700::1111", 53, 0, 0), False),
    ],
)
def test_is_local(address, local):
    assert _is_local(address) is local


def test_a_connection_beyond_the_machine_is_refused_and_recorded(_no_network):
    with pytest.raises(ConnectionRefusedError, match="without network"):
        socket.create_connection(("93.184.216.34", 80), timeout=1)
    with pytest.raises(ConnectionRefusedError, match="name lookup"):
        socket.getaddrinfo("example.com", 443)
    with pytest.raises(OSError):  # urllib wraps the refusal in a URLError
        urllib.request.urlopen("http://example.com/", timeout=1)
    assert len(_no_network) == 3
    _no_network.clear()  # this test made the attempts on purpose


def test_the_loopback_stays_open(_no_network):
    class Echo(socketserver.BaseRequestHandler):
        def handle(self):
            self.request.sendall(self.request.recv(16))

    with socketserver.TCPServer(("127.0.0.1", 0), Echo) as server:
        threading.Thread(target=server.handle_request, daemon=True).start()
        with socket.create_connection(server.server_address, timeout=5) as conn:
            conn.sendall(b"ping")
            assert conn.recv(16) == b"ping"
    assert _no_network == []


def test_a_swallowed_attempt_still_fails_the_test(tmp_path):
    """Code that catches the refusal (a download chain falling through to its next
    source) cannot hide the attempt: the test fails at teardown."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_swallow.py").write_text(
        "import urllib.request\n\n"
        "def test_swallows():\n"
        "    try:\n"
        "        urllib.request.urlopen('http://example.com/', timeout=1)\n"
        "    except OSError:\n"
        "        pass\n\n"
        "def test_stays_local():\n"
        "    assert True\n"
    )
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    # the test body passes, its teardown errors
    assert "2 passed, 1 error" in run.stdout, run.stdout
    assert "tried to reach the network" in run.stdout
    assert "example.com" in run.stdout
