"""Chapter 11: the client's HTTP/1.1 (``client/client.py`` over ``client/wire.py``) against a daemon
that answers byte by byte what each test says: lengths, chunks, kept-alive and closed connections,
hijacks, errors."""

from __future__ import annotations

import io
import json
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from minidocker.client.client import MIN_DAEMON_API_VERSION, APIError, Client, DaemonTooOld, DaemonUnreachable
from minidocker.client.wire import ProtocolError, read_response, send_request

Answer = Callable[[socket.socket, bytes], None]  # (connection, the request as received) -> answers


def _read_request(conn: socket.socket, with_body: bool = True) -> bytes:
    """One request as sent, with its body decoded (Content-Length or chunked): the head + b"\\n\\n" + body."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode().lower().split("\r\n")
    if not with_body:
        return head

    def more(n: int) -> None:
        nonlocal rest
        while len(rest) < n and (chunk := conn.recv(65536)):
            rest += chunk

    if "transfer-encoding: chunked" in lines:
        body = b""
        while True:
            more(rest.find(b"\r\n") + 2 if b"\r\n" in rest else len(rest) + 1)
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line, 16)
            more(size + 2)
            body, rest = body + rest[:size], rest[size + 2:]
            if size == 0:
                return head + b"\n\n" + body
    length = next((int(line.split(":")[1]) for line in lines if line.startswith("content-length:")), 0)
    more(length)
    return head + b"\n\n" + rest[:length]


class FakeDaemon:
    """A UNIX socket; each connection gets the next answer function; requests are kept in order."""

    def __init__(self, path: Path, *answers: Answer, with_body: bool = True) -> None:
        self.host = f"unix://{path}"
        self.requests: list[bytes] = []
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(8)
        self.answers, self.with_body = answers, with_body
        self.open: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        for answer in self.answers:
            conn, _ = self.listener.accept()
            self.open.append(conn)
            request = _read_request(conn, self.with_body)
            self.requests.append(request)
            answer(conn, request)

    def close(self) -> None:
        self.thread.join(timeout=10)
        for conn in self.open:
            conn.close()
        self.listener.close()


@pytest.fixture
def fake(tmp_path):
    made: list[FakeDaemon] = []

    def start(*answers: Answer, with_body: bool = True) -> tuple[Client, FakeDaemon]:
        server = FakeDaemon(tmp_path / f"fake{len(made)}.sock", *answers, with_body=with_body)
        made.append(server)
        return Client(server.host), server

    yield start
    for server in made:
        server.close()


def send(*pieces: bytes, close: bool = False, pause: float = 0.0) -> Answer:
    """An answer: these bytes, in these pieces (``pause`` between them); then close, or keep alive."""
    def answer(conn: socket.socket, _request: bytes) -> None:
        for piece in pieces:
            conn.sendall(piece)
            time.sleep(pause)
        if close:
            conn.close()
    return answer


def chunked(*chunks: bytes) -> bytes:
    return b"".join(b"%x\r\n%b\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"


def test_a_length_delimited_body_on_a_connection_kept_alive(fake):
    """The server keeps the connection open: the body ends where Content-Length says, not at EOF."""
    body = json.dumps({"ApiVersion": "1.50"}).encode()
    client, _ = fake(send(b"HTTP/1.1 100 Continue\r\n\r\n",
                          b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%b"
                          % (len(body), body)))
    response = client.request("GET", "/version", timeout=5)
    assert (response.status, response.getheader("content-type")) == (200, "application/json")
    assert json.loads(response.read()) == {"ApiVersion": "1.50"}
    assert response.read() == b""


def test_a_chunked_body_cut_anywhere_is_put_back_together(fake):
    events = [{"status": "Pulling"}, {"status": "Downloading", "progress": "x" * 3000}, {"status": "Done"}]
    stream = b"".join(json.dumps(e).encode() + b"\n" for e in events)
    wire = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + chunked(stream[:7], stream[7:2000], stream[2000:])[:-5] + b"0;ext=1\r\nX-Trailer: y\r\n\r\n")
    pieces = [wire[i:i + 11] for i in range(0, len(wire), 11)]  # splits size lines and CRLFs
    client, _ = fake(send(*pieces), send(*pieces, pause=0.0005))
    assert list(client.stream_json("POST", "/images/create")) == events
    assert client.request("GET", "/x", timeout=5).read() == stream


def test_a_body_that_lasts_until_the_server_closes(fake):
    client, _ = fake(send(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", b"line 1\nline", b" 2", close=True,
                          pause=0.01))
    assert list(client.request("GET", "/x", timeout=5)) == [b"line 1\n", b"line 2"]


def test_read1_gives_what_has_arrived_without_waiting_for_the_rest(fake):
    """``logs -f`` prints each piece as it comes: read1 must not wait for a full buffer."""
    release = threading.Event()

    def answer(conn: socket.socket, _request: bytes) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        release.wait(5)
        conn.sendall(b"4\r\nnext\r\n0\r\n\r\n")

    client, _ = fake(answer)
    response = client.request("GET", "/containers/x/logs", timeout=5)
    assert response.read1(65536) == b"first"
    release.set()
    assert response.read() == b"next"


def test_the_request_as_sent(fake):
    ok = b"HTTP/1.1 204 No Content\r\n\r\n"
    client, server = fake(send(ok), send(ok), send(ok))
    client.request("POST", "/containers/create", {"name": "a b/é", "all": True, "x": None,
                                                  "names": ["n1", "n2"]}, {"Image": "busybox"}).read()
    client.request("GET", "/containers/my name/json").read()
    client.request("POST", "/build", body=io.BytesIO(b"x" * 100_000),
                   headers={"Content-Type": "application/x-tar"}).read()
    create, inspect, build = (r.partition(b"\n\n") for r in server.requests)
    lines = create[0].decode().split("\r\n")
    assert lines[0] == "POST /v1.50/containers/create?name=a%20b%2F%C3%A9&all=1&names=n1&names=n2 HTTP/1.1"
    assert {"Content-Type: application/json", "Content-Length: 20", "Host: docker"} <= set(lines)
    assert json.loads(create[2]) == {"Image": "busybox"}
    assert inspect[0].decode().split("\r\n")[0] == "GET /v1.50/containers/my%20name/json HTTP/1.1"
    assert "Content-Length" not in inspect[0].decode()
    assert "Transfer-Encoding: chunked" in build[0].decode() and "application/x-tar" in build[0].decode()
    assert build[2] == b"x" * 100_000


def test_errors_carry_the_daemons_message(fake):
    client, _ = fake(
        send(b'HTTP/1.1 404 Not Found\r\nContent-Length: 38\r\n\r\n{"message": "No such container: nope"}'),
        send(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n\r\noops\n"),
        send(b"HTTP/1.1 409 Conflict\r\nContent-Length: 0\r\n\r\n"),
        send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
             + chunked(b'{"status": "a"}\n{"error": "manifest unknown"}\n')))
    with pytest.raises(APIError) as e:
        client.json("GET", "/containers/nope/json")
    assert (e.value.status, str(e.value)) == (404, "No such container: nope")
    with pytest.raises(APIError, match=r"^oops$"):
        client.json("GET", "/x")
    with pytest.raises(APIError, match=r"^Conflict$"):
        client.json("GET", "/x")
    with pytest.raises(APIError, match=r"^manifest unknown$"):
        list(client.stream_json("POST", "/images/create"))


def test_an_error_answered_before_the_body_was_taken(fake):
    """The daemon may refuse a request (a build) without reading its body: its answer still counts."""
    def refuse(conn: socket.socket, _request: bytes) -> None:
        conn.sendall(b'HTTP/1.1 400 Bad Request\r\nContent-Length: 22\r\n\r\n{"message": "bad tar"}')
        conn.close()

    client, _ = fake(refuse, with_body=False)  # it answers from the head, never reading the body
    with pytest.raises(APIError, match=r"^bad tar$"):
        client.request("POST", "/build", body=b"x" * (8 << 20), timeout=10)


def test_no_daemon_is_one_line_that_says_how_to_start_one(fake, tmp_path):
    with pytest.raises(DaemonUnreachable) as e:
        Client(f"unix://{tmp_path}/none.sock").json("GET", "/_ping")
    assert "\n" not in str(e.value) and "start it with 'minidocker daemon start'" in str(e.value)
    client, _ = fake(send(close=True), send(b"SSH-2.0-OpenSSH_9.2\r\n", close=True))
    with pytest.raises(DaemonUnreachable, match=r"without an answer"):
        client.json("GET", "/_ping")
    with pytest.raises(DaemonUnreachable, match=r"not an HTTP/1\.1 answer"):
        client.json("GET", "/_ping")
    with pytest.raises(DaemonUnreachable, match=r"unsupported host"):
        Client("http://localhost:2375")
    with pytest.raises(DaemonUnreachable, match=r"bad host"):
        Client("tcp://localhost:port").json("GET", "/_ping")


def test_an_answer_cut_short_is_an_error_not_a_short_body(fake):
    client, _ = fake(send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789", close=True),
                     send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(b"abc")[:-7],
                          close=True),
                     send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", close=True))
    for _ in range(2):
        with pytest.raises(DaemonUnreachable, match=r"lost the connection.*in the middle of the answer"):
            client.request("GET", "/x", timeout=5).read()
    with pytest.raises(DaemonUnreachable, match=r"bad chunk size"):
        client.request("GET", "/x", timeout=5).read()


def test_hijack_leaves_the_stream_after_the_head_in_the_socket(fake):
    """The container's first bytes come in the same packet as the 101's head: none may be lost."""
    def upgrade(conn: socket.socket, request: bytes) -> None:
        conn.sendall(b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
                     b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\nhello from the container\n")
        conn.sendall(conn.recv(100).upper())  # then echo what the client types

    client, server = fake(upgrade, send(b'HTTP/1.1 409 Conflict\r\nContent-Length: 40\r\n\r\n'
                                        b'{"message": "container is not running"}\n'))
    sock = client.hijack("/containers/c1/attach", {"stream": True, "stdin": True})
    sock.settimeout(5)  # bytes eaten with the head would leave recv() waiting for ever
    try:
        assert sock.recv(100) == b"hello from the container\n"
        sock.sendall(b"typed\n")
        assert sock.recv(100) == b"TYPED\n"
    finally:
        sock.close()
    head = server.requests[0].decode()
    assert head.startswith("POST /v1.50/containers/c1/attach?stream=1&stdin=1 HTTP/1.1\r\n")
    assert "Upgrade: tcp" in head and "Connection: Upgrade" in head
    with pytest.raises(APIError) as e:
        client.hijack("/exec/e1/start", None, {"Detach": False})
    assert (e.value.status, str(e.value)) == (409, "container is not running")


def test_send_request_and_read_response_on_a_socket_pair():
    """The two halves of ``_httpwire`` on their own, as its docstring shows them."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        send_request(ours, "GET", "/_ping", {"Host": "docker"})
        assert theirs.recv(100) == b"GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n"
        theirs.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK")
        response = read_response(ours)
        assert (response.status, response.reason, response.read()) == (200, "OK", b"OK")
        assert ours.fileno() == -1  # the body was read to its end: the connection is closed
    bad, peer = socket.socketpair()
    with bad, peer:
        peer.sendall(b"HTTP/1.1 200 OK\r\n" + b"X-Long: " + b"a" * 70000 + b"\r\n\r\n")
        with pytest.raises(ProtocolError, match=r"too long"):
            read_response(bad)


def answer(status: bytes, version: bytes | None, body: bytes) -> Answer:
    head = b"HTTP/1.1 %s\r\n" % status + (b"Api-Version: %s\r\n" % version if version else b"")
    return send(head + b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


def too_new(theirs: bytes, ours: bytes = b"1.50") -> Answer:
    """dockerd's answer to a version newer than its own: 400, with its version in ``Api-Version``."""
    message = b"client version %s is too new. Maximum supported API version is %s" % (ours, theirs)
    return answer(b"400 Bad Request", theirs, json.dumps({"message": message.decode()}).encode())


def ok(body: bytes = b"[]", version: bytes | None = b"1.41") -> Answer:
    return answer(b"200 OK", version, body)


def targets(server: FakeDaemon) -> list[str]:
    return [r.decode(errors="replace").split(" ")[1] for r in server.requests]


def test_an_older_daemon_is_spoken_to_in_its_version_without_a_ping(fake, monkeypatch):
    """dockerd 20.10 refuses 1.50 saying 1.41: the request is sent again at 1.41, and so are the next
    ones, with no ``/_ping`` first (a command costs no extra round trip). A file body is sent again
    from where it started; a hijack is retried too."""
    monkeypatch.delenv("DOCKER_API_VERSION", raising=False)
    upgrade = send(b"HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
    client, server = fake(too_new(b"1.41"), ok(), ok(), too_new(b"1.41"), ok(), too_new(b"1.41"), upgrade)
    assert client.json("GET", "/containers/json") == [] and client.version == "1.41"
    client.json("GET", "/images/json")
    body = io.BytesIO(b"skip" + b"x" * 100_000)
    body.seek(4)
    Client(server.host).request("POST", "/build", body=body).read()
    Client(server.host).hijack("/containers/c1/attach", {"stream": True}).close()
    assert targets(server) == ["/v1.50/containers/json", "/v1.41/containers/json", "/v1.41/images/json",
                               "/v1.50/build", "/v1.41/build",
                               "/v1.50/containers/c1/attach?stream=1", "/v1.41/containers/c1/attach?stream=1"]
    assert [r.partition(b"\n\n")[2] for r in server.requests[3:5]] == [b"x" * 100_000] * 2


def test_a_newer_daemon_or_one_that_does_not_say_is_spoken_to_in_ours(fake, monkeypatch):
    monkeypatch.delenv("DOCKER_API_VERSION", raising=False)
    client, server = fake(ok(version=b"1.52"), ok(), ok(version=None), ok())
    client.json("GET", "/containers/json")
    client.json("GET", "/containers/json")  # once negotiated, a later answer's header changes nothing
    other = Client(server.host)
    other.json("GET", "/x")
    other.json("GET", "/x")
    assert targets(server) == ["/v1.50/containers/json"] * 2 + ["/v1.50/x"] * 2


def test_a_body_that_cannot_be_sent_twice_waits_for_a_ping(fake, monkeypatch):
    """A pipe (``load < image.tar`` from a pipe) cannot be rewound: the version is asked first."""
    monkeypatch.delenv("DOCKER_API_VERSION", raising=False)
    client, server = fake(ok(b"OK"), ok())
    read_end, write_end = os.pipe()
    os.write(write_end, b"a tar")
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        client.request("POST", "/images/load", body=pipe).read()
    assert targets(server) == ["/_ping", "/v1.41/images/load"]
    assert server.requests[1].endswith(b"\n\na tar")


def test_a_daemon_too_old_for_our_requests_is_one_line(fake, monkeypatch):
    monkeypatch.delenv("DOCKER_API_VERSION", raising=False)
    client, _ = fake(too_new(b"1.25"))
    with pytest.raises(DaemonTooOld) as e:
        client.json("GET", "/containers/json")
    assert "\n" not in str(e.value)
    assert f"speaks Docker API 1.25, older than the {MIN_DAEMON_API_VERSION} minidocker needs" in str(e.value)


def test_docker_api_version_is_spoken_as_given_never_negotiated(fake, monkeypatch):
    monkeypatch.setenv("DOCKER_API_VERSION", "v1.44")
    client, server = fake(too_new(b"1.41", b"1.44"), ok())
    with pytest.raises(APIError, match=r"^client version 1.44 is too new"):  # the daemon's answer, as is
        client.json("GET", "/containers/json")
    client.json("GET", "/containers/json")
    assert targets(server) == ["/v1.44/containers/json"] * 2
    monkeypatch.setenv("DOCKER_API_VERSION", "latest")
    with pytest.raises(DaemonUnreachable, match=r"bad DOCKER_API_VERSION 'latest'"):
        Client(server.host)
