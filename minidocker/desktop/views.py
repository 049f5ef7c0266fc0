"""What the page lists, from the Engine API alone: containers, images (with their layers), volumes,
networks; and the few facts the API leaves to its clients (health, Compose project, who uses what).

Why compute here and not in the page? The page stays a view: it draws what it is given. And this
is where a reader sees which calls a dashboard needs: ``GET /containers/json?all=1``,
``/images/json``, ``/volumes``, ``/networks``, and ``/images/{id}/history`` once per image (an
image's layers never change, so its history is cached by ID).

Example::

    >>> lists = Views(client).overview()
    >>> [c["Name"] for c in lists["containers"]], lists["images"][0]["Tags"]
    (['web'], ['busybox:latest'])
"""

from __future__ import annotations

import re
from typing import Any

from minidocker.client.client import APIError, Client

__all__ = ["PROJECT", "Views", "health"]

PROJECT = "com.docker.compose.project"
_HEALTH = re.compile(r"\((healthy|unhealthy|health: starting)\)")


def health(status: str) -> str:
    """The health in a list's Status (``Up 3 seconds (healthy)`` -> ``healthy``), '' if none."""
    found = _HEALTH.search(status or "")
    return found.group(1).replace("health: ", "") if found else ""


class Views:
    """The lists of one daemon, shaped for the page."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.histories: dict[str, list[dict[str, Any]]] = {}

    # --8<-- [start:overview]
    def overview(self) -> dict[str, Any]:
        """Everything the page shows, in four calls (plus one history per image not seen before)."""
        containers = self.client.json("GET", "/containers/json", {"all": True})
        images = self.client.json("GET", "/images/json")
        volumes = self.client.json("GET", "/volumes").get("Volumes") or []
        networks = self.client.json("GET", "/networks")
        users: dict[str, list[str]] = {}
        for c in containers:
            c["Name"] = (c.get("Names") or ["/?"])[0].lstrip("/")
            c["Health"] = health(c.get("Status", ""))
            c["Project"] = (c.get("Labels") or {}).get(PROJECT, "")
            mode = (c.get("HostConfig") or {}).get("NetworkMode") or "default"
            c["NetworkNames"] = sorted((c.get("NetworkSettings") or {}).get("Networks") or {}) or [
                "bridge" if mode == "default" else mode]  # a daemon may list only the networks it made
            users.setdefault(c.get("ImageID", ""), []).append(c["Name"])
        for image in images:
            image["Tags"] = [t for t in image.get("RepoTags") or [] if t != "<none>:<none>"]
            image["UsedBy"] = users.get(image["Id"], [])
            image["Layers"] = self.layers(image["Id"])
        return {"containers": containers, "images": images, "volumes": volumes, "networks": networks}
    # --8<-- [end:overview]

    def layers(self, image_id: str) -> list[dict[str, Any]]:
        """The image's layers, oldest first: size and the instruction that made each (empty ones left out)."""
        if image_id not in self.histories:
            try:
                history = self.client.json("GET", f"/images/{image_id}/history")
            except APIError:
                return []
            self.histories[image_id] = [
                {"Size": h.get("Size", 0), "CreatedBy": (h.get("CreatedBy") or "")[:200]}
                for h in reversed(history or []) if h.get("Size")]
        return self.histories[image_id]
