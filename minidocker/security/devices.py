"""Chapter 06: the devices cgroup: which device files a container may open, whatever it creates.

A device file is just a name for a (type, major, minor) triple: ``b 254:0`` is the first virtio
disk, ``c 1:1`` the host's physical memory. Anyone allowed to mknod(2) (``CAP_MKNOD``, which
Docker keeps so that images can ship device files) can make a name for *any* device, anywhere.
What stops the container from then opening the host's disk is the devices cgroup: a list of the
devices its processes may read, write or create, checked by the kernel at every open.

* cgroup v1: the ``devices`` controller's files: write ``a`` to ``devices.deny``, then one line per
  allowed device to ``devices.allow`` (``c 1:3 rwm``: char device 1:3, read, write, mknod);
* cgroup v2 has no such files: the rules are an eBPF program of type ``BPF_PROG_TYPE_CGROUP_DEVICE``
  attached to the cgroup, which the kernel runs at each open and mknod. We write it ourselves
  (:func:`device_program`), as runc does.

Example (the engine, before the container joins its cgroup)::

    >>> restrict(Cgroup.open(container_id))           # Docker's allow-list, DOCKER_DEVICES
"""

from __future__ import annotations

import ctypes
import os
import stat
import struct
from collections import namedtuple
from collections.abc import Sequence
from pathlib import Path

from minidocker.cgroups.cgroup import Cgroup
from minidocker.core import syscalls as _syscalls
from minidocker.core.process import EngineError
from minidocker.core.rootpath import mkdirs_in_root

__all__ = ["DOCKER_DEVICES", "Device", "add_devices", "device_program", "parse_device", "restrict",
           "restrict_v1", "restrict_v2"]

# What Docker allows: create any device node (images carry some), use only these.
DOCKER_DEVICES = (
    "c *:* m", "b *:* m",  # mknod of anything
    "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",  # null zero full random urandom
    "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm",  # tty console ptmx, the ptys
    "c 10:200 rwm",  # /dev/net/tun
)

_BPF_PROG_LOAD, _BPF_PROG_ATTACH = 5, 8
_BPF_PROG_TYPE_CGROUP_DEVICE, _BPF_CGROUP_DEVICE, _BPF_F_ALLOW_MULTI = 15, 6, 2
_TYPES = {"b": 1, "c": 2}  # BPF_DEVCG_DEV_BLOCK, BPF_DEVCG_DEV_CHAR
_ACCESS = {"m": 1, "r": 2, "w": 4}  # BPF_DEVCG_ACC_MKNOD, _READ, _WRITE


# --8<-- [start:restrict_v1]
def restrict_v1(directory: Path, rules: Sequence[str] = DOCKER_DEVICES) -> None:
    """cgroup v1: deny every device, then allow ``rules``, in the cgroup's ``devices`` directory."""
    (directory / "devices.deny").write_text("a")
    for rule in rules:
        (directory / "devices.allow").write_text(rule)
# --8<-- [end:restrict_v1]


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One eBPF instruction: opcode, registers (dst in the low nibble), 16-bit offset, 32-bit immediate."""
    return struct.pack("<BBhi", code, dst | src << 4, off, imm)


_LDXW, _MOV_X, _MOV_K, _AND_K, _RSH_K, _JNE_K, _EXIT = 0x61, 0xBF, 0xB7, 0x57, 0x77, 0x55, 0x95


# exercise 06.10: An eBPF device filter for cgroup v2
# hint: load access_type, major, minor (offsets 0, 4, 8 of the context in r1) into r2..r5, split
#   access_type into type (& 0xFFFF) and access (>> 16); per rule, each check that fails jumps over
#   the rest of the rule (JNE with an offset), then r0 = 1 and exit; after the rules r0 = 0, exit.
# --8<-- [start:device_program]
def device_program(rules: Sequence[str] = DOCKER_DEVICES) -> bytes:
    """The eBPF program that allows exactly ``rules`` (v1's syntax): 1 means allow, 0 deny.

    The kernel passes ``struct bpf_cgroup_dev_ctx {u32 access_type; u32 major; u32 minor;}`` in r1,
    where ``access_type`` is ``access << 16 | type``. Each rule becomes a few comparisons that jump
    past the rule when they fail, and an ``exit`` with 1 when they all hold.
    """
    code = [_insn(_LDXW, 2, 1, 0), _insn(_MOV_X, 3, 2), _insn(_AND_K, 2, imm=0xFFFF),
            _insn(_RSH_K, 3, imm=16), _insn(_LDXW, 4, 1, 4), _insn(_LDXW, 5, 1, 8)]
    for rule in rules:
        kind, numbers, access = rule.split()
        major, minor = numbers.split(":")
        allowed = sum(_ACCESS[a] for a in access)
        checks = []
        if kind != "a":
            checks.append(lambda skip, t=_TYPES[kind]: [_insn(_JNE_K, 2, off=skip, imm=t)])
        if allowed != 7:  # (requested & ~allowed) must be 0
            checks.append(lambda skip, a=allowed: [_insn(_MOV_X, 6, 3), _insn(_AND_K, 6, imm=~a & 7),
                                                   _insn(_JNE_K, 6, off=skip, imm=0)])
        for register, value in ((4, major), (5, minor)):
            if value != "*":
                checks.append(lambda skip, r=register, v=int(value): [_insn(_JNE_K, r, off=skip, imm=v)])
        body = [_insn(_MOV_K, 0, imm=1), _insn(_EXIT)]
        for check in reversed(checks):  # build from the end: each check skips what follows it
            body = check(len(body)) + body
        code += body
    code += [_insn(_MOV_K, 0, imm=0), _insn(_EXIT)]
    return b"".join(code)
# --8<-- [end:device_program]


def restrict_v2(directory: Path, rules: Sequence[str] = DOCKER_DEVICES) -> None:
    """cgroup v2: load :func:`device_program` and attach it to the cgroup ``directory``."""
    program = device_program(rules)
    insns = ctypes.create_string_buffer(program, len(program))
    license_text = ctypes.create_string_buffer(b"MIT")
    load = struct.pack("<IIQQIIQII16sII", _BPF_PROG_TYPE_CGROUP_DEVICE, len(program) // 8,
                       ctypes.addressof(insns), ctypes.addressof(license_text), 0, 0, 0, 0, 0,
                       b"minidocker_dev", 0, _BPF_CGROUP_DEVICE)
    prog = _syscalls.bpf(_BPF_PROG_LOAD, load)
    try:
        cgroup = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            _syscalls.bpf(_BPF_PROG_ATTACH, struct.pack("<IIIII", cgroup, prog, _BPF_CGROUP_DEVICE,
                                                        _BPF_F_ALLOW_MULTI, 0))
        finally:
            os.close(cgroup)
    finally:
        os.close(prog)  # the cgroup holds the program now


# --8<-- [start:restrict]
def restrict(cgroup: Cgroup, rules: Sequence[str] = DOCKER_DEVICES) -> None:
    """Let the processes of ``cgroup`` use only the devices ``rules`` allow, on v1 or v2."""
    if cgroup.version == 1:
        restrict_v1(cgroup.path("devices"), rules)
    else:
        restrict_v2(cgroup.directories[0], rules)
# --8<-- [end:restrict]


class Device(namedtuple("Device", "host inside permissions kind rdev mode")):  # not typing's: 3 ms a start
    """One ``--device``: the host's node, where the container sees it, what the cgroup allows of it.

    ``host`` and ``inside`` are paths, ``permissions`` some of ``rwm``, ``kind`` ``c`` or ``b``,
    ``rdev`` the node's device number and ``mode`` its permission bits on the host.
    """

    __slots__ = ()

    @property
    def rule(self) -> str:
        """The devices cgroup's line for it: ``c 1:3 rwm``."""
        return f"{self.kind} {os.major(self.rdev)}:{os.minor(self.rdev)} {self.permissions}"


# --8<-- [start:parse_device]
def parse_device(text: str) -> Device:
    """``--device /dev/HOST[:/dev/INSIDE[:rwm]]`` -> a :class:`Device`, the host's node looked at now.

    A device is only a (type, major, minor) triple: the host's node gives it, the container gets a
    node of its own with the same numbers, and a rule in its devices cgroup. Errors in dockerd's words.
    Example: ``parse_device("/dev/null:/dev/mynull:rw").rule == "c 1:3 rw"``.
    """
    host, _, rest = text.partition(":")
    inside, _, permissions = rest.partition(":")
    inside, permissions = inside or host, permissions or "rwm"
    if not host.startswith("/") or not inside.startswith("/") or ".." in inside.split("/") or \
            not permissions or set(permissions) - set("rwm") or len(set(permissions)) != len(permissions):
        raise EngineError(f"invalid device mapping {text!r}: use /dev/HOST[:/dev/INSIDE[:rwm]]")
    try:
        info = os.stat(host)
    except OSError as e:
        raise EngineError(f'error gathering device information while adding custom device "{host}": '
                          f"{(e.strerror or str(e)).lower()}") from None
    if not (stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode)):
        raise EngineError(f'error gathering device information while adding custom device "{host}": '
                          "not a device node")
    return Device(host, inside, permissions, "c" if stat.S_ISCHR(info.st_mode) else "b", info.st_rdev,
                  stat.S_IMODE(info.st_mode))
# --8<-- [end:parse_device]


# --8<-- [start:add_devices]
def add_devices(root: str, found: Sequence[Device]) -> None:
    """In the container, before pivot_root: a node for each device, with the host's numbers and mode.

    The parent directories are made inside ``root`` as the container sees it (``core.rootpath``):
    an image's symlink never sends the node outside. In a user namespace mknod(2) is refused, so
    the host's node is bind-mounted over an empty file instead, as chapter 02 does for /dev/null.
    """
    for device in found:
        parent = mkdirs_in_root(root, os.path.dirname(device.inside))
        try:
            name = os.path.basename(device.inside)
            with_type = stat.S_IFCHR if device.kind == "c" else stat.S_IFBLK
            try:
                os.unlink(name, dir_fd=parent)  # the image's file, or chapter 02's node, of that name
            except FileNotFoundError:
                pass
            try:
                os.mknod(name, device.mode | with_type, device.rdev, dir_fd=parent)
                os.chmod(name, device.mode, dir_fd=parent)  # mknod applies the umask
            except PermissionError:
                os.close(os.open(name, os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=parent))
                _syscalls.mount(device.host, f"/proc/self/fd/{parent}/{name}", None, _syscalls.MS_BIND)
        finally:
            os.close(parent)
# --8<-- [end:add_devices]
