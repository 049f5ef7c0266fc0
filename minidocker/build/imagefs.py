"""Chapter 08: an image's files, read straight from its layers, with no mount and no container.

``COPY`` must know what the image being built already holds: is ``/app`` a directory? is
``/usr/local/bin`` a symlink (then the file goes where it points)? which uid is ``www-data``? And
``COPY --from=build`` reads files out of another stage's image. None of that needs a container:
an image's filesystem is its layers stacked as overlayfs would stack them, so chapter 04's lookup
(:func:`minidocker.overlay.lookup.dir_layers`) answers it from the layer directories themselves.

Symlinks are followed *inside* the image only, as if the image were ``/``: an absolute link
``/etc -> /host-etc`` means the image's ``/host-etc``, never the host's. A build context is the
same kind of tree, with one layer: the same code reads it, with the same guarantee.

Example::

    >>> fs = ImageFS([store.path(d) for d in reversed(image.diff_ids)])   # top layer first
    >>> fs.resolve("/bin/sh")                 # /bin -> usr/bin on Debian
    '/usr/bin/dash'
    >>> fs.lookup_user("www-data:www-data")
    (33, 33)
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

from minidocker.core.process import EngineError
from minidocker.overlay.lookup import dir_layers, lower_names

__all__ = ["MAX_SYMLINKS", "ImageFS"]

MAX_SYMLINKS = 40  # as the kernel's path lookup


class ImageFS:
    """A read-only tree made of directories stacked top first: an image's layers, or a context."""

    def __init__(self, layers: Sequence[str | os.PathLike]) -> None:
        self.layers = [Path(p) for p in layers]

    @staticmethod
    def parts(path: str) -> list[str]:
        return [p for p in path.split("/") if p not in ("", ".")]

    def find(self, path: str) -> tuple[Path, os.stat_result] | None:
        """Where the entry ``path`` really is on disk (its topmost copy) and its lstat; None if absent."""
        parts = self.parts(path)
        if not parts:
            return (self.layers[0], os.lstat(self.layers[0])) if self.layers else None
        for layer in dir_layers(self.layers, parts[:-1]):
            real = layer.joinpath(*parts)
            try:
                st = os.lstat(real)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:  # a whiteout: deleted in this layer
                return None
            return real, st
        return None

    def is_dir(self, path: str) -> bool:
        """Whether ``path`` (followed, in the image) is a directory; the root always is."""
        if not self.parts(path):
            return True
        found = self.find(self.resolve(path))
        return found is not None and stat.S_ISDIR(found[1].st_mode)

    def listdir(self, path: str) -> list[str]:
        """The names in directory ``path`` (not followed), merged across layers, sorted."""
        return sorted(lower_names(self.layers, "/".join(self.parts(path)))) if self.layers else []

    # --8<-- [start:resolve]
    def resolve(self, path: str, *, follow_last: bool = True) -> str:
        """``path`` with every symlink on the way replaced by its target, inside the image.

        ``..`` never climbs above the image's root and an absolute target starts again from
        the image's root: like ``chroot``, nothing can point outside. ``follow_last=False``
        leaves a final symlink as it is (``COPY`` then replaces the link, not its target).
        """
        todo, done, hops = self.parts(path), [], 0
        while todo:
            part = todo.pop(0)
            if part == "..":
                if done:
                    done.pop()
                continue
            found = self.find("/".join([*done, part]))
            if found and stat.S_ISLNK(found[1].st_mode) and (todo or follow_last):
                hops += 1
                if hops > MAX_SYMLINKS:
                    raise EngineError(f"too many levels of symbolic links in {path!r}")
                target = os.readlink(found[0])
                if target.startswith("/"):
                    done = []
                todo = self.parts(target) + todo
                continue
            done.append(part)
        return "/" + "/".join(done)
    # --8<-- [end:resolve]

    def tree(self, path: str) -> Iterator[tuple[str, Path, os.stat_result]]:
        """Everything below the directory ``path``: ``(relative path, real path, lstat)``, parents
        first, sorted; symlinks are listed, never followed."""
        base = "/".join(self.parts(path))
        for name in self.listdir(base):
            rel = f"{base}/{name}" if base else name
            found = self.find(rel)
            if found is None:
                continue
            yield rel[len(base) + 1:] if base else rel, found[0], found[1]
            if stat.S_ISDIR(found[1].st_mode):
                for sub, real, st in self.tree(rel):
                    yield f"{name}/{sub}", real, st

    def read_text(self, path: str) -> str | None:
        """The text of a (small) file of the image, symlinks followed inside it; None if absent."""
        found = self.find(self.resolve(path))
        if found is None or not stat.S_ISREG(found[1].st_mode):
            return None
        return found[0].read_text(errors="replace")

    # --8<-- [start:lookup_user]
    def lookup_user(self, spec: str) -> tuple[int, int]:
        """``COPY --chown=USER[:GROUP]`` -> ``(uid, gid)``, names from the image's passwd and group.

        Docker's rule: without a group, the gid is the uid's *number* (``--chown=10`` is 10:10).
        """
        user, _, group = spec.partition(":")

        def number(name: str, file: str, what: str) -> int:
            if name.isdigit():
                return int(name)
            for line in (self.read_text(file) or "").splitlines():
                fields = line.split(":")
                if len(fields) >= 3 and fields[0] == name and fields[2].isdigit():
                    return int(fields[2])
            raise EngineError(f"unable to convert {what} {name!r} to a number: no such name in the "
                              f"image's {file}")

        uid = number(user, "/etc/passwd", "uid")
        return uid, number(group, "/etc/group", "gid") if group else uid
    # --8<-- [end:lookup_user]
