"""Chapter 07: image references, parsed exactly as Docker parses them.

``busybox`` is short for ``docker.io/library/busybox:latest``: a *registry* (``docker.io``), a
*repository* (``library/busybox``) and a *tag* (``latest``), or instead of the tag a *digest*
(``@sha256:…``) that names one exact manifest. Docker's rules decide which part is which: the first
path component is a registry only if it has a ``.`` or a ``:`` or is ``localhost`` (so
``127.0.0.1:5000/app`` is on a local registry, ``bitnami/redis`` is on Docker Hub); Docker Hub
names with one component live under ``library/``; repository names are lower case.

Example::

    >>> ref = parse("busybox")
    >>> str(ref), ref.registry, ref.repository, ref.tag
    ('docker.io/library/busybox:latest', 'docker.io', 'library/busybox', 'latest')
    >>> parse("127.0.0.1:5000/team/app:v1").registry, parse("bitnami/redis").familiar
    ('127.0.0.1:5000', 'bitnami/redis:latest')
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from minidocker.core.errors import InvalidArgument

__all__ = ["DOCKER_HUB", "Reference", "parse"]

DOCKER_HUB = "docker.io"
DEFAULT_TAG = "latest"

# The grammar of github.com/distribution/reference, as regular expressions.
_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALPHANUMERIC}(?:{_SEPARATOR}{_ALPHANUMERIC})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(rf"({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?")
_HEX_LENGTH = {"sha256": 64, "sha384": 96, "sha512": 128}
_FORMAT = "expected [REGISTRY[:PORT]/]NAME[:TAG][@sha256:DIGEST], e.g. busybox:latest"


@dataclass(frozen=True)
class Reference:
    """A parsed image reference: where the image lives and which version of it.

    ``str(ref)`` is the full, normalized name (``docker.io/library/busybox:latest``);
    ``ref.familiar`` is the short form Docker shows (``busybox:latest``).
    """

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """Registry and repository: ``docker.io/library/busybox``."""
        return f"{self.registry}/{self.repository}"

    @property
    def familiar_name(self) -> str:
        """The name as ``docker images`` shows it: Docker Hub's prefix and ``library/`` left out."""
        if self.registry != DOCKER_HUB:
            return self.name
        official = self.repository.count("/") == 1
        return self.repository.removeprefix("library/") if official else self.repository

    @property
    def familiar(self) -> str:
        """The short form of the whole reference: ``busybox:latest``."""
        return self.familiar_name + self._suffix()

    @property
    def reference(self) -> str:
        """What to ask the registry for: the digest if there is one, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def with_tag(self, tag: str) -> Reference:
        """The same repository with another tag (and no digest)."""
        return replace(self, tag=tag, digest=None)

    def with_digest(self, digest: str) -> Reference:
        """The same repository pinned to ``digest`` (and no tag), as in ``RepoDigests``."""
        return replace(self, tag=None, digest=digest)

    def _suffix(self) -> str:
        return (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    def __str__(self) -> str:
        return self.name + self._suffix()


# exercise 07.1: Parse an image reference as docker pull does
# hint: a 64-hex name is refused; _REFERENCE.fullmatch gives (name, tag, digest) (lowercase-only hint if
#   only the lower-cased text matches); the first component is a registry only with '.', ':', 'localhost'
#   or upper case, else DOCKER_HUB (index.docker.io too), whose one-part names get 'library/'; check the
#   digest's length in _HEX_LENGTH; default_tag without tag or digest; one-line InvalidArguments.
# --8<-- [start:parse]
def parse(text: str, default_tag: str | None = DEFAULT_TAG) -> Reference:
    """Parse an image reference the way ``docker pull`` does, or raise a one-line :class:`InvalidArgument`.

    Without a tag or digest, ``default_tag`` is used (``latest``; pass ``None`` to keep none).
    """
    if re.fullmatch(r"[a-f0-9]{64}", text):
        raise InvalidArgument(f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings")
    match = _REFERENCE.fullmatch(text)
    if not match:
        if _REFERENCE.fullmatch(text.lower()):
            raise InvalidArgument(f"invalid reference format: repository name ({text}) must be lowercase")
        raise InvalidArgument(f"invalid reference format: {text!r} ({_FORMAT})")
    name, tag, digest = match.groups()
    if len(name) > 255:
        raise InvalidArgument(f"invalid reference format: repository name ({name[:40]}…) must not be more "
                          "than 255 characters")
    # Is the first component a registry? Only with a '.', a ':', as 'localhost', or in upper case.
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost" or first.lower() != first):
        registry, repository = first, rest
    else:
        registry, repository = DOCKER_HUB, name
    if registry == "index.docker.io":
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    if repository.lower() != repository:
        raise InvalidArgument(f"invalid reference format: repository name ({repository}) must be lowercase")
    if digest:
        algorithm, _, hexdigits = digest.partition(":")
        if algorithm not in _HEX_LENGTH:
            raise InvalidArgument(f"invalid reference format: unsupported digest algorithm {algorithm!r}")
        if len(hexdigits) != _HEX_LENGTH[algorithm]:
            raise InvalidArgument(f"invalid reference format: invalid checksum digest length in {digest!r}")
    if not tag and not digest:
        tag = default_tag
    return Reference(registry, repository, tag, digest)
# --8<-- [end:parse]
