"""Chapter 11: ``--format`` as docker's CLI reads it, for ``ps`` and ``events``: not a Go-template engine.

What people type is a handful of shapes, and these are what we take:

* ``{{.Names}} {{.Status}}``: the fields of one row (the *formatted* ones, as ``docker ps`` has them);
* ``{{.Label "com.docker.compose.service"}}``: one label of the row;
* ``{{json .}}``, ``{{json .Labels}}``: a value as JSON;
* ``table {{.ID}}\\t{{.Image}}``: a header line from the field names, columns at each ``\\t``.

Example::

    >>> row = ps_row({"Id": "4bf2315b4ab9aa", "Names": ["/web"], "Image": "busybox", ...})
    >>> render("table {{.ID}}\\t{{.Names}}", [row], PS_HEADERS)
    'CONTAINER ID   NAMES\\n4bf2315b4ab9   web'
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from minidocker.core.console import ago, table

__all__ = ["EVENT_HEADERS", "PS_HEADERS", "event_line", "ps_row", "render", "render_one"]

PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
              "RunningFor": "CREATED", "Ports": "PORTS", "Status": "STATUS", "Size": "SIZE", "Names": "NAMES",
              "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS", "State": "STATE",
              "LocalVolumes": "LOCAL VOLUMES"}
EVENT_HEADERS: dict[str, str] = {}
_FIELD = re.compile(r"\{\{(.*?)\}\}")


class Row(dict):
    """A row of fields, with the labels behind ``{{.Label "k"}}``."""

    labels: dict[str, str]


def _ports(ports: list[dict]) -> str:
    return ", ".join(f"{p.get('IP', '0.0.0.0')}:{p['PublicPort']}->{p['PrivatePort']}/{p['Type']}"
                     if p.get("PublicPort") else f"{p['PrivatePort']}/{p['Type']}" for p in ports)


def ps_row(c: dict[str, Any], no_trunc: bool = False) -> Row:
    """One entry of ``GET /containers/json`` as ``docker ps --format`` sees it (strings all)."""
    command = c.get("Command") or ""
    if not no_trunc and len(command) > 20:
        command = command[:19] + "…"
    labels = c.get("Labels") or {}
    networks = c.get("NetworkSettings", {}).get("Networks") or {}
    mode = (c.get("HostConfig") or {}).get("NetworkMode") or ""
    row = Row(
        ID=c["Id"] if no_trunc else c["Id"][:12], Image=c.get("Image", ""), Command=f'"{command}"',
        CreatedAt=time.strftime("%Y-%m-%d %H:%M:%S %z %Z", time.localtime(c.get("Created", 0))),
        RunningFor=ago(c.get("Created", 0)), Ports=_ports(c.get("Ports") or []), Status=c.get("Status", ""),
        Size="0B", Names=",".join(n.lstrip("/") for n in c.get("Names") or []),
        Labels=",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        Mounts=",".join(m.get("Name") or m.get("Source", "") for m in c.get("Mounts") or []),
        Networks=",".join(sorted(networks)) or ("bridge" if mode in ("default", "") else mode),
        State=c.get("State", ""),
        LocalVolumes=str(sum(m.get("Type") == "volume" for m in c.get("Mounts") or [])))
    row.labels = labels
    return row


def _value(row: Any, expression: str) -> Any:
    """``.A.B``, ``.Label "k"`` or ``.`` of ``row``."""
    expression = expression.strip()
    if expression == ".":
        return row
    match = re.fullmatch(r'\.Label\s+"([^"]*)"', expression)
    if match:
        return getattr(row, "labels", {}).get(match.group(1), "")
    value = row
    for part in filter(None, expression.lstrip(".").split(".")):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _show(value: Any) -> str:
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_show(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_show(v) for v in value) + "]"
    return str(value)


# exercise 11.3: Render one line of a --format template
# hint: substitute every {{ ... }} (_FIELD) after turning the two-character escapes \t and \n into
#   a tab and a newline: "json X" is json.dumps(_value(row, X)) without spaces, anything else
#   _show(_value(row, expression)).
# --8<-- [start:render_one]
def render_one(template: str, row: Any) -> str:
    """One line of ``template`` for ``row``: ``{{.Field}}``, ``{{.Label "k"}}``, ``{{json X}}``."""

    def one(match: re.Match) -> str:
        expression = match.group(1).strip()
        if expression.startswith("json "):
            return json.dumps(_value(row, expression[5:]), separators=(",", ":"))
        return _show(_value(row, expression))

    return _FIELD.sub(one, template.replace("\\t", "\t").replace("\\n", "\n"))
# --8<-- [end:render_one]


# --8<-- [start:render]
def render(template: str, rows: list[Any], headers: dict[str, str]) -> str:
    """Every row; with ``table``, a header from the fields' names and columns aligned at each tab."""
    if not template.startswith("table"):
        return "\n".join(render_one(template, row) for row in rows)
    body = template[5:].strip() or ("{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t"
                                     "{{.Ports}}\t{{.Names}}")

    def title(match: re.Match) -> str:
        expression = match.group(1).strip()
        label = re.fullmatch(r'\.Label\s+"([^"]*)"', expression)
        if label:
            return label.group(1).upper()
        name = expression.removeprefix("json ").strip().lstrip(".")
        return headers.get(name, name.upper())

    cells = [_FIELD.sub(title, body.replace("\\t", "\t")).split("\t")]
    cells += [render_one(body, row).split("\t") for row in rows]
    width = max(len(r) for r in cells)
    return table([r + [""] * (width - len(r)) for r in cells])
# --8<-- [end:render]


def event_line(event: dict[str, Any]) -> str:
    """An event as ``docker events`` prints it by default:
    ``2024-01-02T03:04:05.123456789+01:00 container start ID (image=busybox, name=web)``."""
    nanos = int(event.get("timeNano") or int(event.get("time", 0)) * 1_000_000_000)
    seconds, fraction = divmod(nanos, 1_000_000_000)
    local = time.localtime(seconds)
    zone = time.strftime("%z", local)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", local) + f".{fraction:09d}{zone[:3]}:{zone[3:]}"
    actor = event.get("Actor") or {}
    attributes = ", ".join(f"{k}={v}" for k, v in sorted((actor.get("Attributes") or {}).items()))
    return f"{stamp} {event.get('Type')} {event.get('Action')} {actor.get('ID', '')}" + (
        f" ({attributes})" if attributes else "")
