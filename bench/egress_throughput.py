"""What the egress proxy costs an install: one large download straight from a loopback server,
and the same through the driver's forwarder and the worker's proxy (the path a build's runtime
stage takes), in one run.

    .venv/bin/python bench/egress_throughput.py [--megabytes 512] [--rounds 3] [--parallel 8]

The server is a ThreadingHTTPServer on 127.0.0.1 (allowed to the proxy as the operator would).
Measured: MB/s of one download (best of `--rounds`), and the wall time of `--parallel` downloads
at once (uv fetches many files together); the ratios proxy/direct, and the proxy's slower speed
against the goal: well above what a package index gives over a network (250 MB/s).
"""

from __future__ import annotations

import argparse
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from service.egress import EgressPolicy, EgressProxy
from worker.driver.egress import forward

CHUNK = 1024 * 1024
GOAL_MBPS = 250


def serve(size: int) -> ThreadingHTTPServer:
    block = b"w" * CHUNK

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            for _ in range(size // CHUNK):
                self.wfile.write(block)

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def download(connect: Callable[[], socket.socket], request: bytes, size: int) -> None:
    with connect() as sock:
        sock.sendall(request)
        got = 0
        while chunk := sock.recv(1 << 20):
            got += len(chunk)
            if got >= size:  # the head and the whole body
                break
    assert got >= size, f"only {got} bytes"


def timed(action: Callable[[], None], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=8)
    args = parser.parse_args()
    size = args.megabytes * CHUNK
    server = serve(size)
    port = server.server_address[1]
    direct_request = f"GET /big.whl HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    proxied_request = (
        f"GET http://127.0.0.1:{port}/big.whl HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    )
    with tempfile.TemporaryDirectory() as tmp:
        policy = EgressPolicy.allowing(f"127.0.0.1:{port}")
        with EgressProxy(Path(tmp) / "proxy.sock", policy) as proxy:
            inside = forward(str(proxy.path))  # the loopback port a stage's uv talks to

            def direct() -> socket.socket:
                return socket.create_connection(("127.0.0.1", port))

            def through() -> socket.socket:
                return socket.create_connection(("127.0.0.1", inside))

            results = {}
            for name, connect, request in (
                ("direct", direct, direct_request),
                ("egress proxy", through, proxied_request),
            ):

                def once(c: Callable[[], socket.socket] = connect, r: bytes = request) -> None:
                    download(c, r, size)

                def many(c: Callable[[], socket.socket] = connect, r: bytes = request) -> None:
                    with ThreadPoolExecutor(args.parallel) as pool:
                        for f in [pool.submit(download, c, r, size) for _ in range(args.parallel)]:
                            f.result()

                results[name] = (timed(once, args.rounds), timed(many, 1))
    server.shutdown()
    for name, (single, together) in results.items():
        print(
            f"{name:>13}: one download {args.megabytes / single:8.0f} MB/s; "
            f"{args.parallel} at once {together:6.2f} s"
        )
    (d1, dn), (p1, pn) = results["direct"], results["egress proxy"]
    print(f"ratio of speed, proxy/direct: one {d1 / p1:.2f}, {args.parallel} at once {dn / pn:.2f}")
    slowest = min(args.megabytes / p1, args.megabytes * args.parallel / pn)
    print(
        f"goal: the proxy carries over {GOAL_MBPS} MB/s (a 1 Gbit/s link is 119 MB/s): "
        f"{slowest:.0f} MB/s, {slowest / GOAL_MBPS:.1f}x the goal"
    )


if __name__ == "__main__":
    main()
