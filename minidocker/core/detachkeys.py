"""The detach sequence: the keys that leave an attached terminal without stopping what runs in it.

``docker attach`` (and ``run -it``, ``exec -it``) hand the user's keyboard to a process in a
container: Ctrl-C goes to that process, not to the client. So leaving needs keys of its own, by
default Ctrl-P then Ctrl-Q (``--detach-keys`` or the ``detachKeys`` query parameter change them:
a comma-separated list of single characters and ``ctrl-X`` names). Whoever reads the keystrokes
watches for it: the daemon on the attach's stdin, the client on its terminal. Bytes that might be
the start of the sequence are held back until the next byte tells; if it is not the sequence they
go on unchanged, so a lone Ctrl-P still reaches the process.

Example::

    >>> watch = EscapeWatcher(parse("ctrl-p,ctrl-q"))
    >>> watch.feed(b"ls\\x10")
    (b'ls', False)
    >>> watch.feed(b"\\x11")
    (b'', True)
"""

from __future__ import annotations

__all__ = ["DEFAULT", "EscapeWatcher", "parse"]

DEFAULT = "ctrl-p,ctrl-q"
# Docker's names (moby/term's ToBytes): ctrl-@ is 0, ctrl-a..ctrl-z 1..26, then ctrl-[ \ ] ^ _
_CONTROL = {f"ctrl-{c}": n for n, c in enumerate("@abcdefghijklmnopqrstuvwxyz[\\]^_")}


def parse(keys: str) -> bytes:
    """The bytes of a detach sequence like ``ctrl-p,ctrl-q`` or ``ctrl-x,x``; ValueError if malformed.

    Example: ``parse("ctrl-a,d") == b"\\x01d"``.
    """
    codes = bytearray()
    for key in keys.split(","):
        if len(key) == 1 and ord(key) < 128:
            codes.append(ord(key))
        elif key.lower() in _CONTROL:
            codes.append(_CONTROL[key.lower()])
        elif key == "DEL":
            codes.append(127)
        else:
            raise ValueError(f"Unknown character: '{key}'")
    return bytes(codes)


class EscapeWatcher:
    """Find the detach sequence in a stream of input chunks, passing every other byte on unchanged."""

    def __init__(self, sequence: bytes) -> None:
        self.sequence = sequence or parse(DEFAULT)
        self.matched = 0  # how many bytes of the sequence the input ended with (held back)

    # --8<-- [start:feed]
    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """``(bytes to pass on, detached?)``; on detach, what came after the sequence is dropped."""
        out = bytearray()
        for byte in data:
            if byte == self.sequence[self.matched]:
                self.matched += 1
                if self.matched == len(self.sequence):
                    self.matched = 0
                    return bytes(out), True
                continue
            out += self.sequence[:self.matched]  # a false start: those keys were meant for the process
            self.matched = 1 if byte == self.sequence[0] else 0
            if not self.matched:
                out.append(byte)
        return bytes(out), False
    # --8<-- [end:feed]
