"""Chapter 12: our CLI's network commands (``network create|ls|inspect|rm|prune|connect|disconnect`` and
``run --network/--ip/--network-alias/--mac-address``).

First against a fake daemon that records each request, so the bodies are checked against Docker's
API (NetworkCreateRequest, NetworkConnectRequest, NetworkingConfig) whatever the daemon does; then,
once chapter 12's daemon side is in the tree, against a real minidockerd on a private socket: two
networks, names that resolve within one and not across, connect and disconnect live, and the
refusals as one line each.
"""

from __future__ import annotations

import json
import re
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from minidocker.client import cli

# ----------------------------------------------------------------------------------------------------
# A fake daemon: every request recorded, answers from a table (method, path without /vX.Y) -> (status, body)


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class FakeDaemon:
    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.requests: list[tuple[str, str, dict | None]] = []
        self.answers: dict[tuple[str, str], tuple[int, object]] = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: object) -> None:
                pass

            def address_string(self) -> str:
                return "fake"

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                path = re.sub(r"^/v[0-9.]+", "", self.path)
                fake.requests.append((self.command, path, json.loads(raw) if raw else None))
                status, body = fake.answers.get((self.command, path.partition("?")[0]), (200, {}))
                data = json.dumps(body).encode() if not isinstance(body, bytes) else body
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Api-Version", "1.50")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _any

        self.server = _Server(self.path, Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake(tmp_path):
    server = FakeDaemon(tmp_path / "fake.sock")
    yield server
    server.close()


def run_cli(fake: FakeDaemon, capsys, *args: str) -> tuple[int, str, str]:
    try:
        code = cli.main(["-H", f"unix://{fake.path}", *args])
    except SystemExit as e:  # a usage error: argparse's, or ours with a message
        code = e.code if isinstance(e.code, int) else 1
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
    out, err = capsys.readouterr()
    return code, out, err


NID = "5f2c0e7d1a9b" + "0" * 52


def test_create_sends_dockers_body_and_prints_the_id(fake, capsys):
    fake.answers[("POST", "/networks/create")] = (201, {"Id": NID, "Warning": ""})
    code, out, err = run_cli(fake, capsys, "network", "create", "--subnet", "10.89.0.0/24", "--gateway",
                             "10.89.0.254", "--ip-range", "10.89.0.128/25", "--internal", "--attachable",
                             "--label", "tier=back", "-o", "com.docker.network.bridge.name=br-back",
                             "backend")
    assert (code, out, err) == (0, NID + "\n", "")
    method, path, body = fake.requests[-1]
    assert (method, path) == ("POST", "/networks/create")
    assert body == {"Name": "backend", "Driver": "bridge", "Internal": True, "Attachable": True,
                    "EnableIPv6": False, "Labels": {"tier": "back"},
                    "Options": {"com.docker.network.bridge.name": "br-back"},
                    "IPAM": {"Driver": "default", "Options": {}, "Config": [
                        {"Subnet": "10.89.0.0/24", "IPRange": "10.89.0.128/25", "Gateway": "10.89.0.254"}]}}


@pytest.mark.parametrize(("args", "message"), [
    (["--gateway", "10.1.0.1"], "every ip-range or gateway must have a corresponding subnet"),
    (["--subnet", "10.1.0.0/24", "--gateway", "10.2.0.1"], "no matching subnet for gateway 10.2.0.1"),
    (["--subnet", "10.1.0.0/24", "--ip-range", "10.1.1.0/25"], "no matching subnet for range 10.1.1.0/25"),
    (["--subnet", "10.1.0.0/16", "--subnet", "10.1.2.0/24"],
     "multiple overlapping subnet configuration is not supported"),
    (["--subnet", "10.1.0.0/33"], "invalid argument: "),
])
def test_create_checks_the_ipam_options_as_docker_does_before_sending(fake, capsys, args, message):
    code, out, err = run_cli(fake, capsys, "network", "create", *args, "n")
    assert code != 0 and out == "" and err.startswith(message) and err.count("\n") == 1, err
    assert fake.requests == []


def test_a_refusal_is_one_line_from_the_daemon(fake, capsys):
    fake.answers[("POST", "/networks/create")] = (409, {
        "message": "network with name backend already exists"})
    fake.answers[("DELETE", "/networks/backend")] = (409, {
        "message": "error while removing network: network backend has active endpoints"})
    code, _, err = run_cli(fake, capsys, "network", "create", "backend")
    assert (code, err) == (1, "Error response from daemon: network with name backend already exists\n")
    code, out, err = run_cli(fake, capsys, "network", "rm", "backend")
    assert (code, out) == (1, "") and err == ("Error response from daemon: error while removing network: "
                                              "network backend has active endpoints\n")


def test_connect_and_disconnect_bodies(fake, capsys):
    code, out, err = run_cli(fake, capsys, "network", "connect", "--ip", "10.89.0.7", "--alias", "db",
                             "--alias", "store", "backend", "web")
    assert (code, out, err) == (0, "", "")
    assert fake.requests[-1] == ("POST", "/networks/backend/connect", {
        "Container": "web", "EndpointConfig": {"IPAMConfig": {"IPv4Address": "10.89.0.7"},
                                               "Aliases": ["db", "store"]}})
    assert run_cli(fake, capsys, "network", "disconnect", "-f", "backend", "web") == (0, "", "")
    assert fake.requests[-1] == ("POST", "/networks/backend/disconnect", {"Container": "web", "Force": True})


def test_ls_filters_rm_force_and_prune(fake, capsys):
    fake.answers[("GET", "/networks")] = (200, [
        {"Id": NID, "Name": "backend", "Driver": "bridge", "Scope": "local"},
        {"Id": "a" * 64, "Name": "bridge", "Driver": "bridge", "Scope": "local"}])
    code, out, _ = run_cli(fake, capsys, "network", "ls", "-f", "label=tier=back", "-f", "driver=bridge")
    assert code == 0 and out.splitlines() == ["NETWORK ID     NAME      DRIVER   SCOPE",
                                              "5f2c0e7d1a9b   backend   bridge   local",
                                              "aaaaaaaaaaaa   bridge    bridge   local"]
    query = fake.requests[-1][1].partition("?filters=")[2]
    from urllib.parse import unquote

    assert json.loads(unquote(query)) == {"label": ["tier=back"], "driver": ["bridge"]}
    fake.answers[("DELETE", "/networks/gone")] = (404, {"message": "network gone not found"})
    assert run_cli(fake, capsys, "network", "rm", "-f", "gone")[:2] == (0, "")
    fake.answers[("POST", "/networks/prune")] = (200, {"NetworksDeleted": ["backend", "front"]})
    assert run_cli(fake, capsys, "network", "prune", "-f") == (0, "Deleted Networks:\nbackend\nfront\n", "")


def _create_body(fake, capsys, *options: str) -> tuple[int, str, list]:
    fake.answers[("POST", "/containers/create")] = (201, {"Id": "c" * 64, "Warnings": []})
    code, _, err = run_cli(fake, capsys, "create", *options, "busybox", "true")
    return code, err, fake.requests


def test_run_network_options_go_to_the_first_network_and_the_rest_are_connected(fake, capsys):
    code, err, requests = _create_body(fake, capsys, "--network", "front", "--network", "back", "--ip",
                                       "10.89.0.9", "--network-alias", "web", "--mac-address",
                                       "02:42:0a:59:00:09", "--name", "w")
    assert code == 0, err
    (m1, p1, body), (m2, p2, connect) = requests
    assert (m1, p1) == ("POST", "/containers/create?name=w")
    assert body["HostConfig"]["NetworkMode"] == "front"
    assert body["NetworkingConfig"] == {"EndpointsConfig": {"front": {
        "IPAMConfig": {"IPv4Address": "10.89.0.9"}, "Aliases": ["web"], "MacAddress": "02:42:0a:59:00:09"}}}
    assert (m2, p2, connect) == ("POST", "/networks/back/connect",
                                 {"Container": "c" * 64, "EndpointConfig": {}})


def test_run_advanced_network_syntax_and_container_mode(fake, capsys):
    code, err, requests = _create_body(fake, capsys, "--network",
                                       "name=back,alias=db,alias=store,ip=10.9.0.3")
    assert code == 0, err
    assert requests[-1][2]["NetworkingConfig"] == {"EndpointsConfig": {"back": {
        "Aliases": ["db", "store"], "IPAMConfig": {"IPv4Address": "10.9.0.3"}}}}
    fake.requests.clear()
    code, err, requests = _create_body(fake, capsys, "--network", "container:web")
    assert code == 0 and requests[-1][2]["HostConfig"]["NetworkMode"] == "container:web"
    assert "NetworkingConfig" not in requests[-1][2]
    fake.requests.clear()
    code, err, requests = _create_body(fake, capsys)
    assert requests[-1][2]["HostConfig"]["NetworkMode"] == "default"


@pytest.mark.parametrize(("options", "message"), [
    (["--network", "host", "--network", "back"], "cannot attach both user-defined and non-user-defined"),
    (["--network", "name=back,alias=a", "--network-alias", "b"], "cannot specify both --network-alias"),
    (["--network", "container:web", "--ip", "10.0.0.2"], "cannot be used with --network container:NAME"),
    (["--network", "name=back,colour=red"], "invalid field 'colour'"),
])
def test_run_network_conflicts_are_one_line_before_any_request(fake, capsys, options, message):
    code, err, requests = _create_body(fake, capsys, *options)
    assert code != 0 and message in err and err.count("\n") == 1 and requests == [], err


def test_network_group_help_lists_connect_and_disconnect(capsys):
    assert cli.main(["network", "--help"]) == 0
    out = capsys.readouterr().out
    assert "connect" in out and "disconnect" in out and "Create a network\n" in out


# ----------------------------------------------------------------------------------------------------
# Against a real minidockerd, once chapter 12's daemon side (minidocker/networks/) is in the tree.

@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    pytest.importorskip("minidocker.networks.routes",
                        reason="chapter 12's daemon side (minidocker/networks/) is not in the tree yet")
    from tests.helpers_10_daemon import daemon_fixture

    yield from daemon_fixture(tmp_path_factory)


def ok(result) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def lookup(daemon, container: str, name: str) -> tuple[int, str]:
    """``nslookup NAME`` inside ``container`` (busybox's, which asks /etc/resolv.conf's server)."""
    result = daemon.cli("exec", container, "nslookup", name, timeout=30)
    return result.returncode, result.stdout + result.stderr


def addresses(output: str, name: str) -> set[str]:
    """The answer's addresses in busybox nslookup's output (after the ``Name: NAME`` line)."""
    part = output.partition(f"Name:\t{name}")[2] or output.partition(f"Name:    {name}")[2]
    return set(re.findall(r"Address(?: \d+)?:\s*(\d+\.\d+\.\d+\.\d+)", part))


@pytest.fixture
def two_networks(daemon):
    made = []
    for name, subnet in (("n12front", "10.212.1.0/24"), ("n12back", "10.212.2.0/24")):
        ok(daemon.cli("network", "create", "--subnet", subnet, name))
        made.append(name)
    yield made
    daemon.remove_all()
    daemon.cli("network", "rm", "-f", *made)


def test_names_resolve_within_a_network_not_across_and_connect_is_live(daemon, two_networks):
    front, back = two_networks
    ok(daemon.cli("run", "-d", "--name", "a12", "--network", front, "busybox", "sleep", "300"))
    ok(daemon.cli("run", "-d", "--name", "b12", "--network", front, "--network-alias", "svc",
                  "busybox", "sleep", "300"))
    ok(daemon.cli("run", "-d", "--name", "c12", "--network", back, "--network-alias", "svc",
                  "busybox", "sleep", "300"))
    resolv = ok(daemon.cli("exec", "a12", "cat", "/etc/resolv.conf"))
    assert "nameserver 127.0.0.11" in resolv
    code, out = lookup(daemon, "a12", "b12")
    assert code == 0 and addresses(out, "b12"), out
    code, out = lookup(daemon, "a12", "c12")
    assert code != 0, out  # on the other network: NXDOMAIN
    ok(daemon.cli("exec", "a12", "ping", "-c", "1", "-W", "2", "b12"))
    # connect: c12 is on front too, and its name resolves there at once; the alias has two addresses
    ok(daemon.cli("network", "connect", "--alias", "svc", front, "c12"))
    code, out = lookup(daemon, "a12", "c12")
    assert code == 0 and addresses(out, "c12"), out
    code, out = lookup(daemon, "a12", "svc")
    assert len(addresses(out, "svc")) == 2, out
    inspected = json.loads(ok(daemon.cli("network", "inspect", front)))[0]
    assert {c["Name"] for c in inspected["Containers"].values()} == {"a12", "b12", "c12"}
    ok(daemon.cli("network", "disconnect", front, "c12"))
    code, out = lookup(daemon, "a12", "c12")
    assert code != 0, out
    refused = daemon.cli("network", "rm", front)
    assert refused.returncode == 1 and refused.stderr.startswith("Error response from daemon: ")
    assert refused.stderr.count("\n") == 1


class OneNameServer(socketserver.ThreadingUDPServer):
    """A DNS server on ``address``:53 that knows one name (``docker run --dns`` takes no port)."""

    def __init__(self, address: str, name: str, ip: str) -> None:
        import dns.message
        import dns.rrset

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                query = dns.message.from_wire(data)
                answer = dns.message.make_response(query)
                if str(query.question[0].name).rstrip(".") == name:
                    answer.answer.append(dns.rrset.from_text(query.question[0].name, 60, "IN", "A", ip))
                else:
                    answer.set_rcode(3)  # NXDOMAIN
                sock.sendto(answer.to_wire(), self.client_address)

        super().__init__((address, 53), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


def test_add_host_dns_options_and_mac_on_a_user_defined_network(daemon, two_networks):
    """``--add-host`` (host-gateway too), ``--dns`` (where the embedded DNS forwards), ``--dns-search``,
    ``--dns-option`` and ``--mac-address`` on a user-defined network, as on the default bridge."""
    server = OneNameServer("127.77.0.1", "outside.test", "192.0.2.99")
    try:
        ok(daemon.cli("run", "-d", "--name", "x12", "--network", two_networks[0], "--add-host", "db:10.1.2.3",
                      "--add-host", "gw:host-gateway", "--dns", "127.77.0.1", "--dns-search", "example.com",
                      "--dns-option", "ndots:2", "--mac-address", "02:aa:bb:cc:dd:01", "busybox", "sleep",
                      "60"))
        files = ok(daemon.cli("exec", "x12", "cat", "/etc/hosts", "/etc/resolv.conf")).splitlines()
        assert {"10.1.2.3\tdb", "10.212.1.1\tgw", "search example.com", "nameserver 127.0.0.11",
                "options ndots:2"} <= set(files), files
        assert "nameserver 127.77.0.1" not in files  # the embedded DNS asks it, not the container
        assert "link/ether 02:aa:bb:cc:dd:01" in ok(daemon.cli("exec", "x12", "ip", "link", "show", "eth0"))
        code, out = lookup(daemon, "x12", "outside.test")
        assert code == 0 and addresses(out, "outside.test") == {"192.0.2.99"}, out
    finally:
        server.shutdown()
        server.server_close()
        daemon.cli("rm", "-f", "x12")


def test_a_link_on_a_user_defined_network_is_an_alias_for_the_linking_container_alone(daemon, two_networks):
    front = two_networks[0]
    ok(daemon.cli("run", "-d", "--name", "l12", "--network", front, "busybox", "sleep", "60"))
    ok(daemon.cli("run", "-d", "--name", "m12", "--network", front, "--link", "l12:store", "busybox", "sleep",
                  "60"))
    ok(daemon.cli("run", "-d", "--name", "n12", "--network", front, "busybox", "sleep", "60"))
    ip = json.loads(ok(daemon.cli("inspect", "l12")))[0]["NetworkSettings"]["Networks"][front]["IPAddress"]
    code, out = lookup(daemon, "m12", "store")
    assert code == 0 and addresses(out, "store") == {ip}, out
    code, out = lookup(daemon, "n12", "store")
    assert code != 0, out


def test_the_default_bridge_has_no_name_resolution(daemon):
    ok(daemon.cli("run", "-d", "--name", "plain12", "busybox", "sleep", "60"))
    try:
        assert "127.0.0.11" not in ok(daemon.cli("exec", "plain12", "cat", "/etc/resolv.conf"))
    finally:
        daemon.cli("rm", "-f", "plain12")


@pytest.mark.parametrize(("args", "words"), [
    (["--subnet", "10.212.1.128/25"], "overlap"),
    (["--subnet", "10.213.0.0/24", "--gateway", "10.214.0.1"], "no matching subnet for gateway"),
])
def test_bad_networks_are_one_line(daemon, two_networks, args, words):
    result = daemon.cli("network", "create", *args, "n12bad")
    daemon.cli("network", "rm", "-f", "n12bad")
    assert result.returncode != 0 and words in result.stderr and result.stderr.count("\n") == 1, result.stderr


def test_a_name_that_is_not_a_dns_label_and_a_colliding_alias_are_refused(daemon, two_networks):
    front, _ = two_networks
    bad = daemon.cli("run", "-d", "--network", front, "--network-alias", "not_a label!", "busybox", "true")
    assert bad.returncode == 125 and bad.stderr.count("\n") == 1, bad.stderr
    ok(daemon.cli("run", "-d", "--name", "d12", "--network", front, "busybox", "sleep", "60"))
    clash = daemon.cli("run", "-d", "--network", front, "--network-alias", "d12", "busybox", "true")
    assert clash.returncode == 125 and clash.stderr.count("\n") == 1, clash.stderr


def test_a_container_on_two_networks_connects_and_disconnects_again_and_again(daemon, two_networks):
    """Connecting a container already served by the embedded DNS (it is on another user-defined
    network) binds 127.0.0.11:53 in its namespace again: the old sockets must be gone first, or
    the connect fails with 'the address is in use' (found while measuring connect's cost)."""
    front, back = two_networks
    ok(daemon.cli("run", "-d", "--name", "e12", "--network", front, "busybox", "sleep", "300"))
    ok(daemon.cli("run", "-d", "--name", "f12", "--network", back, "busybox", "sleep", "300"))
    for _ in range(5):
        ok(daemon.cli("network", "connect", front, "f12"))
        code, out = lookup(daemon, "e12", "f12")
        assert code == 0 and addresses(out, "f12"), out
        ok(daemon.cli("network", "disconnect", front, "f12"))
    code, out = lookup(daemon, "f12", "f12")  # still served on back
    assert code == 0 and addresses(out, "f12"), out
