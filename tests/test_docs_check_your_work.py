"""Every "Check your work" block of chapters 01–16 runs as printed, in book order, in a private sandbox.

The reader's starting point is the README's first command, ``./setup.sh demo``: a registry of
ours on 127.0.0.1:5000 holding busybox, and ``minidockerd`` on ``/run/minidocker.sock`` with that
registry as its mirror. The sandbox makes the same (with the same commands) in places of its own,
then types each block's commands into one ``bash``, chapter after chapter, as a reader would, and
compares what each prints with the book (see ``docs_blocks.py`` for the marks and the varying
values).

The book's names of host-wide things are the sandbox's own here, both ways: the state, run and
cache directories, the socket, the bridge ``minidocker0``, its subnet 172.29.0.0/16, the nft table
``minidocker``, the cgroup parent, the ports 5000–5019 (registries) and 7015 (chapter 15's
dashboard), and chapter 12's subnets 10.212.*. Several runs on one host (and the rest of the suite)
then never share a path, port, bridge, table or cgroup; ``/tmp`` is shared, which the book's
examples clean up after themselves.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.docs_blocks import ROOT, Block, chapter_blocks, matches
from tests.helpers_10_daemon import kill_monitors

LAST = 16
CHAPTERS = [p for p in (ROOT / "chapters").glob("[0-9][0-9]-*.md") if 1 <= int(p.name[:2]) <= LAST]
MARK = "__check_your_work_done__"
PORTS = [*range(5000, 5020), 7015]  # the book's registries (5000: the demo's), and chapter 15's dashboard
TIMEOUT = 90  # seconds, for one command
# bash's notice of a background job's end (an interactive shell prints it as [1]+ Killed ...)
JOB_NOTICE = re.compile(r"^bash: line \d+: +\d+ (Killed|Terminated|Done)\b.*\n", re.M)


def _replace(text: str, names: dict[str, str]) -> str:
    """``text`` with each key of ``names`` replaced by its value, in one pass, the longest key first."""
    pattern = "|".join(re.escape(k) for k in sorted(names, key=len, reverse=True))
    return re.sub(pattern, lambda m: names[m.group(0)], text)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _unused_16(base: int = 160) -> int:
    """A second octet N of 10.N.0.0/16, from ``base`` to ``base`` + 39, that no route of the host covers."""
    routes = Path("/proc/net/route").read_text().split("\n")[1:]
    taken = {int(f.split()[1], 16).to_bytes(4, "little")[1] for f in routes if f.split()}
    return next(n for step in range(40) if (n := base + (os.getpid() + step) % 40) not in taken)


class Sandbox:
    """The book's names and the sandbox's, and one bash to type the commands into."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        octet, networks, tag = _unused_16(), _unused_16(120), os.getpid()
        self.names = {  # the book's -> ours; the longer first, so no name eats part of another
            "/run/minidocker.sock": str(directory / "run/minidocker.sock"),
            "/run/minidocker": str(directory / "run"),
            "/var/lib/minidocker": str(directory / "state"),
            "/var/cache/minidocker": str(directory / "cache"),
            "/sys/fs/cgroup/memory/minidocker": f"/sys/fs/cgroup/memory/mdcyw{tag}",
            "/sys/fs/cgroup/minidocker": f"/sys/fs/cgroup/mdcyw{tag}",
            "minidocker0": f"mdcyw{tag}0",
            "ip minidocker": f"ip mdcyw_{tag}",
            "172.29.": f"10.{octet}.",
            "10.212.": f"10.{networks}.",  # chapter 12's user-defined networks
            "02:42:ac:1d:": f"02:42:0a:{octet:02x}:",
        }
        self.names.update({f"127.0.0.1:{port}": f"127.0.0.1:{_free_port()}" for port in PORTS})
        self.names.update({f"--port {port}": f"--port {self.names[f'127.0.0.1:{port}'][10:]}"
                           for port in PORTS})
        self.names.update({f"registry-{port}": f"registry-{self.names[f'127.0.0.1:{port}'][10:]}"
                           for port in PORTS})
        self.env = {
            "PATH": ":".join(p for p in os.environ["PATH"].split(":") if ".venv" not in p),
            "HOME": str(directory / "home"), "LANG": "C.UTF-8", "TERM": "dumb",
            "DOCKER_CONFIG": str(directory / "home/.docker"),
            "MINIDOCKER_STATE": self.names["/var/lib/minidocker"],
            "MINIDOCKER_RUN": self.names["/run/minidocker"],
            "MINIDOCKER_CACHE": self.names["/var/cache/minidocker"],
            "MINIDOCKER_CGROUP_PARENT": f"mdcyw{tag}",
            "MINIDOCKER_BRIDGE": f"mdcyw{tag}0",
            "MINIDOCKER_NFT_TABLE": f"mdcyw_{tag}",
            "MINIDOCKER_SUBNET": f"10.{octet}.0.0/16",
            "MINIDOCKER_CONFIG": str(directory / "home/.minidocker"),
        }
        (directory / "home").mkdir(parents=True)
        self._read_end, self.commands = os.pipe()  # the commands come on a pipe of their own, not stdin
        fd = self._read_end
        loop = (f'exec 2>&1; while IFS= read -r -d "" __c <&{fd}; do eval "$__c" {fd}<&-;'
                f' printf "\\n{MARK} %s\\n" $?; done')
        self.bash = subprocess.Popen(["bash", "--norc", "--noprofile", "-c", loop], cwd=ROOT, env=self.env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     pass_fds=(self._read_end,), start_new_session=True)
        self.buffer = b""

    def to_sandbox(self, text: str) -> str:
        return _replace(text, self.names)

    def to_book(self, text: str) -> str:
        return _replace(text, {ours: book for book, ours in self.names.items()})

    def run(self, command: str, wait_for_lines: int = 0) -> tuple[list[str], int]:
        """Type ``command``; its output as the book's names, and its status (-1: it timed out).

        A command put in the background (``&``) that the book shows printing something gets
        ``wait_for_lines`` lines' time to print them before the next command starts.
        """
        os.write(self.commands, self.to_sandbox(command).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT
        while (end := self.buffer.find(f"\n{MARK} ".encode())) < 0 or b"\n" not in self.buffer[end + 1:]:
            if not self._read(deadline):
                return self._take(len(self.buffer)), -1
        marker, rest = self.buffer[end + 1:].split(b"\n", 1)
        status = int(marker.split()[1])
        output = self._take(end)
        self.buffer = rest
        deadline = time.monotonic() + 10
        while len(output) + self.buffer.count(b"\n") < wait_for_lines and self._read(deadline):
            pass
        if wait_for_lines > len(output):  # what the background command printed since
            output += self._take(self.buffer.rfind(b"\n") + 1)
        return output, status

    def _read(self, deadline: float) -> bool:
        ready, _, _ = select.select([self.bash.stdout], [], [], max(0, deadline - time.monotonic()))
        if not ready:
            return False
        chunk = os.read(self.bash.stdout.fileno(), 65536)
        if not chunk:
            return False
        self.buffer += chunk
        return True

    def _take(self, end: int) -> list[str]:
        text, self.buffer = self.buffer[:end].decode(errors="replace"), self.buffer[end:]
        text = self.to_book(JOB_NOTICE.sub("", text))
        if text.endswith("\n"):
            text = text[:-1]
        return text.split("\n") if text else []

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.bash.pid, signal.SIGKILL)
        self.bash.wait(timeout=10)
        os.close(self.commands)
        os.close(self._read_end)


DEMO = """\
.venv/bin/python -m minidocker.registry seed --storage /var/cache/minidocker/registry >/dev/null
(setsid .venv/bin/python -m minidocker.registry serve --addr 127.0.0.1:5000 \\
    --storage /var/cache/minidocker/registry </dev/null >>/run/minidocker/registry.log 2>&1 &)
until curl -sf http://127.0.0.1:5000/v2/ >/dev/null; do sleep 0.1; done
.venv/bin/minidocker daemon start --registry-mirror http://127.0.0.1:5000 >/dev/null
.venv/bin/minidocker run --rm busybox echo hello"""

CLEANUP = f"""\
cd {ROOT}
export DOCKER_HOST=unix:///run/minidocker.sock
.venv/bin/minidocker ps -aq | xargs -r .venv/bin/minidocker rm -f >/dev/null 2>&1
.venv/bin/minidocker network prune -f >/dev/null 2>&1
.venv/bin/minidocker daemon stop >/dev/null 2>&1
kill $(jobs -p) 2>/dev/null
pkill -F /run/minidocker/registry-5000.pid 2>/dev/null
true"""


def _report(block: Block, index: int, actual: list[str], status: int) -> str:
    command = block.commands[index]
    return (f"{block.chapter}:{command.line}: # {command.text}\n"
            f"  the book prints:\n" + "".join(f"    {line}\n" for line in command.expected)
            + f"  it printed{' (timed out)' if status < 0 else ''}:\n"
            + "".join(f"    {line}\n" for line in actual))


@pytest.fixture
def sandbox():
    # Not pytest's tmp_path: the docker CLI refuses a socket path of more than 108 bytes.
    tmp_path = Path(tempfile.mkdtemp(prefix="cyw", dir="/tmp"))
    tmp_path.chmod(0o755)
    box = Sandbox(tmp_path / "box")
    (tmp_path / "box/run").mkdir(mode=0o700)
    try:
        yield box
    finally:
        with contextlib.suppress(Exception):
            box.run(CLEANUP)
        for pidfile in (tmp_path / "box/run").glob("*.pid"):
            with contextlib.suppress(Exception):
                os.kill(int(pidfile.read_text().split()[0]), signal.SIGKILL)
        box.close()
        kill_monitors(tmp_path / "box/state", grace=5)
        for process in _serving(tmp_path / "box"):
            with contextlib.suppress(OSError):
                os.kill(process, signal.SIGKILL)
        subprocess.run(["ip", "link", "delete", box.env["MINIDOCKER_BRIDGE"]], capture_output=True)
        subprocess.run(["nft", "delete", "table", "ip", box.env["MINIDOCKER_NFT_TABLE"]], capture_output=True)
        _unmount_under(tmp_path)
        shutil.rmtree(tmp_path, ignore_errors=True)


def _unmount_under(directory: Path) -> None:
    """Unmount what a failed block left mounted in the sandbox (the leak check does not look there)."""
    from minidocker.core import syscalls as sc

    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f if line.split()[4].startswith(str(directory))]
    for point in reversed(points):
        with contextlib.suppress(OSError):
            sc.umount2(point, sc.MNT_DETACH)


def _serving(directory: Path) -> list[int]:
    """Processes whose command line names the sandbox (registries, daemons) still alive."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if str(directory).encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    found.append(int(entry))
    return found


def test_every_check_your_work_runs_as_printed(sandbox: Sandbox, request: pytest.FixtureRequest,
                                               capsys: pytest.CaptureFixture) -> None:
    """``pytest --chapter N`` runs the chapters up to N only."""
    last = request.config.getoption("--chapter") or LAST
    blocks = chapter_blocks([p for p in CHAPTERS if int(p.name[:2]) <= last])
    out, status = sandbox.run(DEMO)
    assert status == 0 and out[-1:] == ["hello"], f"the README's demo failed in the sandbox: {out}"
    failures, ran, skipped = [], 0, []
    started = time.monotonic()
    for block in blocks:
        if block.not_run:
            skipped.append(f"{block.chapter}:{block.line}: {block.not_run}")
            continue
        ran += 1
        for index, command in enumerate(block.commands):
            background = command.text.rstrip().endswith("&") and not command.text.rstrip().endswith("&&")
            actual, status = sandbox.run(command.text, len(command.expected) if background else 0)
            if status < 0 or not matches(actual, command.expected):
                failures.append(_report(block, index, actual, status))
    with capsys.disabled():
        print(f"\nchecked {ran} blocks of {len(CHAPTERS)} chapters in {time.monotonic() - started:.0f} s; "
              f"{len(skipped)} not run:\n" + "".join(f"  {s}\n" for s in skipped))
    assert not failures, f"{len(failures)} commands print other than the book:\n\n" + "\n".join(failures)


def test_a_changed_output_is_found() -> None:
    """The comparison is not blind: ids and times vary, anything else must be as printed."""
    assert matches(["8bf9aaf68a11   busybox   Up 2 seconds   web"], ["030076440cd6 busybox Up 4 minutes web"])
    assert matches(["a", "b", "c"], ["a", "…", "c"]) and matches(["x:41"], ["x:<port>"])
    assert not matches(["hello"], ["hallo"]) and not matches(["a", "b"], ["a"])
    assert not matches(["<none>"], ["<missing>"])
    assert re.fullmatch(r"\d+", "1")
