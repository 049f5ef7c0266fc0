"""Chapter 05: published ports: ``-p [HOSTIP:][HOSTPORT:]CONTAINERPORT[/tcp|udp]``, parsed and reserved.

A published port is a promise that traffic for ``HOSTIP:HOSTPORT`` on the host reaches
``CONTAINERPORT`` in the container. The firewall (``network/firewall.py``) keeps it by rewriting the
destination (DNAT). But NAT never *checks* anything: a rule for port 8080 would silently steal the
traffic of a web server already listening there. So, like Docker's ``docker-proxy``, the engine
first *reserves* each port with a real socket, bound and listening, held as long as the container
runs: a port already in use fails right here, before anything is configured, and while the
container runs nothing else can take its port. The socket never sees a packet: NAT rewrites the
packets before the host looks for a socket.

Example::

    >>> parse_publish("127.0.0.1:8080:80")
    PortMapping(container_port=80, host_port=8080, host_ip='127.0.0.1', protocol='tcp')
    >>> str(parse_publish("5353:53/udp"))
    '0.0.0.0:5353->53/udp'
    >>> [(m.host_port > 0, s.type) for m, s in reserve([parse_publish("80")])]   # any free port
    [(True, <SocketKind.SOCK_STREAM: 1>)]
"""

from __future__ import annotations

import errno
import ipaddress
from collections import namedtuple
from collections.abc import Sequence

from minidocker.core.process import EngineError

TYPE_CHECKING = False
if TYPE_CHECKING:  # for annotations only
    import socket

__all__ = ["PortMapping", "parse_publish", "reserve"]


class PortMapping(namedtuple("PortMapping", "container_port host_port host_ip protocol",
                             defaults=(0, "", "tcp"))):
    """``host_ip:host_port`` on the host leads to ``container_port`` in the container.

    ``host_port`` 0 (the default) means "any free port" (chosen by :func:`reserve`); ``host_ip`` ""
    (the default) means every address of the host, as ``0.0.0.0`` does for a server; ``protocol``
    is ``tcp`` unless ``udp`` is asked for.
    """

    __slots__ = ()
    container_port: int
    host_port: int
    host_ip: str
    protocol: str

    def __str__(self) -> str:
        """As ``docker ps`` shows it: ``0.0.0.0:8080->80/tcp``."""
        return f"{self.host_ip or '0.0.0.0'}:{self.host_port}->{self.container_port}/{self.protocol}"


# exercise 05.6: Parse -p [HOSTIP:][HOSTPORT:]CONTAINERPORT[/PROTO]
# hint: partition on "/" for the protocol (tcp by default, or udp); rsplit(":", 2) for the rest;
#   validate the IPv4 address and the ports (host port 0 or empty: any); "0.0.0.0" means "".
# --8<-- [start:parse_publish]
def parse_publish(text: str) -> PortMapping:
    """Parse one ``-p`` value: ``[HOSTIP:][HOSTPORT:]CONTAINERPORT[/tcp|udp]``, as ``docker run`` does.

    ``-p 80`` publishes container port 80 on a free host port; ``-p 127.0.0.1::80`` does the same
    on loopback only. Raises :class:`EngineError` with the fix for anything else.
    """
    spec, _, protocol = text.partition("/")
    protocol = protocol or "tcp"
    if protocol not in ("tcp", "udp"):
        raise EngineError(f"invalid protocol {protocol!r} in -p {text}: use tcp or udp")
    parts = spec.rsplit(":", 2)
    host_ip = parts[0] if len(parts) == 3 else ""
    host_port = parts[-2] if len(parts) >= 2 else ""
    if host_ip.startswith("[") or ":" in host_ip:
        raise EngineError(f"-p {text}: IPv6 host addresses are not supported (minidocker networks are IPv4)")
    if host_ip:
        try:
            ipaddress.IPv4Address(host_ip)
        except ValueError:
            raise EngineError(f"invalid host address {host_ip!r} in -p {text}: use an IPv4 address "
                              "such as 127.0.0.1") from None
    numbers = []
    for value, what in ((parts[-1], "container port"), (host_port or "0", "host port")):
        if not value.isdigit() or not (0 < int(value) < 65536 or (what == "host port" and value == "0")):
            raise EngineError(f"invalid {what} {value!r} in -p {text}: use a number from 1 to 65535 "
                              "(ranges are not supported)")
        numbers.append(int(value))
    return PortMapping(numbers[0], numbers[1], "" if host_ip == "0.0.0.0" else host_ip, protocol)
# --8<-- [end:parse_publish]


# exercise 05.8: Hold each published host port with a socket, or fail cleanly
# hint: import socket in the function (a stage without -p never needs it); a socket per mapping
#   (SOCK_STREAM with SO_REUSEADDR and listen for tcp, SOCK_DGRAM for udp), bound to (host_ip or
#   0.0.0.0, host_port); EADDRINUSE and EADDRNOTAVAIL become EngineErrors; on any failure close every
#   socket taken so far; return the mappings with the real host port.
# --8<-- [start:reserve]
def reserve(mappings: Sequence[PortMapping]) -> list[tuple[PortMapping, socket.socket]]:
    """Take each host port with a socket, or fail with one line and take none.

    TCP sockets also listen: two listening sockets can never share a port (SO_REUSEADDR only
    forgives connections left in TIME_WAIT), so another server, or another container, cannot
    take the port while we hold it. Host port 0 becomes the free port the kernel picked.
    """
    import socket  # only when ports are published: --network none or host never needs it

    taken: list[tuple[PortMapping, socket.socket]] = []
    try:
        for mapping in mappings:
            kind = socket.SOCK_STREAM if mapping.protocol == "tcp" else socket.SOCK_DGRAM
            sock = socket.socket(socket.AF_INET, kind)
            taken.append((mapping, sock))
            if kind == socket.SOCK_STREAM:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            address = mapping.host_ip or "0.0.0.0"
            try:
                sock.bind((address, mapping.host_port))
                if kind == socket.SOCK_STREAM:
                    sock.listen(1)
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    raise EngineError(f"cannot publish {mapping}: port {mapping.host_port}/"
                                      f"{mapping.protocol} is already in use on {address}; "
                                      "choose another host port") from None
                if e.errno == errno.EADDRNOTAVAIL:
                    raise EngineError(f"cannot publish {mapping}: {address} is not an address of this "
                                      "host") from None
                raise EngineError(f"cannot publish {mapping}: {e.strerror}") from None
            taken[-1] = (mapping._replace(host_port=sock.getsockname()[1]), sock)
    except BaseException:
        for _, sock in taken:
            sock.close()
        raise
    return taken
# --8<-- [end:reserve]
