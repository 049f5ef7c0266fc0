"""Chapter 13: reading Compose files: YAML, ``.env``, interpolation, several files merged, profiles.

What ``docker compose`` does before it talks to any daemon, in its order:

1. find the files (``-f``, else ``compose.yaml``, ``compose.yml``, ``docker-compose.yml``,
   ``docker-compose.yaml`` in the working directory); the first one's directory is the *project
   directory*, against which every relative path (``build``, ``env_file``, bind mounts) is resolved;
2. read the project directory's ``.env`` (or ``--env-file``): ``KEY=VALUE`` lines, beneath the
   shell's own environment, which wins;
3. parse each file (PyYAML's ``safe_load``: no Python objects from a file) and *interpolate* every
   string: ``$$`` is a ``$``; ``$VAR``, ``${VAR}``; ``${VAR:-default}`` (unset or empty),
   ``${VAR-default}`` (unset); ``${VAR:?message}``, ``${VAR?message}`` (an error); ``${VAR:+alt}``,
   ``${VAR+alt}`` (the alternative when set);
4. validate each file against the schema (:mod:`.schema`), then merge them in order, by Compose's
   rules: mappings key by key, ``environment`` and ``labels`` by variable, ``volumes`` by target,
   ``ports``, ``expose``, ``dns`` appended, any other list or scalar replaced by the later file's;
5. drop the services whose ``profiles`` are not active (a service without profiles always is).

Every error is one :class:`ComposeError` line naming where: ``services.web.env_file: ...``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from minidocker.compose.errors import ComposeError

__all__ = ["DEFAULT_FILES", "ComposeError", "interpolate", "load", "merge", "read_env_file"]

DEFAULT_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
_NAMED = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*")
_BRACED = re.compile(r"^(?P<name>[_a-zA-Z][_a-zA-Z0-9]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?$", re.S)
# Lists merged by appending (the rest of the lists are replaced by the later file's), per the spec.
_APPENDED = {"ports", "expose", "dns", "dns_search", "external_links", "tmpfs", "cap_add", "cap_drop",
             "security_opt", "devices", "group_add"}


# --8<-- [start:env_file]
def read_env_file(path: Path) -> dict[str, str]:
    """A ``.env`` file: ``KEY=VALUE`` lines (``export`` allowed), ``#`` comments, quoted values."""
    found: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not re.match(r"^[^\s=]+$", key):
            raise ComposeError(f"{path}:{number}: invalid line {raw!r}: use KEY=VALUE")
        if not sep:  # KEY alone: the shell's value, if it has one
            if key in os.environ:
                found[key] = os.environ[key]
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
            if raw.strip().partition("=")[2].strip().startswith('"'):
                value = value.replace("\\n", "\n").replace('\\"', '"')
        else:
            value = re.sub(r"\s+#.*$", "", value)  # an unquoted value's inline comment
        found[key] = value
    return found
# --8<-- [end:env_file]


# exercise 13.1: Replace a string's $ expressions as Compose does
# hint: walk the string from one "$" to the next: "$$" is a "$"; "$NAME" its value (empty when unset);
#   "${...}" up to its matching brace (a default may hold ${...} too) goes to _braced(); any other "$"
#   is a ComposeError naming where.
# --8<-- [start:interpolate]
def interpolate(text: str, env: dict[str, str], where: str) -> str:
    """``text`` with its ``$`` expressions replaced from ``env``: see the module's docstring."""
    out, i = [], 0
    while (dollar := text.find("$", i)) >= 0:
        out.append(text[i:dollar])
        if text.startswith("$$", dollar):
            out.append("$")
            i = dollar + 2
        elif m := _NAMED.match(text, dollar + 1):
            out.append(env.get(m.group(), ""))
            i = m.end()
        elif text.startswith("${", dollar):
            depth, j = 1, dollar + 2
            while j < len(text) and depth:  # the matching brace: a default may hold ${...} too
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                j += 1
            if depth:
                raise ComposeError(f"{where}: invalid interpolation format {text!r}: "
                                   "you may need to escape any $ with another $")
            out.append(_braced(text[dollar + 2:j - 1], env, where))
            i = j
        else:
            raise ComposeError(f"{where}: invalid interpolation format {text!r}: "
                               "you may need to escape any $ with another $")
    return "".join(out) + text[i:]
# --8<-- [end:interpolate]


# --8<-- [start:braced]
def _braced(inner: str, env: dict[str, str], where: str) -> str:
    """The value of ``${inner}``: a name, with ``:-``, ``-``, ``:?``, ``?``, ``:+`` or ``+`` and its word."""
    found = _BRACED.match(inner)
    if not found:
        raise ComposeError(f"{where}: invalid interpolation format {'${' + inner + '}'!r}")
    name, op, arg = found.group("name", "op", "arg")
    value = env.get(name)
    if op is None:
        return value or ""
    arg = interpolate(arg, env, where)  # the default, message or alternative may hold variables too
    unset_or_empty = value is None or (op.startswith(":") and value == "")
    if op.endswith("-"):
        return arg if unset_or_empty else value  # type: ignore[return-value]
    if op.endswith("?"):
        if unset_or_empty:
            raise ComposeError(f"{where}: required variable {name} is missing a value"
                               + (f": {arg}" if arg else ""))
        return value  # type: ignore[return-value]
    return "" if unset_or_empty else arg  # ":+" / "+": the alternative when set
# --8<-- [end:braced]


def _path(where: str, key: Any) -> str:
    return f"{where}[{key}]" if isinstance(key, int) else (f"{where}.{key}" if where else str(key))


def interpolate_tree(value: Any, env: dict[str, str], where: str = "") -> Any:
    """Every string of a parsed file interpolated (keys stay as written, as Compose does)."""
    if isinstance(value, str):
        return interpolate(value, env, where)
    if isinstance(value, dict):
        return {k: interpolate_tree(v, env, _path(where, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate_tree(v, env, _path(where, i)) for i, v in enumerate(value)]
    return value


def _mapping(value: Any) -> dict[str, Any]:
    """``environment`` / ``labels`` as a mapping: a list's ``KEY=VALUE`` items split, ``KEY`` alone None."""
    if isinstance(value, dict):
        return {str(k): (None if v is None else (str(v).lower() if isinstance(v, bool) else str(v)))
                for k, v in value.items()}
    found: dict[str, Any] = {}
    for item in value or []:
        key, sep, rest = str(item).partition("=")
        found[key] = rest if sep else None
    return found


def _volume_target(item: Any) -> str:
    if isinstance(item, dict):
        return str(item.get("target", ""))
    parts = str(item).split(":")
    return parts[1] if len(parts) > 1 else parts[0]


# --8<-- [start:merge]
def merge(base: Any, override: Any, key: str = "") -> Any:
    """``override`` (a later ``-f`` file) merged over ``base`` by Compose's rules."""
    if isinstance(base, dict) and isinstance(override, dict):
        if key in ("environment", "labels", "args"):
            return {**_mapping(base), **_mapping(override)}
        merged = dict(base)
        for k, v in override.items():
            merged[k] = merge(base[k], v, k) if k in base else v
        return merged
    if key in ("environment", "labels", "args") and base is not None and override is not None:
        return {**_mapping(base), **_mapping(override)}
    if isinstance(base, list) and isinstance(override, list):
        if key == "volumes":  # by target: the later file's mount for a path wins
            by_target = {_volume_target(v): v for v in base}
            by_target.update({_volume_target(v): v for v in override})
            return list(by_target.values())
        if key in _APPENDED:
            return base + [v for v in override if v not in base]
    return override
# --8<-- [end:merge]


def find_files(files: list[str], cwd: Path) -> list[Path]:
    """The Compose files to read: ``-f`` ones as given (``-`` is not supported), else the default."""
    if files:
        paths = [(cwd / f).absolute() for f in files]
        for p in paths:
            if not p.is_file():
                raise ComposeError(f"open {p}: no such file or directory")
        return paths
    directory = cwd.absolute()
    while True:  # Compose looks in the parent directories too
        for name in DEFAULT_FILES:
            if (directory / name).is_file():
                return [directory / name]
        if directory.parent == directory:
            break
        directory = directory.parent
    raise ComposeError("no configuration file provided: not found (compose.yaml, docker-compose.yml)")


def project_env(project_dir: Path, env_file: str | None = None,
                environ: dict[str, str] | None = None) -> dict[str, str]:
    """The variables interpolation sees: the ``.env`` file's, beneath the shell's."""
    environ = dict(os.environ if environ is None else environ)
    path = Path(env_file) if env_file else project_dir / ".env"
    if env_file and not path.is_file():
        raise ComposeError(f"couldn't find env file: {path}")
    dotenv = read_env_file(path) if path.is_file() else {}
    return {**dotenv, **environ}


def _parse(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ComposeError(f"{where}: invalid YAML: {getattr(e, 'problem', None) or e}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ComposeError(f"{path}: top-level object must be a mapping")
    return data


def service_env_files(name: str, config: dict[str, Any], project_dir: Path) -> dict[str, str]:
    """A service's ``env_file`` variables, in order (a later file wins); a missing one is an error
    unless it says ``required: false``."""
    value = config.get("env_file")
    items = [value] if isinstance(value, str | dict) else list(value or [])
    found: dict[str, str] = {}
    for i, item in enumerate(items):
        spec = item if isinstance(item, dict) else {"path": item}
        path = project_dir / str(spec["path"])
        where = f"services.{name}.env_file" + (f"[{i}]" if isinstance(value, list) else "")
        if not path.is_file():
            if spec.get("required", True) is False:
                continue
            raise ComposeError(f"{where}: couldn't find env file: {path}")
        try:
            found.update(read_env_file(path))
        except ComposeError as e:
            raise ComposeError(f"{where}: {e}") from None
    return found


def load(files: list[str] | None = None, cwd: str | os.PathLike | None = None, *,
         env_file: str | None = None, profiles: list[str] | None = None,
         environ: dict[str, str] | None = None, validate: bool = True) -> tuple[dict[str, Any], dict]:
    """The merged, interpolated, validated Compose document, and facts about it.

    The facts: ``project_dir``, ``files`` (absolute paths), ``env`` (what interpolation saw),
    ``profiles`` (active).
    """
    from minidocker.compose import schema

    paths = find_files(list(files or []), Path(cwd or os.getcwd()))
    project_dir = paths[0].parent
    env = project_env(project_dir, env_file, environ)
    merged: dict[str, Any] = {}
    for path in paths:
        data = interpolate_tree(_parse(path), env)
        if validate:
            schema.validate(data)
        merged = merge(merged, data)
    if profiles is None:
        profiles = [p for p in env.get("COMPOSE_PROFILES", "").split(",") if p]
    services = merged.get("services") or {}
    for name, config in list(services.items()):
        config = dict(config or {})
        extra = service_env_files(name, config, project_dir) if config.get("env_file") else {}
        environment = {**extra, **_mapping(config.get("environment"))}
        # KEY without a value: the shell's (or .env's) value, or left out when it has none
        config["environment"] = {k: (v if v is not None else env.get(k)) for k, v in environment.items()
                                 if v is not None or k in env}
        config.pop("env_file", None)
        services[name] = config
    merged["services"] = services
    facts = {"project_dir": project_dir, "files": paths, "env": env, "profiles": list(profiles)}
    return merged, facts


def active(config: dict[str, Any], profiles: list[str], named: list[str] | None = None,
           name: str = "") -> bool:
    """Whether a service is in the project: it has no profiles, one is active, or it was named."""
    own = config.get("profiles") or []
    return not own or "*" in profiles or any(p in profiles for p in own) or name in (named or [])
