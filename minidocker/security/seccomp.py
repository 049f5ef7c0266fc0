"""Chapter 06: seccomp: a filter the kernel runs on every system call, compiled from Docker's profile format.

Capabilities decide what a root process may do; seccomp decides which *system calls* a process may
make at all. Most of the kernel's attack surface is reachable by anyone, root or not: 460-odd
syscalls, some rarely used and buggy (``keyctl``, ``userfaultfd``, ``bpf``...). Docker's default
profile lists what ordinary programs need and makes everything else fail with ``EPERM``; a few
syscalls are allowed only when the container also has the capability that makes them useful
(``mount`` with ``CAP_SYS_ADMIN``, ``reboot`` with ``CAP_SYS_BOOT``).

A profile is JSON (``--security-opt seccomp=PROFILE.json``): a default action, and rules that name
syscalls, an action, and optionally conditions on the arguments and on the container's
capabilities, architecture and kernel. :func:`compile_profile` turns it into a classic BPF program
(:mod:`minidocker.security.bpf`) for this machine; :func:`install` hands it to the kernel, for good: a
filter cannot be removed, only made stricter by another one.

Run it::

    python -m minidocker.security.seccomp            # the default profile, as JSON: edit it, pass it back
    python -m minidocker.security.seccomp --bpf      # the program it compiles to here, one instruction a line

Example (in the container, last thing before exec)::

    >>> program = compile_profile(default_profile(), capabilities=DOCKER_DEFAULT)
    >>> install(program)                    # from now on mount(2) fails with EPERM
"""

from __future__ import annotations

import errno
import itertools
import os
import struct
import sys
from collections.abc import Collection, Iterator, Sequence

from minidocker.core import syscalls as _syscalls
from minidocker.core.process import EngineError
from minidocker.security import bpf
from minidocker.security.syscall_table import numbers

__all__ = ["ACTIONS", "compile_profile", "default_filter", "default_profile", "install", "load_profile",
           "seccomp_data"]

# <linux/seccomp.h>: what a filter returns. The low 16 bits carry data (the errno for ERRNO).
ACTIONS = {
    "SCMP_ACT_KILL_PROCESS": 0x80000000, "SCMP_ACT_KILL_THREAD": 0x00000000, "SCMP_ACT_KILL": 0x00000000,
    "SCMP_ACT_TRAP": 0x00030000, "SCMP_ACT_ERRNO": 0x00050000, "SCMP_ACT_TRACE": 0x7FF00000,
    "SCMP_ACT_LOG": 0x7FFC0000, "SCMP_ACT_ALLOW": 0x7FFF0000,
}
# <linux/audit.h>: what seccomp_data.arch holds (the ELF machine, 64-bit, little-endian)
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
DOCKER_ARCH = {  # how profiles name our machine (Go's GOARCH, uname -m, libseccomp's)
    "x86_64": {"amd64", "x86_64", "SCMP_ARCH_X86_64"}, "aarch64": {"arm64", "aarch64", "SCMP_ARCH_AARCH64"},
}
X32_SYSCALL_BIT = 0x40000000  # x86-64's other ABI: same arch, numbers with this bit set
FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": _syscalls.SECCOMP_FILTER_FLAG_TSYNC,
         "SECCOMP_FILTER_FLAG_LOG": _syscalls.SECCOMP_FILTER_FLAG_LOG,
         "SECCOMP_FILTER_FLAG_SPEC_ALLOW": _syscalls.SECCOMP_FILTER_FLAG_SPEC_ALLOW}

# --8<-- [start:allowed]
# --8<-- [start:allowed_part1]
# What any program may call: files, memory, processes, signals, time, sockets, IPC. The kernel's
# own permission checks (and the capabilities left) still apply to each call. This is Docker's
# list (moby/profiles, June 2026), call for call: no io_uring_* since Docker 25 (see the chapter).
_ALLOWED = """
    read write open openat openat2 creat close close_range lseek pread64 pwrite64 readv writev preadv
    preadv2 pwritev pwritev2 stat fstat lstat newfstatat statx statfs fstatfs access faccessat faccessat2
    chmod fchmod fchmodat fchmodat2 chown fchown lchown fchownat truncate ftruncate rename renameat
    renameat2 mkdir mkdirat rmdir link linkat unlink unlinkat symlink symlinkat readlink readlinkat
    mknod mknodat getdents getdents64 getcwd chdir fchdir fcntl flock fsync fdatasync sync syncfs
    sync_file_range fallocate fadvise64 readahead copy_file_range sendfile splice tee vmsplice dup dup2
    dup3 pipe pipe2 umask utime utimes utimensat futimesat getxattr lgetxattr fgetxattr setxattr
    lsetxattr fsetxattr listxattr llistxattr flistxattr removexattr lremovexattr fremovexattr
    getxattrat setxattrat listxattrat removexattrat statmount listmount
    inotify_init inotify_init1 inotify_add_watch inotify_rm_watch fanotify_mark name_to_handle_at ioctl
    memfd_create memfd_secret cachestat
    brk mmap munmap mremap mprotect madvise mincore msync mlock mlock2 munlock mlockall munlockall
    remap_file_pages pkey_alloc pkey_free pkey_mprotect membarrier map_shadow_stack mseal uretprobe
    fork vfork execve execveat exit exit_group wait4 waitid getpid getppid gettid getpgid setpgid
    getpgrp getsid setsid getuid geteuid getgid getegid getresuid getresgid setuid setgid setreuid
    setregid setresuid setresgid setfsuid setfsgid getgroups setgroups capget capset prctl
    set_tid_address set_robust_list get_robust_list rseq futex futex_waitv futex_wake futex_wait
    futex_requeue getrlimit setrlimit prlimit64 getrusage getpriority setpriority sched_yield
    sched_getaffinity sched_setaffinity sched_getparam sched_setparam sched_getscheduler
    sched_setscheduler sched_get_priority_max sched_get_priority_min sched_rr_get_interval
    sched_getattr sched_setattr getcpu ioprio_get ioprio_set uname sysinfo times get_thread_area
    set_thread_area kill tkill tgkill pidfd_open pidfd_send_signal process_mrelease restart_syscall
    seccomp landlock_create_ruleset landlock_add_rule landlock_restrict_self
    rt_sigaction rt_sigprocmask rt_sigreturn rt_sigpending rt_sigtimedwait rt_sigqueueinfo
    rt_tgsigqueueinfo rt_sigsuspend sigaltstack signalfd signalfd4 pause alarm
    time gettimeofday clock_gettime clock_getres clock_nanosleep nanosleep getitimer setitimer
    timer_create timer_delete timer_gettime timer_settime timer_getoverrun timerfd_create
    timerfd_gettime timerfd_settime adjtimex clock_adjtime
    select pselect6 poll ppoll epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_wait
    epoll_wait_old epoll_pwait epoll_pwait2 eventfd eventfd2 io_setup io_destroy io_submit io_cancel
    io_getevents io_pgetevents
    socketpair bind connect listen accept accept4 getsockname getpeername sendto recvfrom sendmsg
    recvmsg sendmmsg recvmmsg setsockopt getsockopt shutdown getrandom
    msgget msgsnd msgrcv msgctl semget semop semtimedop semctl shmget shmat shmdt shmctl mq_open
    mq_unlink mq_timedsend mq_timedreceive mq_notify mq_getsetattr
"""
# --8<-- [end:allowed_part1]
# The same calls under the names that 32-bit machines (i386, arm...) give them: *32 for 32-bit
# user ids, *64 file offsets, *_time64 clocks, and the multiplexers socketcall and ipc. A machine
# without them (x86-64) skips them, as libseccomp does.
_ALLOWED_ELSEWHERE = """
    _llseek _newselect chown32 fchown32 lchown32 fcntl64 fstat64 fstatat64 fstatfs64 lstat64 stat64
    statfs64 ftruncate64 truncate64 fadvise64_64 sendfile64 mmap2 getuid32 geteuid32 getgid32
    getegid32 getgroups32 getresgid32 getresuid32 setfsgid32 setfsuid32 setgid32 setgroups32
    setregid32 setresgid32 setresuid32 setreuid32 setuid32 clock_adjtime64 clock_getres_time64
    clock_gettime64 clock_nanosleep_time64 futex_time64 io_pgetevents_time64 mq_timedreceive_time64
    mq_timedsend_time64 ppoll_time64 pselect6_time64 recvmmsg_time64 rt_sigtimedwait_time64
    sched_rr_get_interval_time64 semtimedop_time64 timer_gettime64 timer_settime64 timerfd_gettime64
    timerfd_settime64 utimensat_time64 recv send sigprocmask sigreturn ugetrlimit waitpid
    socketcall ipc riscv_hwprobe
"""
ALLOWED = _ALLOWED.split() + _ALLOWED_ELSEWHERE.split()

# --8<-- [start:allowed_part2]
# Allowed only when the container has the capability that the syscall needs anyway.
WITH_CAPABILITY = {
    "DAC_READ_SEARCH": "open_by_handle_at",
    "SYS_ADMIN": "mount umount umount2 unshare setns clone clone3 sethostname setdomainname fsopen "
                 "fsconfig fsmount fspick move_mount open_tree mount_setattr quotactl quotactl_fd "
                 "fanotify_init lookup_dcookie perf_event_open bpf syslog lsm_get_self_attr "
                 "lsm_set_self_attr lsm_list_modules",
    "SYS_BOOT": "reboot", "SYS_CHROOT": "chroot", "SYS_MODULE": "init_module finit_module delete_module",
    "SYS_PACCT": "acct", "SYS_PTRACE": "ptrace process_vm_readv process_vm_writev kcmp pidfd_getfd "
                                      "process_madvise",
    "SYS_RAWIO": "iopl ioperm", "SYS_TIME": "settimeofday stime clock_settime clock_settime64",
    "SYS_TTY_CONFIG": "vhangup", "SYS_NICE": "get_mempolicy set_mempolicy mbind set_mempolicy_home_node",
    "SYSLOG": "syslog", "BPF": "bpf", "PERFMON": "perf_event_open",
}
# --8<-- [end:allowed_part2]
# --8<-- [end:allowed]

# Calls of one machine only; a rule for another machine does not apply here (see _applies).
FOR_ARCHES = [
    ("ppc64le", "sync_file_range2 swapcontext"),
    ("arm arm64", "arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls"),
    ("amd64 x32", "arch_prctl"), ("amd64 x32 x86", "modify_ldt"),
    ("s390 s390x", "s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr"),
    ("riscv64", "riscv_flush_icache"),
]
ARCH_MAP = {  # Docker's: the 32-bit ABIs each machine also runs (libseccomp reads it, we do not)
    "SCMP_ARCH_X86_64": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"], "SCMP_ARCH_AARCH64": ["SCMP_ARCH_ARM"],
    "SCMP_ARCH_MIPS64": ["SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64N32"],
    "SCMP_ARCH_MIPS64N32": ["SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64"],
    "SCMP_ARCH_MIPSEL64": ["SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64N32"],
    "SCMP_ARCH_MIPSEL64N32": ["SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64"],
    "SCMP_ARCH_S390X": ["SCMP_ARCH_S390"], "SCMP_ARCH_RISCV64": None, "SCMP_ARCH_LOONGARCH64": None,
}

CLONE_NEW_ANY = 0x7E020000  # every CLONE_NEW* flag: clone() may not create namespaces
AF_ALG, AF_VSOCK = 38, 40  # the kernel's crypto API, sockets to the hypervisor: not for containers
REFUSED_FAMILIES = (AF_ALG, AF_VSOCK)
PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)  # Linux, Linux32, UNAME26, both, query


def _outside(index: int, refused: Collection[int]) -> list[list[dict]]:
    """Conditions that hold for every ``args[index]`` but the ``refused`` values: one rule's args each.

    One rule with two ``SCMP_CMP_NE`` conditions on the same argument does not do it: runc (and
    :func:`_rules`) makes a rule of each, and either lets the call through (38 is "not 40"). So:
    below the first, each value in between, above the last.

    Example::

        >>> [(c[0]["op"], c[0]["value"]) for c in _outside(0, [38, 40])]
        [('SCMP_CMP_LT', 38), ('SCMP_CMP_EQ', 39), ('SCMP_CMP_GT', 40)]
    """
    values = sorted(refused)
    between = [v for low, high in itertools.pairwise(values) for v in range(low + 1, high)]
    return [[{"index": index, "value": values[0], "op": "SCMP_CMP_LT"}],
            *([{"index": index, "value": v, "op": "SCMP_CMP_EQ"}] for v in between),
            [{"index": index, "value": values[-1], "op": "SCMP_CMP_GT"}]]


# exercise 06.4: The default profile, in Docker's JSON format
# hint: defaultAction SCMP_ACT_ERRNO with defaultErrnoRet EPERM; one ALLOW rule with ALLOWED; ptrace
#   & co from kernel 4.8; socket for each range of _outside(0, REFUSED_FAMILIES); personality for
#   each of PERSONALITIES; one rule per FOR_ARCHES entry (includes arches); one rule per
#   WITH_CAPABILITY entry (includes caps) with clone without namespace flags (MASKED_EQ; on s390 it
#   is argument 1) and clone3 -> ENOSYS, both excluded when CAP_SYS_ADMIN, after the SYS_ADMIN one.
# --8<-- [start:default_profile]
# --8<-- [start:default_profile_part1]
def default_profile() -> dict:
    # --8<-- [end:default_profile_part1]
    """Docker's default policy, in Docker's profile format: allow what programs need, EPERM the rest.

    Rule for rule the profile of moby/profiles (June 2026). ``socket`` is refused for the families
    of :data:`REFUSED_FAMILIES`. ``clone`` is allowed without ``CAP_SYS_ADMIN`` only if it creates
    no namespace; ``clone3``, whose flags live in memory a filter cannot read, then fails with
    ENOSYS so that libc falls back to clone.

    Example::

        >>> [r["args"][0]["op"] for r in default_profile()["syscalls"] if r["names"] == ["socket"]]
        ['SCMP_CMP_LT', 'SCMP_CMP_EQ', 'SCMP_CMP_GT']
    """
    # --8<-- [start:default_profile_part2]
    allow, no_admin, s390 = "SCMP_ACT_ALLOW", {"caps": ["CAP_SYS_ADMIN"]}, ["s390", "s390x"]

    def no_namespace(index: int) -> list[dict]:  # (flags & CLONE_NEW_ANY) == 0
        return [{"index": index, "value": CLONE_NEW_ANY, "op": "SCMP_CMP_MASKED_EQ"}]

    rules: list[dict] = [
        {"names": list(ALLOWED), "action": allow},
        {"names": ["ptrace", "process_vm_readv", "process_vm_writev"], "action": allow,
         "includes": {"minKernel": "4.8"}},  # older kernels let ptrace escape seccomp
        *({"names": ["socket"], "action": allow, "args": args} for args in _outside(0, REFUSED_FAMILIES)),
        *({"names": ["personality"], "action": allow, "args": [{"index": 0, "value": p, "op": "SCMP_CMP_EQ"}]}
          for p in PERSONALITIES),
        *({"names": calls.split(), "action": allow, "includes": {"arches": arches.split()}}
          for arches, calls in FOR_ARCHES),
    ]
    for cap, calls in WITH_CAPABILITY.items():
        rules.append({"names": calls.split(), "action": allow, "includes": {"caps": [f"CAP_{cap}"]}})
        if cap == "SYS_ADMIN":  # without it: clone without namespace flags (s390: second), clone3 ENOSYS
            rules += [
                {"names": ["clone"], "action": allow, "args": no_namespace(0),
                 "excludes": {**no_admin, "arches": s390}},
                {"names": ["clone"], "action": allow, "args": no_namespace(1),
                 "includes": {"arches": s390}, "excludes": no_admin},
                {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS,
                 "excludes": no_admin},
            ]
    return {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.EPERM,
            "archMap": [{"architecture": arch, "subArchitectures": subs} for arch, subs in ARCH_MAP.items()],
            "syscalls": rules}
# --8<-- [end:default_profile_part2]
# --8<-- [end:default_profile]


def load_profile(value: str) -> dict:
    """The profile of ``--security-opt seccomp=VALUE``: a file name, or the JSON itself (from the daemon)."""
    text = value
    if not value.lstrip().startswith("{"):
        try:
            with open(value) as f:
                text = f.read()
        except OSError as e:
            raise EngineError(f"seccomp profile {value!r}: {e.strerror}") from None
    import json  # only for a profile of the user's: the default one is built here

    try:
        profile = json.loads(text)
    except json.JSONDecodeError as e:
        raise EngineError(f"seccomp profile {value[:60]!r} is not valid JSON: {e}") from None
    if not isinstance(profile, dict) or "defaultAction" not in profile:
        raise EngineError(f"seccomp profile {value[:60]!r} has no defaultAction: "
                          "is it a Docker seccomp profile?")
    return profile


def _action(name: str, errno_ret: int | None, default_errno: int) -> int:
    if name not in ACTIONS:
        raise EngineError(f"seccomp profile: action {name!r} is not supported here "
                          f"(use one of {', '.join(sorted(ACTIONS))})")
    data = errno_ret if errno_ret is not None else (default_errno if name == "SCMP_ACT_ERRNO" else 0)
    return ACTIONS[name] | (data & 0xFFFF)


def _kernel_at_least(minimum: str, release: str) -> bool:
    def parts(text: str) -> tuple[int, ...]:
        fields = text.split("-")[0].split(".")[:2]
        return tuple(int("".join(c for c in p if c.isdigit()) or 0) for p in fields)
    return parts(release) >= parts(minimum)


# exercise 06.5: Which rules apply to this container
# hint: a rule applies when every cap in includes.caps is held, our machine's name is in
#   includes.arches (if given), the kernel is at least includes.minKernel; and no cap in
#   excludes.caps is held and our machine is not in excludes.arches.
# --8<-- [start:applies]
def _applies(rule: dict, caps: Collection[str], arch_names: set[str], release: str) -> bool:
    """Whether a rule's ``includes``/``excludes`` hold for this container, machine and kernel."""
    held = {f"CAP_{c}" for c in caps}
    inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
    if not set(inc.get("caps") or ()) <= held or set(exc.get("caps") or ()) & held:
        return False
    if inc.get("arches") and not set(inc["arches"]) & arch_names:
        return False
    if set(exc.get("arches") or ()) & arch_names:
        return False
    return not inc.get("minKernel") or _kernel_at_least(inc["minKernel"], release)
# --8<-- [end:applies]


def _rules(profile: dict, caps: Collection[str], machine: str, release: str
           ) -> Iterator[tuple[int, int, list[dict]]]:
    """``(syscall number, action, conditions)`` for each rule that applies, in the profile's order.

    As runc does, several conditions on *different* arguments must all hold; several on the *same*
    argument become separate rules (any one of them is enough).
    """
    table = numbers(machine)
    default_errno = profile.get("defaultErrnoRet", errno.EPERM)
    for rule in profile.get("syscalls") or []:
        if not _applies(rule, caps, DOCKER_ARCH.get(machine, set()), release):
            continue
        action = _action(rule.get("action", ""), rule.get("errnoRet"), default_errno)
        conditions = rule.get("args") or []
        indexes = [c.get("index", 0) for c in conditions]
        groups = [[c] for c in conditions] if len(set(indexes)) < len(indexes) else [conditions]
        for name in rule.get("names") or [rule.get("name", "")]:
            if name in table:  # a syscall this machine does not have is skipped, as libseccomp does
                for group in groups:
                    yield table[name], action, group


# exercise 06.6: Compare a 64-bit argument with 32-bit instructions
# hint: load the high word (offset 20 + 8*index) and decide on it when you can (jgt/jeq), else load
#   the low word (16 + 8*index) and decide there; MASKED_EQ applies and_(mask) before each jeq.
#   Jump to `fail` when the condition does not hold; fall through (to the pass label) when it does.
# --8<-- [start:compare]
def _compare(condition: dict, fail: str, tag: str) -> list[bpf.Insn | bpf.Label]:
    """Instructions that fall through if ``args[index] OP value`` holds, else jump to ``fail``.

    ``A`` holds 32 bits and the arguments have 64: compare the high words first, and only when
    they are equal does the low word decide.
    """
    index, op = condition.get("index", 0), condition.get("op", "")
    value, two = condition.get("value", 0), condition.get("valueTwo", 0)
    low, high = 16 + 8 * index, 20 + 8 * index  # little-endian: the low word comes first
    vh, vl, ok = value >> 32, value & 0xFFFFFFFF, f"{tag}-pass"
    if op == "SCMP_CMP_EQ":
        code = [bpf.ld(high), bpf.jeq(vh, 0, fail), bpf.ld(low), bpf.jeq(vl, 0, fail)]
    elif op == "SCMP_CMP_NE":
        code = [bpf.ld(high), bpf.jeq(vh, 0, ok), bpf.ld(low), bpf.jeq(vl, fail, 0)]
    elif op == "SCMP_CMP_MASKED_EQ":  # (arg & value) == valueTwo
        code = [bpf.ld(high), bpf.and_(vh), bpf.jeq(two >> 32, 0, fail),
                bpf.ld(low), bpf.and_(vl), bpf.jeq(two & 0xFFFFFFFF, 0, fail)]
    elif op in ("SCMP_CMP_GT", "SCMP_CMP_GE"):
        last = bpf.jgt(vl, 0, fail) if op == "SCMP_CMP_GT" else bpf.jge(vl, 0, fail)
        code = [bpf.ld(high), bpf.jgt(vh, ok, 0), bpf.jeq(vh, 0, fail), bpf.ld(low), last]
    elif op in ("SCMP_CMP_LT", "SCMP_CMP_LE"):
        last = bpf.jge(vl, fail, 0) if op == "SCMP_CMP_LT" else bpf.jgt(vl, fail, 0)
        code = [bpf.ld(high), bpf.jgt(vh, fail, 0), bpf.jeq(vh, 0, ok), bpf.ld(low), last]
    else:
        raise EngineError(f"seccomp profile: comparison {op!r} is not supported")
    return [*code, bpf.Label(ok)]
# --8<-- [end:compare]


def _refusal(default: int, profile: dict) -> int:
    """What an x32 call gets: the default action if it refuses, else ``ERRNO`` with the profile's errno.

    x32 is a second ABI of x86-64: the same ``seccomp_data.arch``, the syscall number with bit 30
    set (``0x40000000 | 39`` is x32's getpid). A profile's rules name x86-64 numbers, so an x32
    call would match none and get the default action: with ``"defaultAction": "SCMP_ACT_ALLOW"``
    (a profile that lists what to refuse) every refused call would pass under its x32 number.

    Example::

        >>> hex(_refusal(ACTIONS["SCMP_ACT_ALLOW"], {}))
        '0x50001'
    """
    if default & 0xFFFF0000 in (ACTIONS["SCMP_ACT_ERRNO"], ACTIONS["SCMP_ACT_TRAP"],
                                ACTIONS["SCMP_ACT_KILL_THREAD"], ACTIONS["SCMP_ACT_KILL_PROCESS"]):
        return default
    return ACTIONS["SCMP_ACT_ERRNO"] | (profile.get("defaultErrnoRet") or errno.EPERM) & 0xFFFF


_KEPT_FILTERS: dict[frozenset[str], tuple[bytes, int]] = {}


def default_filter(capabilities: Collection[str], keep: bool = False) -> tuple[bytes, int]:
    """Docker's default profile compiled for ``capabilities``: the program and its flags.

    Compiling it takes a few milliseconds of Python. With ``keep`` the result stays for the rest of
    this process: a daemon's fork server compiles it so for the default capabilities before it
    forks, and every container's start finds it there. Elsewhere each call compiles.
    """
    key = frozenset(capabilities)
    if key in _KEPT_FILTERS:
        return _KEPT_FILTERS[key]
    profile = default_profile()
    result = compile_profile(profile, key), profile_flags(profile)
    if keep:
        _KEPT_FILTERS[key] = result
    return result


# exercise 06.7: Compile a profile to a BPF program
# hint: check seccomp_data.arch (offset 4, else KILL_PROCESS); load nr (offset 0); on x86_64, x32
#   numbers get _refusal() whatever the default; numbers above the table ENOSYS (unless the
#   default allows); then per rule: jeq nr, conditions (_compare) jumping to a per-rule "next"
#   label, ret action, the label, and a reload of nr (the conditions changed A); finally ret the
#   default action. bpf.assemble() it all.
# --8<-- [start:compile_profile]
# --8<-- [start:compile_profile_part1]
def compile_profile(profile: dict, capabilities: Collection[str], machine: str | None = None,
                    release: str | None = None) -> bytes:
    # --8<-- [end:compile_profile_part1]
    """The profile as a BPF program for ``machine``, for a container holding ``capabilities``.

    One block per rule, in the profile's order; the first rule that matches decides. A syscall no
    rule names gets the default action, and one newer than this table ENOSYS (as runc does), so
    that programs fall back to an older call instead of failing. An x32 call is refused before
    any rule, even when the default action allows (see :func:`_refusal`); a call from another
    ABI (32-bit x86 or arm programs) kills the process, as libseccomp does for an arch it lacks.

    Example::

        >>> program = compile_profile({"defaultAction": "SCMP_ACT_ALLOW"}, (), "x86_64", "6.1")
        >>> hex(bpf.run(program, seccomp_data(0x40000000 | 39)))   # x32 getpid
        '0x50001'
    """
    # --8<-- [start:compile_profile_part2]
    machine = machine or os.uname().machine  # platform.machine(), without importing platform
    release = release or os.uname().release
    if machine not in AUDIT_ARCH:
        raise EngineError(f"seccomp: no syscall table for {machine}: "
                          "run with --security-opt seccomp=unconfined")
    default = _action(profile.get("defaultAction", ""), profile.get("defaultErrnoRet"), errno.EPERM)
    last = max(numbers(machine).values())
    code: list[bpf.Insn | bpf.Label] = [
        bpf.ld(4), bpf.jeq(AUDIT_ARCH[machine], 1, 0), bpf.ret(ACTIONS["SCMP_ACT_KILL_PROCESS"]),
        bpf.ld(0),
    ]
    if machine == "x86_64":  # x32 shares the arch word; arm64's 32-bit ABI has its own, killed above
        code += [bpf.jge(X32_SYSCALL_BIT, 0, 1), bpf.ret(_refusal(default, profile))]
    if default != ACTIONS["SCMP_ACT_ALLOW"]:
        code += [bpf.jgt(last, 0, 1), bpf.ret(ACTIONS["SCMP_ACT_ERRNO"] | errno.ENOSYS)]
    for i, (nr, action, conditions) in enumerate(_rules(profile, capabilities, machine, release)):
        if not conditions:
            code += [bpf.jeq(nr, 0, 1), bpf.ret(action)]
            continue
        skip = f"rule{i}"
        code.append(bpf.jeq(nr, 0, skip))
        for j, condition in enumerate(conditions):
            code += _compare(condition, skip, f"rule{i}.{j}")
        code += [bpf.ret(action), bpf.Label(skip), bpf.ld(0)]
    code.append(bpf.ret(default))
    return bpf.assemble(code)
# --8<-- [end:compile_profile_part2]
# --8<-- [end:compile_profile]


def profile_flags(profile: dict) -> int:
    """The ``flags`` a profile asks for (``SECCOMP_FILTER_FLAG_LOG``...), as the seccomp(2) bitmask."""
    total = 0
    for name in profile.get("flags") or []:
        if name not in FLAGS:
            raise EngineError(f"seccomp profile: flag {name!r} is not supported")
        total |= FLAGS[name]
    return total


# --8<-- [start:install]
def install(program: bytes, flags: int = 0) -> None:
    """Load ``program`` as this process's seccomp filter; its children and exec'd programs keep it.

    The kernel wants ``no_new_privs`` set, or ``CAP_SYS_ADMIN``: otherwise a filter could trick a
    setuid program into misbehaving (by making a syscall it relies on fail).
    """
    _syscalls.seccomp(_syscalls.SECCOMP_SET_MODE_FILTER, flags, program)
# --8<-- [end:install]


def seccomp_data(nr: int, args: Sequence[int] = (), arch: int = AUDIT_ARCH["x86_64"]) -> bytes:
    """A ``struct seccomp_data`` for :func:`minidocker.security.bpf.run`: what the kernel gives a filter."""
    padded = [a & 0xFFFFFFFFFFFFFFFF for a in args] + [0] * (6 - len(args))
    return struct.pack("<iIQ6Q", nr, arch, 0, *padded)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m minidocker.security.seccomp [--bpf]``: the default profile, or its compiled program."""
    from minidocker.security.capabilities import DOCKER_DEFAULT

    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--bpf"]:
        text = "\n".join(bpf.disassemble(compile_profile(default_profile(), DOCKER_DEFAULT)))
    elif not args:
        import json

        text = json.dumps(default_profile(), indent=2)
    else:
        print("usage: python -m minidocker.security.seccomp [--bpf]", file=sys.stderr)
        return 2
    try:
        print(text)
    except BrokenPipeError:  # | head: fine
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (no second error at exit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
