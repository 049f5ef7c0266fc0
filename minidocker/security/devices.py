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
import struct
from collections.abc import Sequence
from pathlib import Path

from minidocker.cgroups.cgroup import Cgroup
from minidocker.core import syscalls as _syscalls

__all__ = ["DOCKER_DEVICES", "device_program", "restrict", "restrict_v1", "restrict_v2"]

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
