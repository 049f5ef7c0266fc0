"""Chapter 14: a container of our daemon as an OCI bundle: ``config.json`` in the runtime spec's format.

To hand a container to runc or crun, the daemon must say everything it would otherwise *do* in the
runtime spec's words: the process (argv, env, cwd, user, capabilities, rlimits), the root, the
mounts, the namespaces, the cgroup and its limits, the seccomp profile, the masked and read-only
paths, the devices. That is what moby's ``daemon/oci_linux.go`` does for dockerd; this module does it
for minidockerd, the reverse of what our own runtime command reads (``specconv``).

The container's monitor has already run the stages of the earlier chapters on the container
(:mod:`minidocker.daemon.engine`): its overlay is mounted (the bundle's root), its cgroup exists (the
runtime is told to use it, so ``docker stats`` and ``top`` find it as before), its network files are
written, and its veth waits for the network namespace, which the runtime creates. What the stages
would have done *inside* the new container (their ``before_pivot`` and ``before_exec`` hooks) is
written here instead, from the container's config.

Example::

    config = oci_config(container_config, spec, cgroups_path="/minidocker/" + cid)
    write_bundle(bundle_dir, config)         # bundle_dir/config.json, 0600
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from minidocker.core.process import EngineError
from minidocker.core.rootpath import open_in_root
from minidocker.core.spec import ContainerSpec
from minidocker.network import netfiles
from minidocker.security import capabilities, devices, seccomp
from minidocker.security import stage as security

__all__ = ["OCI_VERSION", "default_mounts", "oci_config", "resources", "seccomp_config", "write_bundle"]

OCI_VERSION = "1.0.2"
# our spec's namespace names -> the runtime spec's
NAMESPACES = {"mount": "mount", "uts": "uts", "ipc": "ipc", "pid": "pid", "net": "network",
              "cgroup": "cgroup", "user": "user"}


# --8<-- [start:default_mounts]
def default_mounts(read_only_sys: bool = True) -> list[dict]:
    """What every container has, as runc's ``spec`` and moby's default: /proc, /dev, its ptys, /sys..."""
    nodev = ["nosuid", "noexec", "nodev"]
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": nodev},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": [*nodev, "ro" if read_only_sys else "rw"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": [*nodev, "relatime", "ro" if read_only_sys else "rw"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": nodev},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": [*nodev, "mode=1777", "size=65536k"]},
    ]
# --8<-- [end:default_mounts]


def _user(rootfs: str, user: str) -> dict:
    """``USER[:GROUP]`` -> ``{"uid", "gid"}`` from the image's /etc files, read inside its root."""
    name, _, group = (user or "0").partition(":")

    def lookup(path: str, key: str) -> list[str] | None:
        with contextlib.suppress(OSError):
            fd = open_in_root(rootfs, path, os.O_RDONLY)
            with os.fdopen(fd) as f:
                for line in f.read(1 << 20).splitlines():  # bounded: an image's file, not ours
                    fields = line.split(":")
                    if fields[0] == key and len(fields) >= 4:
                        return fields
        return None

    entry = lookup("/etc/passwd", name)
    if entry:
        uid, gid = int(entry[2]), int(entry[3])
    elif name.isdigit():
        uid = gid = int(name)
    else:
        raise EngineError(f"unable to find user {name}: no matching entries in passwd file")
    if group:
        found = None if group.isdigit() else lookup("/etc/group", group)
        if not group.isdigit() and not found:
            raise EngineError(f"unable to find group {group}: no matching entries in group file")
        gid = int(group) if group.isdigit() else int(found[2])
    return {"uid": uid, "gid": gid}


# --8<-- [start:seccomp_config]
def seccomp_config(profile: dict, caps: frozenset[str]) -> dict:
    """A Docker seccomp profile as the runtime spec's ``linux.seccomp``, for this machine and ``caps``.

    As moby's ``setupSeccomp``: the rules whose ``includes``/``excludes`` (capabilities,
    architectures, kernel) do not hold here are left out; the rest keep names, action and args.
    """
    machine = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}.get(os.uname().machine, "")
    arch_names = seccomp.DOCKER_ARCH.get(os.uname().machine, {machine})
    release = os.uname().release
    arches = [machine]
    for item in profile.get("archMap") or []:
        if item.get("architecture") == machine:
            arches += item.get("subArchitectures") or []
    rules = []
    for rule in profile.get("syscalls") or []:
        if not seccomp._applies(rule, caps, set(arch_names), release):
            continue
        entry = {"names": rule.get("names") or [rule["name"]], "action": rule["action"]}
        if rule.get("errnoRet") is not None:
            entry["errnoRet"] = rule["errnoRet"]
        if rule.get("args"):
            entry["args"] = [{"index": a["index"], "value": a["value"], "valueTwo": a.get("valueTwo", 0),
                              "op": a["op"]} for a in rule["args"]]
        rules.append(entry)
    out = {"defaultAction": profile["defaultAction"], "architectures": arches, "syscalls": rules}
    if profile.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    return out
# --8<-- [end:seccomp_config]


# --8<-- [start:resources]
def resources(host: dict, privileged: bool) -> dict:
    """``HostConfig``'s limits as ``linux.resources``: memory (+ Docker's swap), CPU quota, pids, devices."""
    out: dict[str, Any] = {"devices": [{"allow": True, "access": "rwm"}] if privileged else [
        {"allow": False, "access": "rwm"}]}
    if not privileged:
        for rule in devices.DOCKER_DEVICES:  # "c 1:3 rwm"
            kind, numbers, access = rule.split()
            major, minor = numbers.split(":")
            out["devices"].append({"allow": True, "type": kind, "access": access,
                                   **({} if major == "*" else {"major": int(major)}),
                                   **({} if minor == "*" else {"minor": int(minor)})})
    if host.get("Memory"):
        swap = host.get("MemorySwap") or 2 * host["Memory"]  # Docker: as much swap as memory
        out["memory"] = {"limit": host["Memory"], "swap": swap}
    if host.get("NanoCpus"):
        out["cpu"] = {"period": 100000, "quota": host["NanoCpus"] * 100000 // 10**9}
    if (host.get("PidsLimit") or 0) > 0:
        out["pids"] = {"limit": host["PidsLimit"]}
    return out
# --8<-- [end:resources]


def _mounts(config: dict, spec: ContainerSpec, hardening: Any) -> list[dict]:
    """The default mounts, the network files the stages wrote, and the volumes and binds."""
    mounts = default_mounts(read_only_sys=not hardening.privileged)
    directory = netfiles.files_dir(spec.id)
    for name in netfiles.NAMES:
        if (directory / name).exists():
            mounts.append({"destination": f"/etc/{name}", "type": "bind", "source": str(directory / name),
                           "options": ["rbind", "rprivate"]})
    for m in config.get("Mounts") or []:
        options = ["rbind", m.get("Propagation") or "rprivate", *([] if m.get("RW", True) else ["ro"])]
        mounts.append({"destination": m["Destination"], "type": "bind", "source": m["Source"],
                       "options": options})
    return mounts


# --8<-- [start:oci_config]
def oci_config(config: dict, spec: ContainerSpec, cgroups_path: str) -> dict:
    """The runtime spec's ``config.json`` for a container of ours (``config``: its record; ``spec``: what
    the stages made of it: argv, env, working directory, hostname, rootfs, namespaces)."""
    host = config["HostConfig"]
    if spec.id_map or spec.init:
        raise EngineError(f"{'--userns-remap' if spec.id_map else '--init'} is not supported with the "
                          f"runtime {host.get('Runtime')}: use the runtime minidocker")
    hardening = security.plan(security.options_from_docker(host))
    user = _user(spec.rootfs, config["Config"].get("User") or "")
    sets = capabilities.for_user(hardening.capabilities, user["uid"])
    caps = {name: sorted(f"CAP_{c}" for c in getattr(sets, name))
            for name in ("bounding", "effective", "permitted")}
    profile_opt = security._security_opts(host.get("SecurityOpt") or [])[0]
    linux: dict[str, Any] = {
        "namespaces": [{"type": NAMESPACES[n]} for n in sorted(spec.namespaces)],
        "cgroupsPath": cgroups_path, "resources": resources(host, hardening.privileged),
        "maskedPaths": list(hardening.masked_paths), "readonlyPaths": list(hardening.readonly_paths),
    }
    if not hardening.privileged and profile_opt != "unconfined":
        profile = seccomp.default_profile() if profile_opt in ("builtin", "") else seccomp.load_profile(
            profile_opt)
        linux["seccomp"] = seccomp_config(profile, hardening.capabilities)
    process = {
        "terminal": False, "user": user, "args": list(spec.argv),
        "env": [f"{k}={v}" for k, v in spec.env.items()], "cwd": spec.cwd or "/",
        "capabilities": caps, "noNewPrivileges": hardening.no_new_privileges,
        "rlimits": [{"type": f"RLIMIT_{name.upper()}", "soft": soft, "hard": hard}
                    for name, (soft, hard) in hardening.rlimits.items()],
    }
    return {"ociVersion": OCI_VERSION, "process": process,
            "root": {"path": spec.rootfs, "readonly": hardening.read_only_root},
            **({"hostname": spec.hostname or config["Id"][:12]} if "uts" in spec.namespaces else {}),
            "mounts": _mounts(config, spec, hardening), "linux": linux}
# --8<-- [end:oci_config]


def write_bundle(directory: Path, config: dict) -> Path:
    """Write ``config.json`` into ``directory`` (made root's alone); return the file."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / "config.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(config, f, indent=1)
    return path
