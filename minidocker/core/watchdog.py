"""Chapter 03: a watchdog: a command that runs if the engine dies before it has cleaned up.

An engine cleans up on its way out (an ``ExitStack``); SIGKILL, a crash or the OOM killer give it
no way out. What the kernel always does when a process dies, however it dies, is close its file
descriptors. So the engine starts a watchdog that waits on a pipe whose only writer is the engine:
a word on it means "all is done, go away"; the end of the pipe without a word means the engine
died, and the watchdog runs the clean-up command instead. Chapter 03 removes the container's
cgroup this way, chapter 04 its filesystem, chapter 05 its address and published ports.

Example::

    disarm = start(python_argv("print('the engine died')"), "minidocker-example-watchdog")
    ...             # the engine's work; if it is killed here, the command runs
    disarm()        # done: the watchdog exits without running it
"""

from __future__ import annotations

import os
import sys

__all__ = ["Disarm", "python_argv", "start"]


# exercise 03.13: Run a clean-up command even if the engine is killed
# hint: os.pipe2(O_CLOEXEC); os.posix_spawn /bin/sh with setsid=True, the read end dup2'd to fd 3
#   (os.POSIX_SPAWN_DUP2) and a script that ignores INT/TERM/HUP/QUIT (trap '') and reads a word from
#   fd 3 or else execs "$@" (name, then argv). The engine closes the read end and returns
#   Disarm(the write end, the watchdog's pid).
# --8<-- [start:start]
def start(argv: list[str], name: str) -> Disarm:
    """Start a watchdog that runs ``argv`` if this process dies; call the returned ``disarm()`` when done.

    The watchdog is a shell named ``name``: a forked copy of a Python engine would soon hold
    megabytes of its own, a waiting ``sh`` holds a few hundred KiB. It is spawned, not forked
    (posix_spawn(3): no copy of the engine's page tables, a fraction of a millisecond), in a session
    of its own, out of the terminal's process group: Ctrl-C must not stop it. Only if the engine
    died does it ``exec`` the command. The returned :class:`Disarm`, called, tells it all is done
    and waits for it to exit.
    """
    done_r, done_w = os.pipe2(os.O_CLOEXEC)
    if done_r == 3:  # dup2 onto itself would keep close-on-exec: move it first
        done_r, old = os.dup(done_r), done_r
        os.close(old)
    # a word on fd 3: all is done; its end without one: the engine died. Signals ignored by trap ''
    # stay ignored through exec, in the command too.
    script = "trap '' INT TERM HUP QUIT; read -r word <&3 || exec \"$@\""
    try:
        watchdog = os.posix_spawn("/bin/sh", ["sh", "-c", script, name, *argv], os.environ,
                                  file_actions=[(os.POSIX_SPAWN_DUP2, done_r, 3)], setsid=True)
    except BaseException:
        os.close(done_w)
        raise
    finally:
        os.close(done_r)
    return Disarm(done_w, watchdog)
# --8<-- [end:start]


class Disarm:
    """``disarm()``: tell the watchdog all is done, and wait for it to go.

    A small class rather than a closure, so that what an engine must still do can be handed to
    another process as data (chapter 10's monitor does): the pipe's write end and the watchdog's
    pid are all there is to it. The watchdog may then be another process's child: whoever is its
    parent reaps it.
    """

    def __init__(self, fd: int, pid: int) -> None:
        self.fd, self.pid = fd, pid

    def __call__(self) -> None:
        os.write(self.fd, b"done\n")
        os.close(self.fd)
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:  # handed over: its parent (a subreaper) reaps it
            pass


def python_argv(code: str, *args: str) -> list[str]:
    """A command for :func:`start`: a fresh Python that runs ``code``, with ``args`` as ``sys.argv[2:]``.

    ``-I -S``: no environment variables of Python's, no current directory, no ``site``: it starts
    in a few milliseconds and imports only what ``code`` imports, from where this process found
    its modules (``sys.argv[1]``: this package's parent directory, then this process's path).
    """
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.pathsep.join([here, *(os.path.abspath(p) for p in sys.path if p)])
    setup = f"import sys; sys.path[:0] = sys.argv[1].split({os.pathsep!r}); "
    return [sys.executable, "-I", "-S", "-c", setup + code, path, *args]
