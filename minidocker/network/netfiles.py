"""Chapter 05: the container's ``/etc/hosts``, ``/etc/hostname`` and ``/etc/resolv.conf``.

Programs find names through three small files. An image cannot know what to put in them (its
hostname, its address, the resolvers of the host it will run on), so the engine writes them per
container, in the container's state directory, and bind-mounts them over the image's copies
just before pivot_root, as Docker does. They stay writable, and vanish with the container.

``resolv.conf`` needs care: the host's resolver may be on its loopback (``127.0.0.53`` for
systemd-resolved, ``127.0.0.1`` for dnsmasq), which inside the container's own network
namespace is the *container's* loopback, where nothing answers. Such nameservers are dropped;
if none is left, public resolvers are used instead, with a warning (Docker's rule).

Example::

    >>> text, warnings = resolv_conf("nameserver 127.0.0.53\\nsearch lan\\n")
    >>> print(text, warnings)
    search lan
    nameserver 8.8.8.8
    nameserver 8.8.4.4
     ['no usable nameserver in the host's resolv.conf (only loopback ones): using 8.8.8.8 8.8.4.4']
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import stat
import sys
from collections import namedtuple
from collections.abc import Sequence
from pathlib import Path

from minidocker.core.paths import private_dir, state_dir
from minidocker.core.process import EngineError
from minidocker.core.rootpath import fd_path, open_in_root
from minidocker.core.syscalls import MS_BIND, mount

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: a stage's start does not pay for typing
    from typing import Any

__all__ = ["DEFAULT_NAMESERVERS", "NAMES", "Custom", "add_arguments", "bind_files", "custom_resolv_conf",
           "files_dir", "host_resolv_conf", "hosts_file",
           "parse_add_host", "remove_files", "resolv_conf", "write_files"]

DEFAULT_NAMESERVERS = ("8.8.8.8", "8.8.4.4")
NAMES = ("hosts", "hostname", "resolv.conf")
LOCALHOST = """\
127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
fe00::0\tip6-localnet
ff00::0\tip6-mcastprefix
ff02::1\tip6-allnodes
ff02::2\tip6-allrouters
"""


class Custom(namedtuple("Custom", "hosts dns search options", defaults=((), (), (), ()))):
    """What ``docker run`` may add to the three files: ``--add-host``, ``--dns``, ``--dns-search``,
    ``--dns-option``. Empty: the files as the host's and the container's own name make them."""

    __slots__ = ()
    hosts: tuple[tuple[str, str], ...]  # (name, address), in the order given
    dns: tuple[str, ...]
    search: tuple[str, ...]
    options: tuple[str, ...]

    @classmethod
    def of(cls, args: Any) -> Custom:
        """From a stage's parsed options (those :func:`add_arguments` adds); checked, in Docker's words."""
        for server in args.dns:
            try:
                ipaddress.ip_address(server)
            except ValueError:
                raise EngineError(f"{server} is not an ip address") from None
        return cls(tuple(parse_add_host(h) for h in args.add_host), tuple(args.dns),
                   tuple(args.dns_search), tuple(args.dns_option))


def add_arguments(group: Any) -> None:
    """``--add-host``, ``--dns``, ``--dns-search``, ``--dns-option``: to an argument group of a stage."""
    group.add_argument("--add-host", action="append", default=[], metavar="HOST:IP",
                       help="add a line to /etc/hosts (IP may be host-gateway: the bridge's address)")
    group.add_argument("--dns", action="append", default=[], metavar="IP", help="a nameserver, instead of "
                       "the host's")
    group.add_argument("--dns-search", action="append", default=[], metavar="DOMAIN",
                       help="a search domain, instead of the host's")
    group.add_argument("--dns-option", action="append", default=[], metavar="OPTION",
                       help="a resolv.conf option, instead of the host's (e.g. ndots:2)")


def parse_add_host(text: str) -> tuple[str, str]:
    """``--add-host HOST:IP`` (or ``HOST=IP``) -> ``(HOST, IP)``, in the docker CLI's words if malformed.

    ``host-gateway`` stays as it is: the bridge's address, known at attach time, replaces it.
    """
    name, sep, address = text.partition("=") if "=" in text else text.partition(":")
    if not sep or not name or not address:
        raise EngineError(f'bad format for add-host: "{text}"')
    address = address.strip("[]")
    if address != "host-gateway":
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise EngineError(f'invalid IP address in add-host: "{address}"') from None
    return name, address


def hosts_file(hostname: str, ip: str | None, extra: Sequence[tuple[str, str]] = ()) -> str:
    """``/etc/hosts`` as Docker writes it: localhost, the ``--add-host`` lines, and the container's own
    name at its address."""
    return LOCALHOST + "".join(f"{address}\t{name}\n" for name, address in extra) + (
        f"{ip}\t{hostname}\n" if ip else "")


def custom_resolv_conf(text: str, custom: Custom) -> str:
    """``resolv.conf`` with ``--dns``, ``--dns-search``, ``--dns-option`` replacing the host's lines."""
    replaced = {"nameserver": custom.dns, "search": custom.search, "options": custom.options}
    lines = [line for line in text.splitlines() if not (line.split()[:1] and replaced.get(line.split()[0]))]
    if custom.search:
        lines.append("search " + " ".join(custom.search))
    lines += [f"nameserver {s}" for s in custom.dns]
    if custom.options:
        lines.append("options " + " ".join(custom.options))
    return "".join(f"{line}\n" for line in lines)


# exercise 05.9: The container's resolv.conf from the host's
# hint: keep non-nameserver lines; keep IPv4 nameservers that are not loopback; none left: the
#   DEFAULT_NAMESERVERS and a warning. Return the text (one line each) and the warnings.
# --8<-- [start:resolv_conf]
def resolv_conf(host_text: str) -> tuple[str, list[str]]:
    """The container's ``resolv.conf`` from the host's: without loopback (or IPv6) nameservers.

    ``search`` and ``options`` lines are kept. Returns the text and the warnings to show.
    """
    kept, servers, warnings = [], [], []
    for line in host_text.splitlines():
        words = line.split()
        if words[:1] == ["nameserver"] and len(words) > 1:
            try:
                address = ipaddress.ip_address(words[1].split("%")[0])
            except ValueError:
                continue
            if address.version == 4 and not address.is_loopback:
                servers.append(words[1])
        elif words:
            kept.append(line)
    if not servers:
        servers = list(DEFAULT_NAMESERVERS)
        warnings.append("no usable nameserver in the host's resolv.conf (only loopback ones): "
                        f"using {' '.join(servers)}")
    return "".join(f"{line}\n" for line in kept + [f"nameserver {s}" for s in servers]), warnings
# --8<-- [end:resolv_conf]


def host_resolv_conf() -> str:
    """The host's ``/etc/resolv.conf``; behind systemd-resolved's stub, the real upstream list."""
    text = Path("/etc/resolv.conf").read_text() if os.path.exists("/etc/resolv.conf") else ""
    upstream = Path("/run/systemd/resolve/resolv.conf")
    if "nameserver 127.0.0.53" in text and upstream.exists():
        text = upstream.read_text()
    return text


def files_dir(container_id: str) -> Path:
    """Where a container's files live: ``STATE/containers/ID`` (Docker: ``/var/lib/docker/containers/ID``)."""
    return private_dir(state_dir() / "containers") / container_id  # root's alone: config.json too


def remove_files(directory: Path) -> None:
    """Remove the three files, and the directory if nothing else is left in it."""
    for name in NAMES:
        with contextlib.suppress(FileNotFoundError):
            (directory / name).unlink()
    with contextlib.suppress(OSError):
        directory.rmdir()


def write_files(directory: Path, hostname: str, ip: str | None, mode: str,
                custom: Custom | None = None) -> dict[str, str]:
    """Write the three files for a container into ``directory``; return ``{target: source}``.

    ``mode`` is the network mode: with ``host`` the container shares the host's network, so it
    gets the host's ``hosts`` and ``resolv.conf`` (its loopback *is* the host's), plus ``custom``'s.
    """
    custom = Custom() if custom is None else custom
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if mode == "host":
        hosts = Path("/etc/hosts").read_text() if os.path.exists("/etc/hosts") else LOCALHOST
        hosts += "".join(f"{address}\t{name}\n" for name, address in custom.hosts)
        resolv = host_resolv_conf()
    else:
        hosts = hosts_file(hostname, ip, custom.hosts)
        resolv, warnings = resolv_conf(host_resolv_conf()) if not custom.dns else (host_resolv_conf(), [])
        for warning in warnings:
            print(f"minidocker: warning: {warning}", file=sys.stderr)
    resolv = custom_resolv_conf(resolv, custom)
    files = {"/etc/hosts": hosts, "/etc/hostname": f"{hostname}\n", "/etc/resolv.conf": resolv}
    for target, text in files.items():
        (directory / target.rsplit("/", 1)[1]).write_text(text)
    return {target: str(directory / target.rsplit("/", 1)[1]) for target in files}


# exercise 05.10: Bind-mount the DNS files over the image's
# hint: for each target: open_in_root(root, target, O_PATH) (never os.path.join: the image's symlinks);
#   if it is no regular file, create it (O_CREAT) only in an overlay root (_filesystem_at), else skip it
#   and print one note; mount(source, fd_path(fd), None, MS_BIND).
# --8<-- [start:bind_files]
def bind_files(root: str, files: dict[str, str]) -> None:
    """Bind-mount each ``source`` over ``root/target``, in the container, before pivot_root.

    A bind mount needs an existing file to cover. In a root of the container's own (an overlay,
    chapter 04) a missing one is created; a plain directory may be shared by every container
    (like the busybox rootfs), so nothing is created there: the file is skipped with a note.
    Each target is found inside ``root`` as the container will see it (``core.rootpath``): an
    image whose ``/etc/hosts`` is a symlink to ``/tmp/x`` gets ``root/tmp/x``, never the host's.
    """
    private = _filesystem_at(root) == "overlay"
    skipped = []
    for target, source in files.items():
        try:
            fd = open_in_root(root, target, os.O_PATH)
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise FileNotFoundError(target)
        except OSError:
            try:
                if not private:
                    raise
                fd = open_in_root(root, target, os.O_WRONLY | os.O_CREAT, 0o644)  # ENOENT: no parent
            except OSError:
                skipped.append(target)
                continue
        try:
            mount(source, fd_path(fd), None, MS_BIND)
        finally:
            os.close(fd)
    if skipped:
        print(f"minidocker: note: {' '.join(skipped)} missing in the shared directory {root}: not "
              "created there (use an image, or create empty files)", file=sys.stderr)
# --8<-- [end:bind_files]


def _filesystem_at(path: str) -> str:
    """The type of the filesystem mounted at ``path`` (the last mount on it wins), or ""."""
    found = ""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4].replace("\\040", " ") == path:
                found = fields[fields.index("-") + 1]
    return found
