"""Chapter 09: the push side of the registry API: upload sessions, chunks, mounts, publishing.

A push sends each blob before the manifest that names it. A blob upload is a small protocol of
its own, with three ways to do it, all ending the same way (the server verifies the digest and
publishes the blob):

    POST /v2/NAME/blobs/uploads/                   -> 202 Location: /v2/NAME/blobs/uploads/UUID
    PATCH /v2/NAME/blobs/uploads/UUID  (bytes)     -> 202 Range: 0-LAST        (repeat: chunks)
    PUT   /v2/NAME/blobs/uploads/UUID?digest=D     -> 201 Location: /v2/NAME/blobs/D

    POST /v2/NAME/blobs/uploads/?digest=D (bytes)  -> 201                      (all in one request)
    POST /v2/NAME/blobs/uploads/?mount=D&from=OTHER -> 201                     (no bytes at all)

The session lives in the storage directory, not in the server's memory: a PATCH may reach one
server process and the PUT another, and a client can ask where an interrupted upload stopped
(``GET`` the upload: ``Range: 0-LAST``) and go on from there.

Example (what ``curl`` would do)::

    POST  /v2/demo/blobs/uploads/                                   -> 202
    PATCH /v2/demo/blobs/uploads/4f1c…  Content-Range: 0-4  "hello"  -> 202 Range: 0-4
    PUT   /v2/demo/blobs/uploads/4f1c…?digest=sha256:2cf24dba…      -> 201
"""

from __future__ import annotations

import asyncio
import re

from aiohttp import web

from minidocker.core.digests import check_digest
from minidocker.core.errors import InvalidArgument, Kind, NotFound
from minidocker.registry.blobstore import BlobStore, UploadError
from minidocker.registry.protocol import ProtocolError
from minidocker.registry.store import Repositories

__all__ = ["UploadHandlers"]

_CONTENT_RANGE = re.compile(r"^(?:bytes )?(\d+)-(\d+)(?:/(?:\d+|\*))?$")


class UploadHandlers:
    """The upload endpoints; :class:`registry_server.Registry` inherits them and routes to them."""

    store: BlobStore
    repos: Repositories

    # -- uploads-------------------------------------------------------------------------------
    # --8<-- [start:start_upload]
    async def start_upload(self, request: web.Request, name: str) -> web.Response:
        """POST: mount a blob from another repository, take a whole blob, or open an upload session."""
        query = request.query
        if "mount" in query:
            digest, source = query["mount"], query.get("from", "")
            check_digest(digest)
            allowed = source and request["identity"].may(source, "pull")
            if allowed and self.repos.blob_size(source, digest) is not None:
                self.repos.link_blob(name, digest)
                self.store.touch(digest, older_than=0)
                return self._created(name, digest)
        upload = self.store.start_upload(name)
        if "digest" in query:  # a monolithic upload in one request
            return await self.finish_upload(request, name, upload)
        return self._upload_response(202, name, upload, 0)
    # --8<-- [end:start_upload]

    async def upload_status(self, request: web.Request, name: str, upload: str) -> web.Response:
        size = self._upload_size(name, upload)
        return self._upload_response(204, name, upload, size)

    async def patch_upload(self, request: web.Request, name: str, upload: str) -> web.Response:
        """PATCH: one chunk (``Content-Range: START-END``) or the rest of the stream (no range)."""
        self._upload_size(name, upload)
        size = await self._receive(request, name, upload)
        return self._upload_response(202, name, upload, size)

    # --8<-- [start:finish_upload]
    async def finish_upload(self, request: web.Request, name: str, upload: str) -> web.Response:
        """PUT ?digest=D: take the last bytes if any, verify the whole upload is D, publish it."""
        digest = request.query.get("digest", "")
        check_digest(digest)
        self._upload_size(name, upload)
        if request.body_exists:
            await self._receive(request, name, upload)
        loop = asyncio.get_running_loop()
        try:  # hashing and fsync take time: off the event loop
            await loop.run_in_executor(None, self.store.finish_upload, upload, digest)
        except UploadError as e:
            raise self._upload_error(e, name, upload) from None
        self.repos.link_blob(name, digest)
        return self._created(name, digest)
    # --8<-- [end:finish_upload]

    async def cancel_upload(self, request: web.Request, name: str, upload: str) -> web.Response:
        self._upload_size(name, upload)
        self.store.cancel_upload(upload)
        return web.Response(status=204)

    # --8<-- [start:receive]
    async def _receive(self, request: web.Request, name: str, upload: str) -> int:
        """Stream the request body onto the end of the upload; return the upload's new size."""
        offset = length = None
        if "Content-Range" in request.headers:
            match = _CONTENT_RANGE.match(request.headers["Content-Range"])
            if not match or int(match.group(2)) < int(match.group(1)):
                raise ProtocolError(416, "Content-Range must be START-END (inclusive)",
                                    code="BLOB_UPLOAD_INVALID")
            offset, length = int(match.group(1)), int(match.group(2)) - int(match.group(1)) + 1
            if request.content_length is not None and request.content_length != length:
                raise InvalidArgument(f"Content-Length {request.content_length} does not match Content-Range "
                                      f"{request.headers['Content-Range']}", code="SIZE_INVALID")
        try:
            with self.store.append(upload, offset, length) as writer:
                async for chunk in request.content.iter_chunked(1 << 20):
                    writer.write(chunk)
                if length is not None and writer.offset != offset + length:
                    raise UploadError(f"the chunk ended after {writer.offset - offset} of {length} bytes",
                                      "size")
            return writer.offset
        except UploadError as e:
            raise self._upload_error(e, name, upload) from None
    # --8<-- [end:receive]

    def _upload_size(self, name: str, upload: str) -> int:
        try:
            return self.store.upload_size(upload, name)
        except UploadError as e:
            raise self._upload_error(e, name, upload) from None

    def _upload_error(self, e: UploadError, name: str, upload: str) -> Kind:
        """The kind of a failed upload: unknown session 404, wrong offset 416 (with its size), else 400."""
        if e.kind == "unknown":
            return NotFound(str(e), code="BLOB_UPLOAD_UNKNOWN")
        if e.kind == "offset":
            return ProtocolError(416, str(e), code="BLOB_UPLOAD_INVALID", detail={"size": e.size})
        return InvalidArgument(str(e), code="SIZE_INVALID" if e.kind == "size" else "BLOB_UPLOAD_INVALID")

    @staticmethod
    def _upload_response(status: int, name: str, upload: str, size: int) -> web.Response:
        return web.Response(status=status, headers={
            "Location": f"/v2/{name}/blobs/uploads/{upload}", "Range": f"0-{max(size - 1, 0)}",
            "Docker-Upload-UUID": upload, "Content-Length": "0"})

    @staticmethod
    def _created(name: str, digest: str) -> web.Response:
        return web.Response(status=201, headers={"Location": f"/v2/{name}/blobs/{digest}",
                                                 "Docker-Content-Digest": digest, "Content-Length": "0"})
