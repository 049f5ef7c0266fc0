"""Chapter 06: the pieces under the hardening: the BPF assembler and interpreter, the profile compiler
(checked against Python's own comparisons, then on the real kernel), capabilities, rlimits, the probes."""

from __future__ import annotations

import errno
import os
import random
import resource
import subprocess
from pathlib import Path

import pytest

from minidocker.core import syscalls as _syscalls
from minidocker.core.process import EngineError
from minidocker.security import bpf, capabilities, rlimits, seccomp
from minidocker.security import elf as _elf
from minidocker.security.syscall_table import numbers

ALLOW, EPERM = seccomp.ACTIONS["SCMP_ACT_ALLOW"], seccomp.ACTIONS["SCMP_ACT_ERRNO"] | errno.EPERM
NR = numbers("x86_64")


def verdict(program: bytes, name: str | int, *args: int, arch: int = seccomp.AUDIT_ARCH["x86_64"]) -> int:
    nr = NR[name] if isinstance(name, str) else name
    return bpf.run(program, seccomp.seccomp_data(nr, args, arch))


# ---- the assembler -----------------------------------------------------------------------------

def test_assemble_resolves_labels_and_runs():
    program = bpf.assemble([bpf.ld(0), bpf.jeq(39, 0, "deny"), bpf.ret(ALLOW),
                            bpf.Label("deny"), bpf.ret(EPERM)])
    assert len(program) == 4 * 8
    assert bpf.disassemble(program)[1] == "   1: jeq #0x27 jt 2 jf 3"
    assert verdict(program, 39) == ALLOW and verdict(program, 40) == EPERM


def test_assembler_refuses_what_the_kernel_would():
    with pytest.raises(ValueError, match="undefined"):
        bpf.assemble([bpf.jeq(1, "nowhere"), bpf.ret(0)])
    with pytest.raises(ValueError, match="out of range"):
        bpf.assemble([bpf.jeq(1, "far"), *[bpf.ret(0)] * 300, bpf.Label("far"), bpf.ret(1)])
    with pytest.raises(ValueError, match="out of range"):  # no backward jumps in classic BPF
        bpf.assemble([bpf.Label("back"), bpf.ld(0), bpf.jeq(1, "back"), bpf.ret(0)])
    with pytest.raises(ValueError, match="twice"):
        bpf.assemble([bpf.Label("a"), bpf.Label("a"), bpf.ret(0)])
    with pytest.raises(ValueError):
        bpf.assemble([bpf.ret(0)] * (bpf.MAX_INSNS + 1))
    # ja has 32 bits: the way over 255 instructions
    far = bpf.assemble([bpf.ja("far"), *[bpf.ret(0)] * 300, bpf.Label("far"), bpf.ret(7)])
    assert bpf.run(far, bytes(64)) == 7


# ---- the compiler: every comparison against Python's ------------------------------------------

EDGES = [0, 1, 0xFFFFFFFF, 0x100000000, 0x1FFFFFFFF, 0xFFFFFFFF00000000, 0xFFFFFFFFFFFFFFFF, 40, 2**63]
OPS = {"SCMP_CMP_EQ": lambda a, v: a == v, "SCMP_CMP_NE": lambda a, v: a != v,
       "SCMP_CMP_GT": lambda a, v: a > v, "SCMP_CMP_GE": lambda a, v: a >= v,
       "SCMP_CMP_LT": lambda a, v: a < v, "SCMP_CMP_LE": lambda a, v: a <= v}


def one_rule(*conditions: dict) -> bytes:
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["getpid"], "action": "SCMP_ACT_ALLOW", "args": list(conditions)}]}
    return seccomp.compile_profile(profile, capabilities=(), machine="x86_64", release="6.1")


@pytest.mark.parametrize("op", sorted(OPS))
def test_64_bit_comparisons(op):
    rng = random.Random(op)
    values = EDGES + [rng.getrandbits(64) for _ in range(6)] + [rng.getrandbits(32) for _ in range(4)]
    for value in values:
        program = one_rule({"index": 2, "value": value, "op": op})
        for arg in [*values, value - 1 if value else 0, (value + 1) % 2**64]:
            expected = ALLOW if OPS[op](arg, value) else EPERM
            assert verdict(program, "getpid", 0, 0, arg) == expected, (op, hex(value), hex(arg))


def test_masked_eq_and_combined_conditions():
    program = one_rule({"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"})
    assert verdict(program, "getpid", 0x11) == ALLOW and verdict(program, "getpid", 0x10000011) == EPERM
    eq = "SCMP_CMP_EQ"
    both = one_rule({"index": 0, "value": 1, "op": eq}, {"index": 1, "value": 2, "op": eq})
    assert verdict(both, "getpid", 1, 2) == ALLOW and verdict(both, "getpid", 1, 3) == EPERM  # and
    either = one_rule({"index": 0, "value": 1, "op": eq}, {"index": 0, "value": 2, "op": eq})
    assert verdict(either, "getpid", 2) == ALLOW and verdict(either, "getpid", 3) == EPERM  # runc: or


def test_the_default_profile():
    docker = seccomp.compile_profile(seccomp.default_profile(), capabilities.DOCKER_DEFAULT, "x86_64", "6.18")
    admin = seccomp.compile_profile(seccomp.default_profile(), capabilities.DOCKER_DEFAULT | {"SYS_ADMIN"},
                                    "x86_64", "6.18")
    assert verdict(docker, "read") == ALLOW and verdict(docker, "mount") == EPERM
    assert verdict(admin, "mount") == ALLOW
    for name in ("reboot", "init_module", "kexec_load", "keyctl", "bpf", "unshare", "setns", "swapon",
                 "userfaultfd", "settimeofday", "open_by_handle_at"):
        assert verdict(docker, name) == EPERM, name
    assert verdict(docker, "clone", 0x11) == ALLOW and verdict(docker, "clone", 0x10000011) == EPERM
    assert verdict(admin, "clone", 0x10000011) == ALLOW
    assert verdict(docker, "clone3") == seccomp.ACTIONS["SCMP_ACT_ERRNO"] | errno.ENOSYS  # libc falls back
    assert verdict(docker, "socket", 2) == ALLOW and verdict(docker, "socket", seccomp.AF_VSOCK) == EPERM
    assert verdict(docker, "personality", 8) == ALLOW and verdict(docker, "personality", 0x400000) == EPERM
    assert verdict(docker, "ptrace") == ALLOW  # kernels >= 4.8 check ptrace after seccomp
    old = seccomp.compile_profile(seccomp.default_profile(), capabilities.DOCKER_DEFAULT, "x86_64", "4.4")
    assert verdict(old, "ptrace") == EPERM
    assert verdict(docker, max(NR.values()) + 1) == seccomp.ACTIONS["SCMP_ACT_ERRNO"] | errno.ENOSYS
    assert verdict(docker, 0x40000000 | NR["getpid"]) == EPERM  # x32: not allowed
    assert verdict(docker, "getpid", arch=0x40000003) == seccomp.ACTIONS["SCMP_ACT_KILL_PROCESS"]


DOCKER_PROFILE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "docker-seccomp-default.json"


def _docker_profile() -> dict:
    if not DOCKER_PROFILE.exists():
        pytest.skip(f"no {DOCKER_PROFILE}: Docker's current profile (moby/profiles) is reference material")
    return seccomp.load_profile(str(DOCKER_PROFILE))


def test_default_profile_is_dockers_rule_for_rule():
    """Our built-in profile is moby/profiles' default.json of June 2026, rule for rule, in its order."""
    docker = _docker_profile()

    def normal(rule: dict) -> dict:  # names in any order; comments are not rules
        return {**{k: v for k, v in rule.items() if k != "comment"}, "names": sorted(rule["names"])}

    ours = seccomp.default_profile()
    assert [normal(r) for r in ours["syscalls"]] == [normal(r) for r in docker["syscalls"]]
    assert {k: v for k, v in ours.items() if k != "syscalls"} == {k: v for k, v in docker.items()
                                                                  if k != "syscalls"}
    assert not [n for n in seccomp.ALLOWED if n.startswith("io_uring")]


@pytest.mark.parametrize("extra", [(), ("SYS_ADMIN",), ("SYS_PTRACE", "SYS_TIME", "SYS_NICE", "BPF"), "ALL"])
@pytest.mark.parametrize("release", ["6.18", "4.4"])
def test_default_profile_compiles_as_dockers(extra, release):
    """Compiled here, both refuse and allow the same: every syscall number, and the argument rules."""
    caps = capabilities.available() if extra == "ALL" else capabilities.DOCKER_DEFAULT | set(extra)
    ours = seccomp.compile_profile(seccomp.default_profile(), caps, "x86_64", release)
    docker = seccomp.compile_profile(_docker_profile(), caps, "x86_64", release)
    families = [*range(64), 0xFFFFFFFF, 0x100000026, 2**63 + 38]  # 38 in the low word only: not AF_ALG
    calls = [(nr,) for nr in range(max(NR.values()) + 3)] + [(0x40000000 | NR["getpid"],)]
    calls += [(NR["socket"], family, 5) for family in families]
    calls += [(NR["personality"], p) for p in (*seccomp.PERSONALITIES, 0x400000, 0x20001)]
    calls += [(NR[name], flags) for name in ("clone", "clone3") for flags in (0x11, 0x10000011, 0x7E020000)]
    differ = [call for call in calls if verdict(ours, *call) != verdict(docker, *call)]
    assert not differ, [(next((k for k, v in NR.items() if v == c[0]), c[0]), *c[1:]) for c in differ]


# ---- another machine: arm64 (aarch64) -------------------------------------------------------------

A64 = numbers("aarch64")
AUDIT_ARCH_ARM = 0x40000028  # arm64's 32-bit ABI (an armhf program): its own arch word


def a64(program: bytes, name: str | int, *args: int, arch: int = seccomp.AUDIT_ARCH["aarch64"]) -> int:
    nr = A64[name] if isinstance(name, str) else name
    return bpf.run(program, seccomp.seccomp_data(nr, args, arch))


def test_syscall_tables_know_each_machines_numbers():
    """Known numbers of both tables (arm64 uses the kernel's generic table, with no legacy calls)."""
    assert (NR["openat"], A64["openat"]) == (257, 56)
    assert (NR["mount"], A64["mount"]) == (165, 40)
    assert (NR["read"], A64["read"]) == (0, 63)
    assert [A64[n] for n in ("newfstatat", "fstat", "renameat", "mmap")] == [79, 80, 38, 222]
    assert (A64["wait4"], A64["seccomp"], A64["rseq"], A64["kexec_file_load"]) == (260, 277, 293, 294)
    for name in ("open", "stat", "fork", "pipe", "dup2", "arch_prctl", "epoll_wait", "uretprobe", "time"):
        assert name in NR and name not in A64, name
    for name, nr in (("io_uring_setup", 425), ("clone3", 435), ("memfd_secret", 447), ("file_setattr", 469)):
        assert NR[name] == A64[name] == nr, name  # from 424 on: one number everywhere
    assert len(set(A64.values())) == len(A64) and len(set(NR.values())) == len(NR)
    assert {n for n in A64.values() if n < 424} == set(range(244)) | set(range(260, 295))
    assert numbers("riscv64") == {}


def test_default_profile_compiles_for_aarch64():
    """The arm64 filter checks AUDIT_ARCH_AARCH64 and compares arm64's numbers."""
    caps = capabilities.DOCKER_DEFAULT
    docker = seccomp.compile_profile(seccomp.default_profile(), caps, "aarch64", "6.18")
    admin = seccomp.compile_profile(seccomp.default_profile(), caps | {"SYS_ADMIN"}, "aarch64", "6.18")
    assert docker != seccomp.compile_profile(seccomp.default_profile(), caps, "x86_64", "6.18")
    assert a64(docker, "openat") == ALLOW and a64(docker, "read") == ALLOW
    assert a64(docker, "mount") == EPERM and a64(admin, "mount") == ALLOW
    for name in ("reboot", "init_module", "kexec_load", "keyctl", "bpf", "setns", "io_uring_enter"):
        assert a64(docker, name) == EPERM, name
    assert a64(docker, 257) == EPERM  # x86-64's openat is a number arm64 keeps for itself: nothing here
    assert a64(docker, "clone", 0x11) == ALLOW and a64(docker, "clone", 0x10000011) == EPERM
    assert a64(docker, "socket", seccomp.AF_ALG) == EPERM and a64(docker, "socket", 2) == ALLOW
    assert a64(docker, "clone3") == seccomp.ACTIONS["SCMP_ACT_ERRNO"] | errno.ENOSYS
    assert a64(docker, max(A64.values()) + 1) == seccomp.ACTIONS["SCMP_ACT_ERRNO"] | errno.ENOSYS
    enosys = seccomp.ACTIONS["SCMP_ACT_ERRNO"] | errno.ENOSYS
    assert a64(docker, 0x40000000 | A64["getpid"]) == enosys  # no x32 here: just a number past the table
    kill = seccomp.ACTIONS["SCMP_ACT_KILL_PROCESS"]
    for arch in (seccomp.AUDIT_ARCH["x86_64"], AUDIT_ARCH_ARM):  # another machine's numbers: killed
        assert a64(docker, "getpid", arch=arch) == kill, hex(arch)
    assert verdict(seccomp.compile_profile(seccomp.default_profile(), caps, "x86_64", "6.18"), "getpid",
                   arch=seccomp.AUDIT_ARCH["aarch64"]) == kill


def test_machine_only_rules_follow_the_machine():
    """A rule for arm64 applies there and not on x86-64 (and the other way round), under every name."""
    for arches in (["arm64"], ["aarch64"], ["SCMP_ARCH_AARCH64"]):
        rule = {"names": ["getpid"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": arches}}
        profile = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [rule]}
        assert a64(seccomp.compile_profile(profile, (), "aarch64", "6.18"), "getpid") == ALLOW, arches
        assert verdict(seccomp.compile_profile(profile, (), "x86_64", "6.18"), "getpid") == EPERM, arches
    amd64 = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["getpid"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64"]}}]}
    assert a64(seccomp.compile_profile(amd64, (), "aarch64", "6.18"), "getpid") == EPERM


def test_dockers_profile_compiles_the_same_for_aarch64():
    """Docker's own profile and ours, both compiled for arm64: the same verdict on every number."""
    caps = capabilities.DOCKER_DEFAULT | {"SYS_PTRACE"}
    ours = seccomp.compile_profile(seccomp.default_profile(), caps, "aarch64", "6.18")
    docker = seccomp.compile_profile(_docker_profile(), caps, "aarch64", "6.18")
    calls = [(nr,) for nr in range(max(A64.values()) + 3)]
    calls += [(A64["socket"], family, 5) for family in (*range(64), 0xFFFFFFFF)]
    calls += [(A64["clone"], flags) for flags in (0x11, 0x10000011, 0x7E020000)]
    assert [c for c in calls if a64(ours, *c) != a64(docker, *c)] == []
    assert a64(docker, "openat") == ALLOW and a64(docker, "mount") == EPERM


def test_doctor_reports_the_architecture():
    """The doctor's row: this machine, and whether a seccomp table exists for it."""
    from minidocker.doctor import architecture

    here = architecture()
    assert here.name == "architecture" and here.ok == bool(numbers(os.uname().machine)), here
    assert architecture("aarch64").ok and "linux/arm64" in architecture("aarch64").seen
    other = architecture("riscv64")
    assert not other.ok and not other.required and "seccomp=unconfined" in other.fix


def test_socket_families_and_io_uring_refused():
    """AF_ALG and AF_VSOCK sockets get EPERM, the families around them do not; io_uring is gone."""
    docker = seccomp.compile_profile(seccomp.default_profile(), capabilities.DOCKER_DEFAULT, "x86_64", "6.18")
    for family, expected in ((seccomp.AF_ALG, EPERM), (seccomp.AF_VSOCK, EPERM), (37, ALLOW), (39, ALLOW),
                             (41, ALLOW), (2, ALLOW), (0x100000000 | seccomp.AF_ALG, ALLOW)):
        assert verdict(docker, "socket", family, 5, 0) == expected, family
    for name in ("io_uring_setup", "io_uring_enter", "io_uring_register"):
        assert verdict(docker, name) == EPERM, name
    # why three rules: two "not equal" conditions on one argument are two rules, and either allows
    naive = seccomp.compile_profile({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [
            {"index": 0, "value": seccomp.AF_ALG, "op": "SCMP_CMP_NE"},
            {"index": 0, "value": seccomp.AF_VSOCK, "op": "SCMP_CMP_NE"}]}]}, (), "x86_64", "6.18")
    assert verdict(naive, "socket", seccomp.AF_ALG) == ALLOW  # 38 is "not 40"


def test_x32_is_refused_even_when_the_default_allows():
    """x32 numbers (bit 30) are refused before the rules: a block list cannot be dodged through them."""
    block_mount = [{"names": ["mount"], "action": "SCMP_ACT_ERRNO"}]
    x32_mount = 0x40000000 | NR["mount"]
    for profile, expected in (
            ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": block_mount}, EPERM),
            ({"defaultAction": "SCMP_ACT_LOG", "defaultErrnoRet": errno.EACCES},
             seccomp.ACTIONS["SCMP_ACT_ERRNO"] | errno.EACCES),
            ({"defaultAction": "SCMP_ACT_KILL_PROCESS"}, seccomp.ACTIONS["SCMP_ACT_KILL_PROCESS"]),
            ({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.ENOSYS},
             seccomp.ACTIONS["SCMP_ACT_ERRNO"] | errno.ENOSYS)):
        program = seccomp.compile_profile(profile, (), "x86_64", "6.18")
        assert verdict(program, x32_mount) == expected, profile
        assert verdict(program, 0x40000000 | NR["getpid"]) == expected, profile
    allow = seccomp.compile_profile({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": block_mount}, ())
    assert verdict(allow, "getpid") == ALLOW and verdict(allow, "mount") == EPERM  # x86-64 as before


def _probe_exit(path: Path, program: bytes | None = None) -> int:
    """Run the probe at ``path`` in a child, under ``program`` (a filter) if given: its exit status."""
    pid = os.fork()
    if pid == 0:
        try:
            if program is not None:
                seccomp.install(program)
            os.execv(str(path), [str(path)])
        finally:
            os._exit(127)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


@pytest.fixture
def x32_getpid(tmp_path: Path) -> Path:
    """The probe: x32's getpid (``0x40000000 | 39``), a real x32 system call."""
    if not _elf.supported():
        pytest.skip("the probes are x86-64 machine code")
    probe = tmp_path / "x32-getpid"
    probe.write_bytes(_elf.syscall_program(0x40000000 | NR["getpid"]))
    probe.chmod(0o755)
    return probe


def test_x32_call_refused_by_the_installed_filter(x32_getpid):
    """Under a default-ALLOW filter a real x32 call gets the filter's EPERM (without x32 support the
    kernel itself would answer ENOSYS; with it, it would run the call)."""
    allow = seccomp.compile_profile({"defaultAction": "SCMP_ACT_ALLOW"}, ())
    assert _probe_exit(x32_getpid, allow) == errno.EPERM


def test_x32_call_works_without_the_filter(x32_getpid):
    """The same call with no filter: it runs, where the kernel has the x32 ABI."""
    unfiltered = _probe_exit(x32_getpid)
    if unfiltered == errno.ENOSYS:
        pytest.skip("this kernel has no x32 ABI (CONFIG_X86_X32_ABI, or syscall.x32=n): "
                    "an x32 getpid gets ENOSYS without any filter")
    assert unfiltered == 0


def test_a_real_profile_we_did_not_write():
    """Podman's default profile (containers/common's, descended from moby's; see tests/data/README.md).

    Its default is ENOSYS, not EPERM; it names the dangerous calls in an EPERM rule of its own, has
    rules on two arguments at once (socket: an audit netlink socket without CAP_AUDIT_WRITE gets
    EINVAL) and ``"args": null``. Our compiler must read it as runc would.
    """
    profile = seccomp.load_profile(str(Path(__file__).parent / "data" / "containers-common-seccomp.json"))

    def compiled(*extra: str, without: str = "") -> bytes:
        caps = (capabilities.DOCKER_DEFAULT | set(extra)) - {without}
        return seccomp.compile_profile(profile, caps, "x86_64", "6.18")

    podman = compiled()
    for name in ("kexec_load", "swapon", "init_module", "open_by_handle_at"):
        assert verdict(podman, name) == EPERM, name
    for name in ("read", "write", "openat", "execve", "mount", "reboot"):  # podman leaves these to the caps
        assert verdict(podman, name) == ALLOW, name
    assert verdict(podman, "add_key") == seccomp.ACTIONS["SCMP_ACT_ERRNO"] | errno.ENOSYS  # named nowhere
    assert verdict(compiled("SYS_MODULE"), "init_module") == ALLOW
    netlink, audit, no_audit = 16, 9, compiled(without="AUDIT_WRITE")
    assert verdict(no_audit, "socket", netlink, 3, audit) == seccomp.ACTIONS["SCMP_ACT_ERRNO"] | errno.EINVAL
    assert verdict(no_audit, "socket", netlink, 3, 0) == ALLOW
    assert verdict(podman, "socket", netlink, 3, audit) == ALLOW


def test_profile_errors_are_engine_errors():
    odd = {"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "op": "SCMP_CMP_ODD"}]}
    notify = {"names": ["read"], "action": "SCMP_ACT_NOTIFY"}
    for profile in ({"defaultAction": "SCMP_ACT_MAYBE"},
                    {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [notify]},
                    {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [odd]}):
        with pytest.raises(EngineError):
            seccomp.compile_profile(profile, (), "x86_64", "6.1")
    with pytest.raises(EngineError, match="no syscall table"):
        seccomp.compile_profile(seccomp.default_profile(), (), "sparc64", "6.1")


def test_installed_filter_on_the_real_kernel():
    """In a child: the default filter blocks mount and unshare, everything else still works."""
    program = seccomp.compile_profile(seccomp.default_profile(), capabilities.DOCKER_DEFAULT)
    errors = seccomp.compile_profile({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EACCES}]}, ())
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        results = []
        try:
            seccomp.install(program)
            seccomp.install(errors)  # filters stack: both apply
            for attempt in (lambda: _syscalls.mount("none", "/mnt", "tmpfs"),
                            lambda: _syscalls.unshare(_syscalls.CLONE_NEWUSER), os.getcwd, os.getpid):
                try:
                    attempt()
                    results.append("ok")
                except OSError as e:
                    results.append(errno.errorcode[e.errno])
            os.write(write, " ".join(results).encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as f:
        assert f.read() == "EPERM EPERM EACCES ok"


# ---- capabilities, rlimits, probes --------------------------------------------------------------

def test_capability_rules_are_dockers():
    default = capabilities.DOCKER_DEFAULT
    assert capabilities.mask(default) == 0xA80425FB and capabilities.names(0xA80425FB) == default
    assert capabilities.tweak(["cap_net_admin"], ["MKNOD"]) == (default - {"MKNOD"}) | {"NET_ADMIN"}
    assert capabilities.tweak(["NET_ADMIN"], ["ALL"]) == {"NET_ADMIN"}
    assert capabilities.tweak(["ALL"], ["SYS_ADMIN"]) == capabilities.available() - {"SYS_ADMIN"}
    assert capabilities.tweak(privileged=True) == capabilities.available()
    with pytest.raises(EngineError, match="unknown capability"):
        capabilities.tweak(["CAP_TELEPORT"])


def test_apply_capabilities_in_a_child():
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            capabilities.apply(capabilities.for_user(frozenset({"KILL", "CHOWN"}), uid=0))
            effective, permitted, inheritable = _syscalls.capget()
            with open("/proc/sys/kernel/cap_last_cap") as f:
                last = int(f.read())
            bounding = [_syscalls.prctl(_syscalls.PR_CAPBSET_READ, n) for n in range(last + 1)]
            os.write(write, f"{effective:x} {permitted:x} {inheritable:x} {sum(bounding)}".encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as f:
        assert f.read() == "21 21 0 2"  # CHOWN (bit 0) and KILL (bit 5), nothing else anywhere


def test_rlimits_parse():
    inf = resource.RLIM_INFINITY
    assert rlimits.parse(["nofile=1024:2048", "core=0", "memlock=-1", "nproc=unlimited:unlimited"]) == {
        "nofile": (1024, 2048), "core": (0, 0), "memlock": (inf, inf), "nproc": (inf, inf)}
    for bad in ("nofile", "nofile=2:1", "nofile=x", "flux=1", "nofile=-5", "nofile=unlimited:5"):
        with pytest.raises(EngineError):
            rlimits.parse([bad])


def test_syscall_probes_run_here(tmp_path):
    if not _elf.supported():
        pytest.skip("the probes are x86-64 machine code")
    for name, program, expected in (("getpid", _elf.syscall_program(39), 0),
                                    ("open", _elf.syscall_program(2, b"/nonexistent\0", 0), errno.ENOENT),
                                    ("kill", _elf.syscall_program(62, 2**22 + 7, 0), errno.ESRCH)):
        path = tmp_path / name
        path.write_bytes(program)
        path.chmod(0o755)
        assert subprocess.run([str(path)]).returncode == expected, name
