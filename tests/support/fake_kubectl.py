"""A FAKE kubectl for the k8s runtime's tests: no Kubernetes cluster can run here.

Installed on PATH as `kubectl` (see `install`), it appends each invocation's arguments to a JSON-lines
file and answers like kubectl would:
- `kustomize DIR`: runs the REAL kubectl (rendering needs no cluster);
- `apply ...`, `rollout status ...`: prints kubectl's success line, or fails (exit 1) when the
  arguments contain $FAKE_KUBECTL_FAIL;
- `port-forward ... service/NAME LOCAL:REMOTE`: listens on 127.0.0.1:LOCAL and relays each connection
  to 127.0.0.1:$FAKE_KUBECTL_FORWARD_<NAME> (a stand-in for the Service, started by the test).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
from pathlib import Path

LOG_ENV = "FAKE_KUBECTL_LOG"
REAL_ENV = "FAKE_KUBECTL_REAL"
FAIL_ENV = "FAKE_KUBECTL_FAIL"
FORWARD_ENV_PREFIX = "FAKE_KUBECTL_FORWARD_"


def install(bin_dir: Path, log: Path, real_kubectl: str) -> dict[str, str]:
    """Write `bin_dir/kubectl` (this module as a script); return the env that puts it first on PATH."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "kubectl"
    script.write_text(
        f"#!{sys.executable}\nimport runpy\nrunpy.run_path({str(Path(__file__))!r}, run_name='__main__')\n"
    )
    script.chmod(0o755)
    return {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        LOG_ENV: str(log),
        REAL_ENV: real_kubectl,
    }


def calls(log: Path) -> list[list[str]]:
    """The recorded argument lists (without argv[0]), in call order."""
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def _relay(client: socket.socket, port: int) -> None:
    with client, socket.create_connection(("127.0.0.1", port)) as upstream:

        def pump(src: socket.socket, dst: socket.socket) -> None:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                with contextlib.suppress(OSError):
                    dst.shutdown(socket.SHUT_WR)

        back = threading.Thread(target=pump, args=(upstream, client), daemon=True)
        back.start()
        pump(client, upstream)
        back.join(timeout=30)


def _port_forward(args: list[str]) -> int:
    target = next(a for a in args if a.startswith("service/"))
    local = int(next(a for a in args if ":" in a and a.split(":")[0].isdigit()).split(":")[0])
    name = target.removeprefix("service/")
    backend = int(os.environ[FORWARD_ENV_PREFIX + name.upper()])
    server = socket.create_server(("127.0.0.1", local))
    print(f"Forwarding from 127.0.0.1:{local} -> {backend}", flush=True)
    while True:
        client, _ = server.accept()
        threading.Thread(target=_relay, args=(client, backend), daemon=True).start()


def main() -> int:
    args = sys.argv[1:]
    with open(os.environ[LOG_ENV], "a") as log:
        log.write(json.dumps(args) + "\n")
    verb = next((a for a in args if not a.startswith("-") and a not in _option_values(args)), "")
    failing = os.environ.get(FAIL_ENV)
    if failing and failing in " ".join(args):
        print(f"error: (fake kubectl) {failing} failed as the test asked", file=sys.stderr)
        return 1
    if verb == "kustomize":
        os.execv(os.environ[REAL_ENV], [os.environ[REAL_ENV], *args])
    if verb == "apply":
        print("(fake kubectl) serverside-applied")
        return 0
    if verb == "rollout":
        print(f"(fake kubectl) {args[args.index('status') + 1]} successfully rolled out")
        return 0
    if verb == "port-forward":
        return _port_forward(args)
    print(f"error: (fake kubectl) unexpected command {args}", file=sys.stderr)
    return 2


def _option_values(args: list[str]) -> set[str]:
    """Values of options given as two words (`--namespace mlstack`), so they are not taken for the verb."""
    takes_value = {"--namespace", "-n", "--context", "--address", "-k", "--selector", "-l"}
    return {args[i + 1] for i, a in enumerate(args[:-1]) if a in takes_value}


if __name__ == "__main__":
    sys.exit(main())
