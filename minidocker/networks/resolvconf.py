"""Chapter 12: the host's resolvers, which the embedded DNS forwards to, and a container's resolv.conf.

A container on a user-defined network asks ``127.0.0.11`` (our :mod:`minidocker.networks.dns`);
what that server does not know it forwards to the resolvers the host itself uses, the
``nameserver`` lines of ``/etc/resolv.conf``. On a host running systemd-resolved that file names
only its stub, ``127.0.0.53``; the real upstreams are then in ``/run/systemd/resolve/resolv.conf``
(Docker makes the same substitution). Both files are read bounded (64 KiB), so an odd file costs
nothing.

Example::

    >>> nameservers("search lan\\nnameserver 192.0.2.1\\nnameserver 192.0.2.2  # backup\\n")
    ['192.0.2.1', '192.0.2.2']
    >>> print(for_container("search lan\\nnameserver 192.0.2.1\\n"), end="")
    search lan
    nameserver 127.0.0.11
    options ndots:0
"""

from __future__ import annotations

import ipaddress

__all__ = ["EMBEDDED", "SYSTEMD_RESOLV_CONF", "for_container", "host_upstreams", "nameservers"]

EMBEDDED = "127.0.0.11"  # where the embedded DNS answers, inside every container of a user-defined network
SYSTEMD_STUB = "127.0.0.53"
SYSTEMD_RESOLV_CONF = "/run/systemd/resolve/resolv.conf"
MAX_BYTES = 64 * 1024


def _read(path: str) -> str:
    """At most MAX_BYTES of ``path`` as text; '' when it cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read(MAX_BYTES).decode(errors="replace")
    except OSError:
        return ""


def _lines(text: str) -> list[list[str]]:
    """The words of each line, comments (``#`` or ``;``) cut off, empty lines dropped."""
    found = []
    for line in text.splitlines():
        for mark in "#;":
            line = line.split(mark, 1)[0]
        if line.split():
            found.append(line.split())
    return found


def nameservers(text: str) -> list[str]:
    """The valid IP addresses of the ``nameserver`` lines of a resolv.conf, in order, without repeats."""
    found: list[str] = []
    for words in _lines(text):
        if words[0] == "nameserver" and len(words) > 1:
            try:
                address = str(ipaddress.ip_address(words[1].split("%", 1)[0]))
            except ValueError:
                continue
            if address not in found:
                found.append(address)
    return found


def host_upstreams(path: str = "/etc/resolv.conf", systemd: str = SYSTEMD_RESOLV_CONF) -> list[str]:
    """The host's resolvers: ``path``'s nameservers, or systemd-resolved's when ``path`` lists only its stub.

    An empty list means the host has none (the embedded DNS then answers SERVFAIL for what it
    would forward).
    """
    found = nameservers(_read(path))
    if found == [SYSTEMD_STUB]:
        found = nameservers(_read(systemd)) or found
    return found


def for_container(host_text: str) -> str:
    """A container's ``/etc/resolv.conf`` on a user-defined network, from the host's one.

    Only the embedded DNS as nameserver; the host's ``search``/``domain`` lines kept (a short name
    the embedded DNS does not know is then tried with the host's domains, as on the host);
    ``options ndots:0`` so that a dotted name is asked as given first.
    """
    lines = [" ".join(words) for words in _lines(host_text) if words[0] in ("search", "domain")]
    return "\n".join([*lines, f"nameserver {EMBEDDED}", "options ndots:0"]) + "\n"
