"""`odin.engine` needs no gRPC, no server and no network, imports lazily, and its documented example runs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Runs in a fresh interpreter: every IP socket refuses to connect or bind, so any network use fails the run.
NO_NETWORK_RUN = textwrap.dedent("""
    import socket, sys

    def refuse(*args, **kwargs):
        raise AssertionError("odin.engine used the network")

    real_socket = socket.socket
    class NoIpSocket(real_socket):
        def connect(self, address):
            if self.family != socket.AF_UNIX:
                refuse()
            return super().connect(address)
        def bind(self, address):
            if self.family != socket.AF_UNIX:
                refuse()
            return super().bind(address)
    socket.socket = NoIpSocket
    socket.getaddrinfo = socket.create_connection = refuse

    import odin.engine
    loaded = sorted(m for m in sys.modules if m.startswith(("grpc", "odin_scheduler")))
    print("after import:", loaded)

    done = odin.engine.run({"name": "offline", "tasks": [
        {"name": "make", "image": "x", "command": ["sh", "-c", "echo '{\\"n\\": 7}' > $$ODIN_OUTPUTS"]},
        {"name": "use", "image": "x", "command": ["sh", "-c", "echo got $$0"], "args": ["^make.outputs.n"]},
    ]})
    print("state:", done.state.name, done.logs["use"].strip())
    print("grpc after run:", sorted(m for m in sys.modules if m.startswith("grpc")))
""")


def test_importing_and_running_needs_no_grpc_and_no_network() -> None:
    result = subprocess.run([sys.executable, "-c", NO_NETWORK_RUN], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines == ["after import: []", "state: SUCCEEDED got 7", "grpc after run: []"]


def test_the_embedding_example_runs(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(REPO / "examples/embedding/run_hello.py")], capture_output=True,
                            text=True, timeout=120, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("job hello-")
    assert "  train-b   queued (attempt 1) NonZeroExit" in lines  # the deliberate failure, retried
    assert lines[-2:-1] == ["job succeeded: 4 tasks succeeded"]
    assert lines[-1].startswith("best model: hello-") and "(loss 0.0" in lines[-1]
    finished = [line.split()[0] for line in lines if line.split()[1:2] == ["succeeded"]]
    assert finished.index("prepare") == 0 and finished[-1] == "evaluate"
