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
import json
import os
import struct
import sys
from collections.abc import Collection, Iterator, Sequence

from minidocker.core import syscalls as _syscalls
from minidocker.core.process import EngineError
from minidocker.security import bpf
from minidocker.security.syscall_table import numbers

__all__ = ["ACTIONS", "compile_profile", "default_profile", "install", "load_profile", "seccomp_data"]

# <linux/seccomp.h>: what a filter returns. The low 16 bits carry data (the errno for ERRNO).
ACTIONS = {
    "SCMP_ACT_KILL_PROCESS": 0x80000000, "SCMP_ACT_KILL_THREAD": 0x00000000, "SCMP_ACT_KILL": 0x00000000,
    "SCMP_ACT_TRAP": 0x00030000, "SCMP_ACT_ERRNO": 0x00050000, "SCMP_ACT_TRACE": 0x7FF00000,
    "SCMP_ACT_LOG": 0x7FFC0000, "SCMP_ACT_ALLOW": 0x7FFF0000,
}
AUDIT_ARCH = {"x86_64": 0xC000003E}  # <linux/audit.h>: what seccomp_data.arch holds
DOCKER_ARCH = {"x86_64": {"amd64", "x86_64", "SCMP_ARCH_X86_64"}}  # how profiles name our machine
X32_SYSCALL_BIT = 0x40000000  # x86-64's other ABI: same arch, numbers with this bit set
FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": _syscalls.SECCOMP_FILTER_FLAG_TSYNC,
         "SECCOMP_FILTER_FLAG_LOG": _syscalls.SECCOMP_FILTER_FLAG_LOG,
         "SECCOMP_FILTER_FLAG_SPEC_ALLOW": _syscalls.SECCOMP_FILTER_FLAG_SPEC_ALLOW}

# --8<-- [start:allowed]
# What any program may call: files, memory, processes, signals, time, sockets, IPC. The kernel's
# own permission checks (and the capabilities left) still apply to each call.
_ALLOWED = """
    read write open openat openat2 creat close close_range lseek pread64 pwrite64 readv writev preadv
    preadv2 pwritev pwritev2 stat fstat lstat newfstatat statx statfs fstatfs access faccessat faccessat2
    chmod fchmod fchmodat fchmodat2 chown fchown lchown fchownat truncate ftruncate rename renameat
    renameat2 mkdir mkdirat rmdir link linkat unlink unlinkat symlink symlinkat readlink readlinkat
    mknod mknodat getdents getdents64 getcwd chdir fchdir fcntl flock fsync fdatasync sync syncfs
    sync_file_range fallocate fadvise64 readahead copy_file_range sendfile splice tee vmsplice dup dup2
    dup3 pipe pipe2 umask utime utimes utimensat futimesat getxattr lgetxattr fgetxattr setxattr
    lsetxattr fsetxattr listxattr llistxattr flistxattr removexattr lremovexattr fremovexattr
    inotify_init inotify_init1 inotify_add_watch inotify_rm_watch fanotify_mark name_to_handle_at ioctl
    memfd_create memfd_secret cachestat
    brk mmap munmap mremap mprotect madvise mincore msync mlock mlock2 munlock mlockall munlockall
    remap_file_pages pkey_alloc pkey_free pkey_mprotect membarrier map_shadow_stack mseal
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
    io_getevents io_pgetevents io_uring_setup io_uring_enter io_uring_register
    socketpair bind connect listen accept accept4 getsockname getpeername sendto recvfrom sendmsg
    recvmsg sendmmsg recvmmsg setsockopt getsockopt shutdown getrandom
    msgget msgsnd msgrcv msgctl semget semop semtimedop semctl shmget shmat shmdt shmctl mq_open
    mq_unlink mq_timedsend mq_timedreceive mq_notify mq_getsetattr
"""
ALLOWED = _ALLOWED.split()

# Allowed only when the container has the capability that the syscall needs anyway.
WITH_CAPABILITY = {
    "SYS_ADMIN": "mount umount2 unshare setns clone clone3 sethostname setdomainname fsopen fsconfig "
                 "fsmount fspick move_mount open_tree mount_setattr quotactl quotactl_fd "
                 "fanotify_init lookup_dcookie perf_event_open bpf syslog",
    "SYS_BOOT": "reboot", "SYS_CHROOT": "chroot", "SYS_MODULE": "init_module finit_module delete_module",
    "SYS_PACCT": "acct", "SYS_PTRACE": "ptrace process_vm_readv process_vm_writev kcmp pidfd_getfd "
                                      "process_madvise",
    "SYS_RAWIO": "iopl ioperm", "SYS_TIME": "settimeofday clock_settime", "SYS_TTY_CONFIG": "vhangup",
    "SYS_NICE": "get_mempolicy set_mempolicy mbind set_mempolicy_home_node", "SYSLOG": "syslog",
    "BPF": "bpf", "PERFMON": "perf_event_open", "DAC_READ_SEARCH": "open_by_handle_at",
}
# --8<-- [end:allowed]

CLONE_NEW_ANY = 0x7E020000  # every CLONE_NEW* flag: clone() may not create namespaces
AF_VSOCK = 40  # sockets to the hypervisor: not for containers
PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)  # Linux, Linux32, UNAME26, both, query


# exercise 06.4: The default profile, in Docker's JSON format
# hint: defaultAction SCMP_ACT_ERRNO with defaultErrnoRet EPERM; one ALLOW rule with ALLOWED; ptrace
#   & co from kernel 4.8; socket unless arg 0 == AF_VSOCK; personality for each of PERSONALITIES;
#   arch_prctl and modify_ldt on amd64; one rule per WITH_CAPABILITY entry (includes caps); clone
#   without namespace flags (MASKED_EQ) and clone3 -> ENOSYS, both excluded when CAP_SYS_ADMIN.
# --8<-- [start:default_profile]
def default_profile() -> dict:
    """Docker's default policy, in Docker's profile format: allow what programs need, EPERM the rest.

    ``clone`` is allowed without ``CAP_SYS_ADMIN`` only if it creates no namespace; ``clone3``, whose
    flags live in memory a filter cannot read, then fails with ENOSYS so that libc falls back to clone.
    """
    allow = "SCMP_ACT_ALLOW"
    rules: list[dict] = [
        {"names": list(ALLOWED), "action": allow},
        {"names": ["ptrace", "process_vm_readv", "process_vm_writev"], "action": allow,
         "includes": {"minKernel": "4.8"}},  # older kernels let ptrace escape seccomp
        {"names": ["socket"], "action": allow,
         "args": [{"index": 0, "value": AF_VSOCK, "op": "SCMP_CMP_NE"}]},
        *({"names": ["personality"], "action": allow, "args": [{"index": 0, "value": p, "op": "SCMP_CMP_EQ"}]}
          for p in PERSONALITIES),
        {"names": ["arch_prctl", "modify_ldt"], "action": allow, "includes": {"arches": ["amd64", "x32"]}},
        *({"names": calls.split(), "action": allow, "includes": {"caps": [f"CAP_{cap}"]}}
          for cap, calls in WITH_CAPABILITY.items()),
        {"names": ["clone"], "action": allow, "excludes": {"caps": ["CAP_SYS_ADMIN"]},
         "args": [{"index": 0, "value": CLONE_NEW_ANY, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS,
         "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
    ]
    return {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.EPERM,
            "archMap": [{"architecture": "SCMP_ARCH_X86_64",
                         "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]}],
            "syscalls": rules}
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


# exercise 06.7: Compile a profile to a BPF program
# hint: check seccomp_data.arch (offset 4, else KILL_PROCESS); load nr (offset 0); x32 numbers get
#   the default action, numbers above the table ENOSYS (unless the default allows); then per rule:
#   jeq nr, conditions (_compare) jumping to a per-rule "next" label, ret action, the label, and a
#   reload of nr (the conditions changed A); finally ret the default action. bpf.assemble() it all.
# --8<-- [start:compile_profile]
def compile_profile(profile: dict, capabilities: Collection[str], machine: str | None = None,
                    release: str | None = None) -> bytes:
    """The profile as a BPF program for ``machine``, for a container holding ``capabilities``.

    One block per rule, in the profile's order; the first rule that matches decides. A syscall no
    rule names gets the default action, and one newer than this table ENOSYS (as runc does), so
    that programs fall back to an older call instead of failing.
    """
    machine = machine or os.uname().machine  # platform.machine(), without importing platform
    release = release or os.uname().release
    if machine not in AUDIT_ARCH:
        raise EngineError(f"seccomp: no syscall table for {machine}: "
                          "run with --security-opt seccomp=unconfined")
    default = _action(profile.get("defaultAction", ""), profile.get("defaultErrnoRet"), errno.EPERM)
    last = max(numbers(machine).values())
    code: list[bpf.Insn | bpf.Label] = [
        bpf.ld(4), bpf.jeq(AUDIT_ARCH[machine], 1, 0), bpf.ret(ACTIONS["SCMP_ACT_KILL_PROCESS"]),
        bpf.ld(0), bpf.jge(X32_SYSCALL_BIT, 0, 1), bpf.ret(default),
    ]
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
