"""Chapter 12: the embedded DNS, answering at 127.0.0.11 inside each container of a user-defined network.

Docker's containers on a user-defined network find each other by name: ``/etc/resolv.conf`` says
``nameserver 127.0.0.11``, and the engine answers there. Not a DNS server on the bridge, reachable
by every container alike, but one *inside each container's network namespace*, so that it knows
who is asking: a name resolves only for containers that share a network with it.

How one process serves every container: a socket belongs for life to the network namespace it was
created in, and setns(2) switches only the calling thread. So for each container a short-lived
thread steps into ``/proc/PID/ns/net``, creates a UDP and a TCP socket bound to
``127.0.0.11:53`` there, steps back and ends; the daemon's asyncio loop then serves all those
sockets side by side. Nothing runs inside the container, and no address or port is added to it.
A container's engine makes its sockets so before its process runs and hands them to the daemon
(``handoff.py``), and the daemon adopts them (:meth:`~EmbeddedDNS.adopt`): the first query is answered.
:meth:`~EmbeddedDNS.attach` binds in the daemon instead: a container that runs already (the daemon
restarted, ``network connect``), or one whose engine found no daemon to hand them to.

What is answered, for a query from container ``C`` about ``NAME`` (``lookup(C, NAME)`` decides):

- a list of addresses: an A record for each, the order rotated on every query (round robin, as
  Docker does for an alias several containers share); AAAA and other types: no records (NOERROR);
- ``None``, a name that is not ours on C's networks (another network's container included): the
  query is forwarded to the host's resolvers (UDP, then TCP when the answer is truncated), and
  their answer relayed, SERVFAIL if none answers within ``timeout``; a container attached with
  ``forward=False`` (only on ``--internal`` networks: no way out, not even by DNS) gets REFUSED;
- PTR for ``in-addr.arpa`` names, when a ``reverse(C, address)`` callable is given, the same way.

Every read is bounded: a datagram of more than 4096 bytes is dropped, a TCP message is at most
65535 bytes (its 2-byte length), an idle TCP connection is closed after 10 s, at most 64 at once
per container and 256 forwarded queries in flight per container. A query that does not parse is
answered FORMERR when its header can be read and dropped otherwise; any error is logged and
concerns that one query. When a container's process exits, its sockets are closed at once (a
pidfd in the loop): they would otherwise keep its network namespace, and its veth, alive.

Example (inside the daemon's loop)::

    dns = EmbeddedDNS(lambda asker, name: {"web": ["172.30.0.2"]}.get(name))
    await dns.attach(container_id, pid)   # nslookup web in the container: 172.30.0.2
    await dns.detach(container_id)
    await dns.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.IN.A
import dns.rrset

from minidocker.core.errors import Conflict, NotFound
from minidocker.networks.handoff import netns_of, sockets_in
from minidocker.networks.resolvconf import EMBEDDED, host_upstreams

__all__ = ["PORT", "EmbeddedDNS", "Lookup", "Reverse", "size_limit"]

log = logging.getLogger("minidockerd")

Lookup = Callable[[str, str], "list[str] | None"]  # (asker's container id, name) -> IPv4s, [] or None
Reverse = Callable[[str, str], "list[str] | None"]  # (asker's container id, IPv4) -> names or None

PORT = 53
TTL = 600  # seconds, as Docker's embedded DNS
UDP_READ_MAX = 4096  # a bigger datagram is dropped unread
UDP_ANSWER_MIN = 512  # RFC 1035's UDP size, without EDNS
UDP_ANSWER_MAX = 4096  # what we send over UDP at most, whatever EDNS offers
TCP_IDLE = 10.0  # seconds a TCP connection may wait for its next message
TCP_CONNECTIONS = 64  # open at once, per container
IN_FLIGHT = 256  # forwarded queries waiting for an upstream, per container
QR = 0x8000  # header flag: this message is a response


@dataclass
class _Endpoint:
    """The sockets serving one network namespace, and the containers answered through them."""

    netns: tuple[int, int]  # (st_dev, st_ino) of the namespace
    members: list[str]  # container ids; the first is the asker lookup() is told of
    pidfds: dict[str, int] = field(default_factory=dict)  # container id -> pidfd of its process
    udp: asyncio.DatagramTransport | None = None
    tcp: asyncio.Server | None = None
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    writers: set[asyncio.StreamWriter] = field(default_factory=set)
    closed: bool = False

    @property
    def asker(self) -> str:
        return self.members[0]




async def _in_thread(function: Callable[[], Any]) -> Any:
    """``function()`` in a new thread of its own (never a pooled one), awaited from the loop."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(value: Any, error: BaseException | None) -> None:
        if not future.done():
            if error is None:
                future.set_result(value)
            else:
                future.set_exception(error)

    def body() -> None:
        try:
            value, error = function(), None
        except BaseException as e:  # handed to the awaiting coroutine
            value, error = None, e
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(settle, value, error)

    threading.Thread(target=body, name="dns-setns", daemon=True).start()
    return await future


def _upstream(text: str) -> tuple[str, int]:
    """``"192.0.2.1"``, ``"192.0.2.1:5353"``, ``"::1"`` or ``"[::1]:5353"`` -> (address, port)."""
    with contextlib.suppress(ValueError):
        return str(ipaddress.ip_address(text)), PORT
    host, _, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    try:
        return str(ipaddress.ip_address(host)), int(port)
    except ValueError:
        raise ValueError(f"not a DNS server address: {text!r} (want IP or IP:PORT)") from None


def size_limit(query: dns.message.Message, tcp: bool) -> int:
    """The largest answer to ``query``: 65535 over TCP; over UDP 512, or what its EDNS offers up to 4096."""
    if tcp:
        return 65535
    if query.edns >= 0:
        return max(UDP_ANSWER_MIN, min(query.payload, UDP_ANSWER_MAX))
    return UDP_ANSWER_MIN


def _formerr(wire: bytes) -> bytes:
    """A FORMERR answer to a message whose header (12 bytes) is all we could read of it."""
    ident, flags = struct.unpack("!HH", wire[:4])
    flags = QR | (flags & 0x7900) | dns.rcode.FORMERR  # keep opcode and RD
    return struct.pack("!HHHHHH", ident, flags, 0, 0, 0, 0)


class EmbeddedDNS:
    """One DNS server for all the containers of a daemon, run in the caller's asyncio loop."""

    def __init__(self, lookup: Lookup, upstreams: list[str] | None = None, timeout: float = 2.0, *,
                 reverse: Reverse | None = None, address: str = EMBEDDED, port: int = PORT) -> None:
        """``lookup(asker, name)``: see the module. ``upstreams``: ``IP`` or ``IP:PORT`` strings,
        default the host's resolvers (:func:`~minidocker.networks.resolvconf.host_upstreams`, read
        again when /etc/resolv.conf changes). ``timeout``: seconds a forwarded query may take in all.
        """
        self.lookup = lookup
        self.reverse = reverse
        self.timeout = timeout
        self.address, self.port = address, port
        self._fixed = None if upstreams is None else [_upstream(u) for u in upstreams]
        self._host: tuple[float, list[tuple[str, int]]] = (-1.0, [])
        self._turn = itertools.count()
        self._by_container: dict[str, _Endpoint] = {}
        self._by_netns: dict[tuple[int, int], _Endpoint] = {}
        self._forward: dict[str, bool] = {}
        self._servers: dict[str, list[tuple[str, int]]] = {}  # container id -> its own upstreams (--dns)
        self._lock = asyncio.Lock()

    # -- containers ---------------------------------------------------------------------------

    @property
    def attached(self) -> list[str]:
        """The ids of the containers answered now."""
        return list(self._by_container)

    # --8<-- [start:attach]
    # --8<-- [start:attach_part1]
    async def attach(self, container_id: str, pid: int, *, forward: bool = True) -> None:
    # --8<-- [end:attach_part1]
        """Answer at 127.0.0.11:53 (UDP and TCP) in the network namespace of process ``pid``.

        Attaching a container again (a new process after a restart) replaces its sockets. A
        container sharing a namespace already served (``--network container:NAME``) is answered
        through the same sockets, as the container that was attached first there. ``forward=False``
        refuses names that are not ours instead of forwarding them. Raises NotFound when the
        process is gone, Conflict when 127.0.0.11:53 is taken in its namespace.
        """
        # --8<-- [start:attach_part2]
        async with self._lock:
            current = self._by_container.get(container_id)
            with contextlib.suppress(OSError):
                info = os.stat(f"/proc/{pid}/ns/net")
                if current is not None and current.netns == (info.st_dev, info.st_ino):
                    self._forward[container_id] = forward  # connected to one more network: same sockets
                    return
            await self._detach(container_id)
        # --8<-- [end:attach_part2]
            # A closed datagram transport lets go of its socket on the loop's next turn: wait for it,
            # or binding 127.0.0.11:53 again in the same namespace finds the address in use.
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            gone = NotFound(f"cannot serve DNS to container {container_id[:12]}: its process {pid} is gone")
            try:
                pidfd = os.pidfd_open(pid)
            except ProcessLookupError as e:
                raise gone from e
            try:
                info = os.stat(f"/proc/{pid}/ns/net")
            except FileNotFoundError as e:
                os.close(pidfd)
                raise gone from e
            # --8<-- [start:attach_part3]
            netns = (info.st_dev, info.st_ino)
            sockets = None
            if netns not in self._by_netns:
                try:
                    sockets = await _in_thread(lambda: sockets_in(pid, self.address, self.port))
            # --8<-- [end:attach_part3]
                except OSError as e:
                    os.close(pidfd)
                    where = f"{self.address}:{self.port} in container {container_id[:12]}'s network namespace"
                    if isinstance(e, FileNotFoundError | ProcessLookupError):
                        raise gone from e
                    if e.errno == 98:  # EADDRINUSE
                        raise Conflict(f"cannot serve DNS at {where}: the address is in use") from e
                    raise
            # --8<-- [start:attach_part4]
            await self._serve(container_id, netns, pidfd, sockets, forward)
            # --8<-- [end:attach_part4]

    async def adopt(self, container_id: str, pidfd: int, udp: socket.socket, tcp: socket.socket, *,
                    forward: bool = True) -> None:
        """Answer through ``udp`` and ``tcp``, bound to 127.0.0.11:53 in the container's namespace
        before its process ran (by the engine: ``handoff.py``); ``pidfd`` is its process's.

        What :meth:`attach` does, without binding: queries already waiting in the sockets are
        answered now. Takes the three descriptors, whatever happens. A container attached in that
        namespace already keeps its sockets (these are closed).
        """
        async with self._lock:
            try:
                netns = netns_of(udp)
            except OSError:
                udp.close(), tcp.close(), os.close(pidfd)
                raise
            current = self._by_container.get(container_id)
            if current is not None and current.netns == netns:
                udp.close(), tcp.close(), os.close(pidfd)
                self._forward[container_id] = forward
                return
            await self._detach(container_id)
            if netns in self._by_netns:
                udp.close(), tcp.close()
                sockets = None
            else:
                sockets = (udp, tcp)
            await self._serve(container_id, netns, pidfd, sockets, forward)

    # --8<-- [start:attach_part5]
    async def _serve(self, container_id: str, netns: tuple[int, int], pidfd: int,
                     sockets: tuple[socket.socket, socket.socket] | None, forward: bool) -> None:
    # --8<-- [end:attach_part5]
        """Answer ``container_id`` in ``netns``: through ``sockets`` (new), or its endpoint's (None).

        Takes ``pidfd`` and the sockets; its process's exit detaches it.
        """
        # --8<-- [start:attach_part6]
        loop = asyncio.get_running_loop()
        endpoint = self._by_netns.get(netns)
        if sockets is not None:
            udp, tcp = sockets
            endpoint = _Endpoint(netns, [container_id])
            try:
                endpoint.udp, _ = await loop.create_datagram_endpoint(
                    lambda: _Datagrams(self, endpoint), sock=udp)
                endpoint.tcp = await asyncio.start_server(
                    lambda r, w: self._stream(endpoint, r, w), sock=tcp, backlog=TCP_CONNECTIONS)
        # --8<-- [end:attach_part6]
            except BaseException:
                if endpoint.udp is not None:
                    endpoint.udp.close()
                udp.close()
                tcp.close()
                os.close(pidfd)
                raise
            # --8<-- [start:attach_part7]
            self._by_netns[netns] = endpoint
        else:
            endpoint.members.append(container_id)
        self._forward[container_id] = forward
        endpoint.pidfds[container_id] = pidfd
        self._by_container[container_id] = endpoint
        loop.add_reader(pidfd, self._exited, container_id, pidfd)
            # --8<-- [end:attach_part7]
    # --8<-- [end:attach]

    async def detach(self, container_id: str) -> None:
        """Stop answering ``container_id`` (its namespace's sockets close with its last container)."""
        async with self._lock:
            await self._detach(container_id)

    async def close(self) -> None:
        """Stop answering every container."""
        async with self._lock:
            for container_id in list(self._by_container):
                await self._detach(container_id)

    def _exited(self, container_id: str, pidfd: int) -> None:
        """The process of ``container_id`` exited: detach it (unless it was attached again since)."""
        loop = asyncio.get_running_loop()
        loop.remove_reader(pidfd)
        endpoint = self._by_container.get(container_id)
        if endpoint is not None and endpoint.pidfds.get(container_id) == pidfd:
            task = loop.create_task(self._detach_if(container_id, pidfd))
            task.add_done_callback(_log_failure)

    async def _detach_if(self, container_id: str, pidfd: int) -> None:
        async with self._lock:
            endpoint = self._by_container.get(container_id)
            if endpoint is not None and endpoint.pidfds.get(container_id) == pidfd:
                await self._detach(container_id)

    async def _detach(self, container_id: str) -> None:
        """Forget ``container_id``; close its namespace's sockets if no other container uses them."""
        endpoint = self._by_container.pop(container_id, None)
        self._forward.pop(container_id, None)
        self._servers.pop(container_id, None)
        if endpoint is None:
            return
        endpoint.members.remove(container_id)
        pidfd = endpoint.pidfds.pop(container_id)
        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_reader(pidfd)
        os.close(pidfd)
        if endpoint.members:
            return
        endpoint.closed = True
        del self._by_netns[endpoint.netns]
        if endpoint.udp is not None:
            endpoint.udp.close()
        if endpoint.tcp is not None:
            endpoint.tcp.close()
        for writer in list(endpoint.writers):
            writer.close()
        for task in list(endpoint.tasks):
            task.cancel()
        await asyncio.gather(*endpoint.tasks, return_exceptions=True)
        if endpoint.tcp is not None:
            await endpoint.tcp.wait_closed()

    # -- answering ----------------------------------------------------------------------------

    def set_upstreams(self, container_id: str, servers: list[str] | None) -> None:
        """``docker run --dns IP``: the servers this container's unknown names are forwarded to.

        None or empty: the daemon's (the fixed list, or the host's).
        Example: ``set_upstreams(cid, ["9.9.9.9"])``.
        """
        if servers:
            self._servers[container_id] = [_upstream(s) for s in servers]
        else:
            self._servers.pop(container_id, None)

    def _upstreams(self, asker: str = "") -> list[tuple[str, int]]:
        """The servers to forward to: the asker's own, the fixed list, or the host's (re-read if changed)."""
        if asker in self._servers:
            return self._servers[asker]
        if self._fixed is not None:
            return self._fixed
        try:
            stamp = os.stat("/etc/resolv.conf").st_mtime
        except OSError:
            stamp = 0.0
        if stamp != self._host[0]:
            self._host = (stamp, [(address, PORT) for address in host_upstreams()])
        return self._host[1]

    # --8<-- [start:respond]
    # --8<-- [start:respond_part1]
    def respond(self, asker: str, wire: bytes, tcp: bool = False) -> bytes | dns.message.Message | None:
    # --8<-- [end:respond_part1]
        """The answer to the query ``wire`` from container ``asker``, over TCP or UDP.

        Bytes to send back; a parsed query when it must be forwarded (see :meth:`forward`, with
        :func:`limit`); None when nothing is to be sent (too short to have a header, or not a query).
        """
        # --8<-- [start:respond_part2]
        if len(wire) < 12 or struct.unpack("!H", wire[2:4])[0] & QR:
            return None
        try:
            query = dns.message.from_wire(wire)
        except Exception:  # dnspython raises many kinds for a malformed message
            return _formerr(wire)
        limit = size_limit(query, tcp)
        if query.opcode() != dns.opcode.QUERY:
            return self._wire(query, dns.rcode.NOTIMP, [], limit)
        if len(query.question) != 1:
            return self._wire(query, dns.rcode.FORMERR, [], limit)
        question = query.question[0]
        try:
            records = self._local(asker, question)
        except Exception:
            log.exception("embedded DNS: lookup of %s for %s failed", question.name, asker[:12])
            return self._wire(query, dns.rcode.SERVFAIL, [], limit)
        if records is not None:
            return self._wire(query, dns.rcode.NOERROR, records, limit)
        if not self._forward.get(asker, True):
            return self._wire(query, dns.rcode.REFUSED, [], limit)
        return query
        # --8<-- [end:respond_part2]

    # --8<-- [start:respond_part3]
    def _local(self, asker: str, question: dns.rrset.RRset) -> list[dns.rrset.RRset] | None:
        """The records we answer ``question`` with (maybe none), or None when it is not ours."""
    # --8<-- [end:respond_part3]
        if question.rdclass != dns.rdataclass.IN or question.name == dns.name.root:
            return None
        if question.rdtype == dns.rdatatype.PTR:
            return self._pointer(asker, question)
        name = question.name.to_text(omit_final_dot=True).lower()
        found = self.lookup(asker, name)
        if found is None:
            return None
        addresses = []
        for text in found:
            with contextlib.suppress(ValueError):
                address = ipaddress.ip_address(text)
                if address.version == 4 and str(address) not in addresses:
                    addresses.append(str(address))
        if question.rdtype not in (dns.rdatatype.A, dns.rdatatype.ANY) or not addresses:
            return []
        # --8<-- [start:respond_part4]
        turn = next(self._turn) % len(addresses)
        records = dns.rrset.RRset(question.name, dns.rdataclass.IN, dns.rdatatype.A)
        records.update_ttl(TTL)
        for address in addresses[turn:] + addresses[:turn]:  # an rdataset keeps the order of its adds
            records.add(dns.rdtypes.IN.A.A(dns.rdataclass.IN, dns.rdatatype.A, address))
        return [records]
        # --8<-- [end:respond_part4]
    # --8<-- [end:respond]

    def _pointer(self, asker: str, question: dns.rrset.RRset) -> list[dns.rrset.RRset] | None:
        """PTR for one of our addresses (``reverse`` knows it), else None (forwarded)."""
        if self.reverse is None:
            return None
        labels = question.name.to_text(omit_final_dot=True).lower().split(".")
        if len(labels) != 6 or labels[4:] != ["in-addr", "arpa"]:
            return None
        try:
            address = str(ipaddress.IPv4Address(".".join(reversed(labels[:4]))))
        except ValueError:
            return None
        names = self.reverse(asker, address)
        if names is None:
            return None
        targets = [dns.name.from_text(n) for n in dict.fromkeys(names)]
        if not targets:
            return []
        return [dns.rrset.from_text_list(question.name, TTL, dns.rdataclass.IN, dns.rdatatype.PTR,
                                         [t.to_text() for t in targets])]

    def _wire(self, query: dns.message.Message, rcode: int,
              answer: list[dns.rrset.RRset] | dns.message.Message, limit: int) -> bytes:
        """``query``'s response with ``rcode`` and ``answer`` (or an upstream's response), as bytes.

        When it does not fit ``limit`` bytes: the same response without records, with TC set, so
        the client asks again over TCP.
        """
        if isinstance(answer, dns.message.Message):
            response = answer
        else:
            response = dns.message.make_response(query, recursion_available=True, our_payload=UDP_ANSWER_MAX)
            response.set_rcode(rcode)
            response.answer = answer
        try:
            return response.to_wire(max_size=limit, want_shuffle=False)  # our order: the rotation
        except dns.exception.TooBig:
            short = dns.message.make_response(query, recursion_available=True, our_payload=UDP_ANSWER_MAX)
            short.set_rcode(response.rcode())
            short.flags |= dns.flags.TC
            return short.to_wire(max_size=limit)
        except Exception:  # an upstream's response we cannot write back
            log.exception("embedded DNS: cannot encode the response to %s", query.question)
            return self._wire(query, dns.rcode.SERVFAIL, [], limit)

    async def forward(self, query: dns.message.Message, limit: int, asker: str = "") -> bytes:
        """``query`` asked of the upstreams in turn (UDP, then TCP if truncated), their answer relayed.

        The whole takes at most ``timeout`` seconds, shared among the upstreams still to try;
        SERVFAIL when none answered.
        """
        upstreams = self._upstreams(asker)
        deadline = time.monotonic() + self.timeout
        for index, (address, port) in enumerate(upstreams):
            budget = (deadline - time.monotonic()) / (len(upstreams) - index)
            if budget <= 0:
                break
            try:
                response = await dns.asyncquery.udp(query, address, timeout=budget, port=port,
                                                    ignore_unexpected=True)
                if response.flags & dns.flags.TC:
                    budget = deadline - time.monotonic()
                    response = await dns.asyncquery.tcp(query, address, timeout=max(budget, 0.001), port=port)
            except (dns.exception.DNSException, OSError, EOFError, ValueError) as e:
                log.debug("embedded DNS: upstream %s:%s: %s", address, port, e or type(e).__name__)
                continue
            return self._wire(query, 0, response, limit)
        return self._wire(query, dns.rcode.SERVFAIL, [], limit)

    async def answer(self, asker: str, wire: bytes, tcp: bool = False) -> bytes | None:
        """:meth:`respond`, forwarding when it says so."""
        result = self.respond(asker, wire, tcp)
        if isinstance(result, dns.message.Message):
            return await self.forward(result, size_limit(result, tcp), asker)
        return result

    # -- TCP ----------------------------------------------------------------------------------

    async def _stream(self, endpoint: _Endpoint, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        """One TCP connection: length-prefixed queries answered in order until idle, EOF or garbage."""
        if endpoint.closed or len(endpoint.writers) >= TCP_CONNECTIONS:
            writer.close()
            return
        endpoint.writers.add(writer)
        try:
            while not endpoint.closed:
                size = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), TCP_IDLE))[0]
                wire = await asyncio.wait_for(reader.readexactly(size), TCP_IDLE)
                reply = await self.answer(endpoint.asker, wire, tcp=True)
                if reply is None:
                    break
                writer.write(struct.pack("!H", len(reply)) + reply)
                await asyncio.wait_for(writer.drain(), TCP_IDLE)
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError, OSError):
            pass
        except Exception:
            log.exception("embedded DNS: TCP connection of %s", endpoint.asker[:12])
        finally:
            endpoint.writers.discard(writer)
            writer.close()


class _Datagrams(asyncio.DatagramProtocol):
    """UDP queries of one namespace: ours answered at once, the others forwarded in a task each."""

    def __init__(self, server: EmbeddedDNS, endpoint: _Endpoint) -> None:
        self.server, self.endpoint = server, endpoint
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) > UDP_READ_MAX or self.endpoint.closed or not self.endpoint.members:
            return
        try:
            result = self.server.respond(self.endpoint.asker, data)
            if isinstance(result, dns.message.Message):
                if len(self.endpoint.tasks) >= IN_FLIGHT:
                    return
                task = asyncio.get_running_loop().create_task(
                    self._forward(result, size_limit(result, False), addr))
                self.endpoint.tasks.add(task)
                task.add_done_callback(self.endpoint.tasks.discard)
                return
            if isinstance(result, bytes) and self.transport is not None:
                self.transport.sendto(result, addr)
        except Exception:
            log.exception("embedded DNS: UDP query of %s", self.endpoint.asker[:12])

    async def _forward(self, query: dns.message.Message, limit: int, addr: tuple[str, int]) -> None:
        reply = await self.server.forward(query, limit, self.endpoint.asker)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("embedded DNS: UDP error for %s: %s", self.endpoint.asker[:12], exc)


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("embedded DNS: %s", task.exception())
