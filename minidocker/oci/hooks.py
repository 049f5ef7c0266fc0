"""Chapter 14: the runtime spec's hooks: programs run at fixed points, the container's state on stdin.

``prestart`` and ``createRuntime`` run once the namespaces exist, before the container's process
is let go (docker 20.10 plugs the network in here, with ``libnetwork-setkey``); ``createContainer``
right after them; ``startContainer`` in the container, after ``start``, before the program;
``poststart`` once ``start`` has let it go; ``poststop`` when ``delete`` has removed it. Each hook
is ``{"path", "args", "env", "timeout"}`` and reads the state JSON (:func:`state_json`) on stdin.

Example::

    run_hooks(config_hooks, "poststart", state_json(...))    # EngineError if one fails
"""

from __future__ import annotations

from minidocker.core.jsonscan import dumps
from minidocker.core.process import EngineError

__all__ = ["HOOK_NAMES", "run_hooks", "state_json"]

HOOK_NAMES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


def state_json(container_id: str, status: str, pid: int, bundle: str, annotations: dict | None) -> dict:
    """The runtime spec's state: what ``state`` prints and what every hook reads on stdin."""
    return {"ociVersion": "1.0.2", "id": container_id, "status": status, "pid": pid, "bundle": bundle,
            "annotations": annotations or {}}


# --8<-- [start:run_hooks]
def run_hooks(hooks: dict, name: str, state: dict) -> None:
    """Run each hook of ``name`` in order, the state on its stdin; the first failure stops them.

    ``args[0]`` is the program's own name (as execve's argv), ``env`` its whole environment, and
    ``timeout`` (seconds) kills it. A hook that runs in the container (``startContainer``, after
    pivot_root) finds ``subprocess`` imported already: :func:`preload` in the engine, before.
    """
    if not hooks.get(name):
        return
    import subprocess  # only for a config with hooks: create, start and delete start quicker without

    data = dumps(state).encode()
    for hook in hooks[name]:
        args = hook.get("args") or [hook["path"]]
        env = dict(item.split("=", 1) for item in hook.get("env") or [] if "=" in item)
        try:
            done = subprocess.run(args, executable=hook["path"], input=data, env=env,
                                  capture_output=True, timeout=hook.get("timeout"), check=False)
        except subprocess.TimeoutExpired:
            raise EngineError(f"{name} hook {hook['path']}: timed out after {hook['timeout']} s") from None
        except OSError as e:
            raise EngineError(f"{name} hook {hook['path']}: {e.strerror}") from None
        if done.returncode != 0:
            said = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()
            raise EngineError(f"{name} hook {hook['path']} failed with exit status {done.returncode}"
                              + (f": {said[-1][:200]}" if said else ""))
# --8<-- [end:run_hooks]


def preload(hooks: dict) -> None:
    """Import what :func:`run_hooks` needs now, in the engine, for hooks that run in the container."""
    if any(hooks.get(name) for name in HOOK_NAMES):
        import subprocess  # noqa: F401  # after pivot_root the engine's modules are out of reach
