"""Chapter 12's embedded DNS, measured: the answer latency seen from inside a network namespace.

Standalone, no daemon: a network namespace of our own (``ip netns add``) with a process in it, an
:class:`~minidocker.networks.dns.EmbeddedDNS` attached to that process, run in a loop thread of
this process, and a tiny upstream DNS server (dnspython, 127.0.0.1 of the host) it forwards to. A
client process inside the namespace asks N queries one after the other and reports each one's
round trip; we print the medians of:

- a name the embedded DNS answers itself (``web``);
- a name it forwards to the upstream (``example.test``);
- the same name asked of the upstream directly, from the host (what forwarding adds is the difference).

As root, from the repository::

    .venv/bin/python -m tests.bench.dns            # 1,000 queries each
    .venv/bin/python -m tests.bench.dns --queries 200

The same pieces are the fixtures of ``tests/test_12_dns.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

ROOT = Path(__file__).resolve().parent.parent.parent
_names = itertools.count()


# -- a network namespace with a process in it ---------------------------------------------------

class Namespace:
    """``ip netns add`` a unique name, ``lo`` up, and a ``sleep`` inside whose pid the DNS attaches to."""

    def __init__(self) -> None:
        self.name = f"mddns{os.getpid()}x{next(_names)}"
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        self.process: subprocess.Popen[bytes] | None = None
        try:
            subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=True)
            self.process = subprocess.Popen(["ip", "netns", "exec", self.name, "sleep", "600"])
            mine = os.stat(f"/run/netns/{self.name}").st_ino
            deadline = time.monotonic() + 10
            while not self._inside(mine):  # ip netns exec has not called setns yet
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the process in {self.name} did not enter it")
                time.sleep(0.005)
        except BaseException:
            self.close()
            raise

    def _inside(self, inode: int) -> bool:
        assert self.process is not None
        with contextlib.suppress(OSError):
            return os.stat(f"/proc/{self.process.pid}/ns/net").st_ino == inode
        return False

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def run(self, argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """``argv`` run inside the namespace, from the repository, output captured."""
        return subprocess.run(["ip", "netns", "exec", self.name, *argv], capture_output=True, text=True,
                              timeout=timeout, cwd=ROOT)

    def ask(self, queries: list[dict[str, Any]], timeout: float = 60) -> list[dict[str, Any]]:
        """Each query (see :func:`_one`) asked by a client process inside the namespace; its results."""
        result = self.run([sys.executable, "-m", "tests.bench.dns", "client", json.dumps(queries)], timeout)
        if result.returncode != 0:
            raise RuntimeError(f"the DNS client failed: {result.stderr[-2000:]}")
        return json.loads(result.stdout)

    def kill(self) -> None:
        """End the process inside (the namespace stays, named, until :meth:`close`)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def close(self) -> None:
        self.kill()
        subprocess.run(["ip", "netns", "del", self.name], check=False, capture_output=True)


# -- an upstream DNS server of our own ---------------------------------------------------------

class Upstream:
    """A tiny authoritative server on 127.0.0.1 (UDP and TCP, one port): ``records`` name -> IPv4s.

    Names in ``records`` get their A records (TC over UDP when they do not fit), names in
    ``silent`` no answer at all, any other name NXDOMAIN. ``asked`` counts queries by transport.
    """

    def __init__(self, records: dict[str, list[str]], silent: set[str] | None = None) -> None:
        self.records, self.silent = records, silent or set()
        self.asked = {"udp": 0, "tcp": 0}
        for _ in range(50):  # a UDP port whose TCP twin is free too
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.udp.bind(("127.0.0.1", 0))
            self.port = self.udp.getsockname()[1]
            self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                self.tcp.bind(("127.0.0.1", self.port))
                break
            except OSError:
                self.udp.close()
                self.tcp.close()
        else:
            raise OSError("no free port for both UDP and TCP on 127.0.0.1")
        self.tcp.listen(16)
        self.address = f"127.0.0.1:{self.port}"
        self._stop = False
        self._threads = [threading.Thread(target=self._serve_udp, daemon=True),
                         threading.Thread(target=self._serve_tcp, daemon=True)]
        for thread in self._threads:
            thread.start()

    def _answer(self, wire: bytes, limit: int) -> bytes | None:
        query = dns.message.from_wire(wire)
        name = query.question[0].name.to_text(omit_final_dot=True).lower()
        if name in self.silent:
            return None
        response = dns.message.make_response(query)
        if name in self.records:
            response.answer.append(dns.rrset.from_text_list(query.question[0].name, 60, dns.rdataclass.IN,
                                                            dns.rdatatype.A, self.records[name]))
        else:
            response.set_rcode(dns.rcode.NXDOMAIN)
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            response.answer = []
            response.flags |= dns.flags.TC
            return response.to_wire()

    def _serve_udp(self) -> None:
        while not self._stop:
            try:
                wire, peer = self.udp.recvfrom(4096)
            except OSError:
                return
            self.asked["udp"] += 1
            with contextlib.suppress(Exception):
                reply = self._answer(wire, 512)
                if reply is not None:
                    self.udp.sendto(reply, peer)

    def _serve_tcp(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                return
            with conn, contextlib.suppress(Exception):
                conn.settimeout(5)
                size = struct.unpack("!H", conn.recv(2, socket.MSG_WAITALL))[0]
                self.asked["tcp"] += 1
                reply = self._answer(conn.recv(size, socket.MSG_WAITALL), 65535)
                if reply is not None:
                    conn.sendall(struct.pack("!H", len(reply)) + reply)

    def close(self) -> None:
        self._stop = True
        for sock in (self.udp, self.tcp):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:
            thread.join(5)


# -- an asyncio loop in a thread (the daemon's, here) -------------------------------------------

class LoopThread:
    """An asyncio loop running in a thread: ``call(coro)`` runs a coroutine there and returns its result."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def call(self, coroutine: Coroutine[Any, Any, Any], timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def sync(self, function: Callable[[], Any]) -> Any:
        """``function()`` run in the loop's thread (to read state the loop changes)."""
        async def run() -> Any:
            return function()
        return self.call(run())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@contextlib.contextmanager
def serving(lookup: Callable[[str, str], list[str] | None], upstreams: list[str], timeout: float = 2.0,
            **options: Any) -> Iterator[tuple[LoopThread, Any]]:
    """An EmbeddedDNS in a loop thread, closed at the end (every container detached)."""
    from minidocker.networks.dns import EmbeddedDNS

    loop = LoopThread()
    try:
        server = loop.sync(lambda: EmbeddedDNS(lookup, upstreams, timeout, **options))
        try:
            yield loop, server
        finally:
            loop.call(server.close())
    finally:
        loop.close()


# -- the client, run inside the namespace ------------------------------------------------------

def _one(spec: dict[str, Any]) -> dict[str, Any]:
    """One query: ``name``, ``type`` (A), ``proto`` (udp|tcp), ``server`` (127.0.0.11), ``port`` (53),
    ``timeout`` (3 s), ``edns`` (a payload size, or none); or ``raw``: hex bytes sent as one datagram,
    the reply's hex back (None if none within ``timeout``)."""
    server, port, timeout = spec.get("server", "127.0.0.11"), spec.get("port", 53), spec.get("timeout", 3.0)
    started = time.perf_counter()
    if "raw" in spec:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout)
            sock.sendto(bytes.fromhex(spec["raw"]), (server, port))
            try:
                return {"reply": sock.recv(65535).hex()}
            except TimeoutError:
                return {"reply": None}
    edns = spec.get("edns")
    query = dns.message.make_query(spec["name"], spec.get("type", "A"),
                                   use_edns=0 if edns else None, payload=edns or 1232)
    try:
        if spec.get("proto", "udp") == "tcp":
            response = dns.query.tcp(query, server, timeout=timeout, port=port)
        else:
            response = dns.query.udp(query, server, timeout=timeout, port=port, ignore_unexpected=True)
    except Exception as e:
        return {"error": type(e).__name__, "elapsed": time.perf_counter() - started}
    records = [r.to_text() for rrset in response.answer for r in rrset]
    return {"rcode": dns.rcode.to_text(response.rcode()), "tc": bool(response.flags & dns.flags.TC),
            "records": records, "elapsed": time.perf_counter() - started}


def _latencies(spec: dict[str, Any], n: int) -> list[float]:
    """``n`` round trips of one query over UDP, one socket, seconds each (a failure raises)."""
    query = dns.message.make_query(spec["name"], "A")
    server, port = spec.get("server", "127.0.0.11"), spec.get("port", 53)
    found = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        for i in range(n):
            query.id = i & 0xFFFF
            wire = query.to_wire()
            started = time.perf_counter()
            sock.sendto(wire, (server, port))
            while True:
                reply = sock.recv(65535)
                if reply[:2] == wire[:2]:
                    break
            found.append(time.perf_counter() - started)
            assert dns.message.from_wire(reply).rcode() == dns.rcode.NOERROR, spec
    return found


def client(argv: list[str]) -> None:
    specs = json.loads(argv[0])
    out = []
    for spec in specs:
        if "latencies" in spec:
            out.append({"latencies": _latencies(spec, spec["latencies"])})
        else:
            out.append(_one(spec))
    print(json.dumps(out))


# -- the measurement ---------------------------------------------------------------------------

def measure(queries: int = 1000) -> dict[str, float]:
    """Median round trips (seconds) of ``queries`` queries: ours answered, forwarded, the upstream direct."""
    upstream = Upstream({"example.test": ["192.0.2.7"]})
    try:
        with serving(lambda asker, name: ["10.89.0.2"] if name == "web" else None,
                     [upstream.address]) as (loop, server):
            netns = Namespace()
            try:
                loop.call(server.attach("c" * 64, netns.pid))
                warm = [{"latencies": 20, "name": "web"}, {"latencies": 20, "name": "example.test"}]
                ours, forwarded = netns.ask([*warm, {"latencies": queries, "name": "web"},
                                             {"latencies": queries, "name": "example.test"}])[2:]
            finally:
                netns.close()
        there = {"name": "example.test", "server": "127.0.0.1", "port": upstream.port}
        direct = subprocess.run(
            [sys.executable, "-m", "tests.bench.dns", "client",
             json.dumps([{"latencies": 20, **there}, {"latencies": queries, **there}])],
            capture_output=True, text=True, check=True, cwd=ROOT, timeout=300)
        upstream_direct = json.loads(direct.stdout)[1]
    finally:
        upstream.close()
    return {"answered": statistics.median(ours["latencies"]),
            "forwarded": statistics.median(forwarded["latencies"]),
            "upstream direct": statistics.median(upstream_direct["latencies"]),
            "queries": queries}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["client"]:
        client(argv[1:])
        return 0
    parser = argparse.ArgumentParser(prog="python -m tests.bench.dns", description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=1000, help="queries per median (default 1000)")
    options = parser.parse_args(argv)
    numbers = measure(options.queries)
    print(f"embedded DNS, median of {options.queries} UDP queries from inside a network namespace:")
    for what in ("answered", "forwarded", "upstream direct"):
        print(f"  {what:16} {numbers[what] * 1e6:8.0f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
