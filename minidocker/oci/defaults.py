"""Chapter 14: what the runtime says about itself: ``spec`` (runc's default config.json) and ``features``.

``minidocker-runtime spec`` writes the config.json ``runc spec`` writes, field for field, so a
bundle made for one runtime runs on the other. ``features`` is runc's JSON description of what a
runtime supports (hooks, mount options, namespaces, capabilities, seccomp actions), which
containerd reads to decide what it may ask for; ours says ``systemd: false`` and lists only the
seccomp actions chapter 06's compiler knows.

Example::

    >>> default_spec()["process"]["args"], default_spec()["root"]
    (['sh'], {'path': 'rootfs', 'readonly': True})
"""

from __future__ import annotations

from minidocker.core.process import DEFAULT_PATH
from minidocker.oci import hooks, specconv
from minidocker.security import capabilities, seccomp

__all__ = ["default_spec", "features"]

_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


# --8<-- [start:default_spec]
def default_spec() -> dict:
    """runc's ``spec``: sh on a read-only ``rootfs``, a terminal, three capabilities, no network."""
    mount_options = {"/dev": ["nosuid", "strictatime", "mode=755", "size=65536k"],
                     "/dev/pts": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
                     "/dev/shm": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
                     "/dev/mqueue": ["nosuid", "noexec", "nodev"],
                     "/sys": ["nosuid", "noexec", "nodev", "ro"],
                     "/sys/fs/cgroup": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
    sources = {"/proc": "proc", "/dev": "tmpfs", "/dev/pts": "devpts", "/dev/shm": "shm",
               "/dev/mqueue": "mqueue", "/sys": "sysfs", "/sys/fs/cgroup": "cgroup"}
    mounts = [{"destination": d, "type": specconv.ENGINE_MOUNTS[d], "source": s,
               **({"options": mount_options[d]} if d in mount_options else {})} for d, s in sources.items()]
    return {
        "ociVersion": "1.0.2-dev",
        "process": {"terminal": True, "user": {"uid": 0, "gid": 0}, "args": ["sh"],
                    "env": [f"PATH={DEFAULT_PATH}", "TERM=xterm"], "cwd": "/",
                    "capabilities": {k: list(_CAPS)
                                     for k in ("bounding", "effective", "permitted", "ambient")},
                    "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
                    "noNewPrivileges": True},
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "runc",
        "mounts": mounts,
        "linux": {"resources": {"devices": [{"allow": False, "access": "rwm"}]},
                  "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
                  "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                                  "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                                  "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
                  "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                    "/proc/sysrq-trigger"]},
    }
# --8<-- [end:default_spec]


def features() -> dict:
    """runc's ``features`` JSON, for this runtime."""
    return {
        "ociVersionMin": "1.0.0", "ociVersionMax": "1.1.0",
        "hooks": list(hooks.HOOK_NAMES),
        "mountOptions": sorted([*specconv.MOUNT_FLAGS, *specconv.PROPAGATION]),
        "linux": {
            "namespaces": sorted(specconv.NAMESPACE_KINDS),
            "capabilities": [f"CAP_{c}" for c in capabilities.CAPABILITIES],
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False},
            "seccomp": {"enabled": True, "actions": sorted(seccomp.ACTIONS),
                        "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE",
                                      "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
                        "archs": ["SCMP_ARCH_X86_64"]},
            "apparmor": {"enabled": False}, "selinux": {"enabled": False},
        },
        "annotations": {"org.opencontainers.runc.version": "1.1.5-compatible",
                        "io.github.minidocker.runtime.not-honoured": ",".join(specconv.NOT_HONOURED)},
    }
