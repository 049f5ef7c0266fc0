"""Chapter 08: building images: the cache, what each instruction means in the built image.

Images are built here from chapter 00's busybox (``FROM scratch`` + ``ADD busybox.tar``: the
builder makes its own base) and checked by *running* them through chapter 07's ``images run``.
RUN steps get the network by default (a private bridge for this module, like chapter 05's tests):
the semantics test uses it; the others build with ``network="none"``. Builds through the
daemon are tested with it: ``test_10_build.py`` (the docker CLI) and ``test_11_build.py`` (our client).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from minidocker.build.builder import build
from minidocker.build.cache import BuildCache
from minidocker.core.stage import run_stage
from minidocker.images.store import ImageStore
from minidocker.overlay.layers import LayerStore
from tests import helpers_08_build as build_helpers
from tests.helpers_08_build import Built, context

# Chapter 08's fixtures, in a helper: chapters 10 and 11 build through the daemon with them too.
busybox = build_helpers.busybox
run_network = build_helpers.run_network


def run(image: str, *args: str, options: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """The built image, run by chapter 07's stage (no network needed to check files and config)."""
    return run_stage("images", "run", "--network", "none", *options, image, *args)


CACHED_APP = """\
FROM busybox
ENV STAGE=one
COPY config.txt /etc/app/
RUN cat /etc/app/config.txt > /copy-of-config
RUN echo {second} > /second
COPY main.txt /app/
RUN wc -c /app/main.txt > /size
CMD ["cat", "/second"]
"""


def test_second_build_is_all_cache_and_makes_no_layer(busybox: str, tmp_path: Path) -> None:
    ctx = context(tmp_path, {"Dockerfile": CACHED_APP.format(second="two"), "config.txt": "v=1\n",
                             "main.txt": "main\n"})
    first = Built(ctx, tags=["cached:v1"])
    assert first.error is None and first.cached == [False] * 7
    layers = set(LayerStore().layers())
    start = time.monotonic()
    second = Built(ctx, tags=["cached:v1"])
    assert second.error is None and second.cached == [True] * 7
    assert second.image_id == first.image_id
    assert "Running in" not in second.output
    assert set(LayerStore().layers()) == layers  # no layer made, none lost
    assert time.monotonic() - start < 5
    third = Built(ctx, no_cache=True)
    assert third.cached == [False] * 7 and third.image_id != first.image_id
    assert run("cached:v1").stdout == "two\n"


def test_changing_a_run_line_rebuilds_it_and_the_steps_after_it_only(busybox: str, tmp_path: Path) -> None:
    ctx = context(tmp_path, {"Dockerfile": CACHED_APP.format(second="two"), "config.txt": "v=1\n",
                             "main.txt": "main\n"})
    Built(ctx)
    context(ctx, {"Dockerfile": CACHED_APP.format(second="TWO")})  # step 5 of 8 changes
    changed = Built(ctx, tags=["cached:v2"])
    assert changed.cached == [True, True, True, False, False, False, False]
    assert run("cached:v2").stdout == "TWO\n"


def test_changing_a_copied_file_rebuilds_from_that_copy_on(busybox: str, tmp_path: Path) -> None:
    ctx = context(tmp_path, {"Dockerfile": CACHED_APP.format(second="two"), "config.txt": "v=1\n",
                             "main.txt": "main\n"})
    Built(ctx)
    context(ctx, {"main.txt": "main, longer\n"})  # the second COPY's source
    assert Built(ctx).cached == [True, True, True, True, False, False, False]
    context(ctx, {"config.txt": "v=2\n"})  # the first COPY's source: everything after it
    assert Built(ctx).cached == [True, False, False, False, False, False, False]
    os.utime(ctx / "config.txt", (1, 1))  # only the time changed: the same step
    assert Built(ctx).cached == [True] * 7
    (ctx / "config.txt").chmod(0o600)  # the mode is part of what is copied
    assert Built(ctx).cached == [True, False, False, False, False, False, False]


SEMANTICS = """\
FROM busybox
ARG GREETING=hello
ARG UNUSED_DEFAULT=x
ENV APP_HOME=/srv/app PLAIN=$GREETING
WORKDIR $APP_HOME
WORKDIR data
COPY --chown=nobody:nogroup note.txt ./
RUN echo "greeting=$GREETING home=$APP_HOME pwd=$(pwd) ip=$(ip -4 -o addr show eth0 | wc -l)" > /run.txt
RUN ["/bin/sh", "-c", "echo exec $APP_HOME > /exec.txt"]
LABEL org.example.team="build people" version=1
EXPOSE 8080 53/udp
VOLUME /srv/app/data/cache
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --retries=2 CMD test -e /run.txt
USER nobody
ENTRYPOINT ["/bin/echo", "entry"]
CMD ["default", "cmd"]
"""


def test_the_built_image_runs_with_what_the_dockerfile_said(busybox: str, tmp_path: Path) -> None:
    ctx = context(tmp_path, {"Dockerfile": SEMANTICS, "note.txt": "note\n"})
    result = Built(ctx, tags=["semantics"], build_args={"GREETING": "bonjour"}, network="default")
    assert result.error is None, result.output
    # ARG: in RUN's environment (the --build-arg value), never in the image; ENV persists.
    # WORKDIR: relative to the previous one; RUN ran there, with the bridge network (eth0).
    assert run("semantics").stdout == "entry default cmd\n"  # ENTRYPOINT + CMD
    assert run("semantics", "other").stdout == "entry other\n"  # run's args replace CMD only
    shown = run("semantics", "-c", "cat /run.txt /exec.txt; pwd; id -un; echo ${GREETING:-unset} $PLAIN; "
                "ls -l note.txt", options=("--entrypoint", "/bin/sh"))
    lines = shown.stdout.splitlines()
    assert lines[0] == "greeting=bonjour home=/srv/app pwd=/srv/app/data ip=1", shown.stdout + shown.stderr
    assert lines[1:5] == ["exec /srv/app", "/srv/app/data", "nobody", "unset bonjour"]
    assert "nobody" in lines[5] and "nogroup" in lines[5]  # --chown by name, from the image's files
    config = json.loads(run_stage("images", "inspect", "semantics").stdout)[0]["Config"]
    assert config["WorkingDir"] == "/srv/app/data" and config["User"] == "nobody"
    assert "APP_HOME=/srv/app" in config["Env"] and not any(e.startswith("GREETING") for e in config["Env"])
    assert config["Labels"] == {"org.example.team": "build people", "version": "1"}
    assert config["ExposedPorts"] == {"8080/tcp": {}, "53/udp": {}}
    assert config["Volumes"] == {"/srv/app/data/cache": {}} and config["StopSignal"] == "SIGINT"
    assert config["Healthcheck"] == {"Test": ["CMD-SHELL", "test -e /run.txt"], "Interval": 5 * 10**9,
                                     "Retries": 2}


def test_onbuild_triggers_run_in_the_child_build_only(busybox: str, tmp_path: Path) -> None:
    base = context(tmp_path / "base", {"Dockerfile": "FROM busybox\nONBUILD COPY marker.txt /from-child\n"
                                                     "ONBUILD RUN echo triggered > /triggered\n"})
    assert Built(base, tags=["with-triggers"]).error is None
    child = context(tmp_path / "child", {"Dockerfile": "FROM with-triggers\nCMD [\"cat\", \"/triggered\"]\n",
                                         "marker.txt": "from the child's context\n"})
    built = Built(child, tags=["child"])
    assert "# Executing 2 build triggers" in built.output, built.output
    assert run("child").stdout == "triggered\n"
    assert run("child", "cat", "/from-child").stdout == "from the child's context\n"
    inspected = json.loads(run_stage("images", "inspect", "child").stdout)[0]["Config"]
    assert not inspected.get("OnBuild")  # triggers are not inherited further


@pytest.mark.parametrize(("lines", "args", "expected"), [
    ('CMD echo shell form $HOME', (), "shell form /root"),  # /bin/sh -c: the shell expands
    ('CMD ["echo", "exec form $HOME"]', (), "exec form $HOME"),  # no shell: no expansion
    ('ENTRYPOINT ["echo", "e"]\nCMD ["c"]', (), "e c"),
    ('CMD ["c"]\nENTRYPOINT ["echo", "e"]', (), "e c"),  # this Dockerfile's CMD stays
    ('ENTRYPOINT echo shell-entry', ("ignored",), "shell-entry"),  # shell form ENTRYPOINT ignores args
    ('ENTRYPOINT ["echo"]', (), ""),  # ENTRYPOINT drops the base image's CMD ["sh"]
    ('SHELL ["/bin/echo", "through"]\nCMD the shell', (), "through the shell"),  # shell form uses SHELL
])
def test_entrypoint_and_cmd_combine_as_in_docker(busybox: str, tmp_path: Path, lines: str, args: tuple,
                                                 expected: str) -> None:
    ctx = context(tmp_path, {"Dockerfile": f"FROM busybox\n{lines}\n"})
    result = Built(ctx, tags=["combination"])
    assert result.error is None, result.output
    assert run("combination", *args).stdout.rstrip("\n") == expected


def test_multi_stage_copy_from_and_target(busybox: str, tmp_path: Path) -> None:
    ctx = context(tmp_path, {"Dockerfile": (
        "ARG BASE=busybox\nFROM $BASE AS build\n"
        "RUN mkdir /out && echo built > /out/artifact && echo junk > /junk\n"
        "FROM busybox AS test\nCOPY --from=build /out/artifact /checked\nRUN test -s /checked\n"
        "FROM busybox\nCOPY --from=0 /out/ /opt/\nCOPY --from=test /checked /opt/checked\n"
        'CMD ["ls", "/opt"]\n')})
    final = Built(ctx, tags=["multi"])
    assert final.error is None, final.output
    assert run("multi").stdout.split() == ["artifact", "checked"]
    assert run("multi", "ls", "/junk").returncode != 0  # the build stage's other files stay behind
    target = Built(ctx, tags=["multi:build"], target="build")
    assert target.cached == [True] and run("multi:build", "cat", "/junk").stdout == "junk\n"


def test_dockerignore_keeps_files_out_of_the_context(busybox: str, tmp_path: Path) -> None:
    ctx = context(tmp_path, {"Dockerfile": "FROM busybox\nCOPY . /ctx/\n",
                             ".dockerignore": "*.secret\nlogs\n!logs/keep\n",
                             "a.secret": "s", "app.txt": "a", "logs/debug": "d", "logs/keep": "k"})
    assert Built(ctx, tags=["ignored"]).error is None
    assert sorted(run("ignored", "find", "/ctx", "-type", "f").stdout.split()) == [
        "/ctx/.dockerignore", "/ctx/Dockerfile", "/ctx/app.txt", "/ctx/logs/keep"]
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY a.secret /\n")
    failed = Built(ctx)
    assert "file not found in build context or excluded by .dockerignore" in str(failed.error)


def test_add_unpacks_a_local_tar_and_copies_other_files(busybox: str, tmp_path: Path) -> None:
    import gzip
    import io
    import tarfile

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in (("pkg/bin/tool", b"#!/bin/sh\necho tool\n"), ("pkg/README", b"readme\n")):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    ctx = context(tmp_path, {"Dockerfile": "FROM busybox\nADD vendor.tar.gz /opt/\nADD plain.txt /opt/\n",
                             "vendor.tar.gz": gzip.compress(raw.getvalue()), "plain.txt": "plain\n"})
    assert Built(ctx, tags=["added"]).error is None
    assert run("added", "/opt/pkg/bin/tool").stdout == "tool\n"
    assert run("added", "ls", "/opt").stdout.split() == ["pkg", "plain.txt"]
    (ctx / "Dockerfile").write_text("FROM busybox\nADD https://example.com/x.tar.gz /\n")
    assert "ADD from a URL is not supported" in str(Built(ctx).error)


def test_copy_never_reads_outside_the_context(busybox: str, tmp_path: Path) -> None:
    secret = tmp_path / "outside-secret"
    secret.write_text("host secret\n")
    ctx = context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nCOPY ../outside-secret /\n"})
    failed = Built(ctx)
    assert str(failed.error) == "Dockerfile:2: COPY failed: forbidden path outside the build context: " \
                                "../outside-secret"
    (ctx / "links").mkdir()
    (ctx / "links" / "to-secret").symlink_to(secret)
    (ctx / "links" / "etc-dir").symlink_to("/etc")
    for source in ("links/to-secret", "links/etc-dir/passwd"):  # followed inside the context only: absent
        (ctx / "Dockerfile").write_text(f"FROM busybox\nCOPY {source} /\n")
        assert "file not found in build context" in str(Built(ctx).error)
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY links/ /links/\n")  # in a directory: links stay links
    assert Built(ctx, tags=["links"]).error is None
    script = "readlink /links/to-secret; readlink /links/etc-dir; cat /links/to-secret"
    shown = run("links", "sh", "-c", script).stdout
    assert shown == f"{secret}\n/etc\n"  # the image's own /tmp/... does not exist: nothing read


def test_a_failing_run_stops_the_build_tags_nothing_and_keeps_the_finished_steps(busybox: str,
                                                                                tmp_path: Path) -> None:
    ctx = context(tmp_path, {"Dockerfile": "FROM busybox\nRUN echo first > /first\n"
                                           "RUN echo going wrong; echo to stderr >&2; exit 3\n"
                                           "RUN touch /never\n"})
    failed = Built(ctx, tags=["broken:v1"])
    assert failed.error is not None and failed.error.exit_code == 3
    assert str(failed.error) == "The command '/bin/sh -c echo going wrong; echo to stderr >&2; exit 3' " \
                                "returned a non-zero code: 3"
    assert "going wrong\nto stderr\n" in failed.output
    assert "Step 4/4" not in failed.output and not any("aux" in e for e in failed.events)
    assert run_stage("images", "inspect", "broken:v1").returncode != 0  # nothing tagged
    again = Built(ctx, tags=["broken:v1"])
    assert again.cached == [True, False] and again.error.exit_code == 3  # type: ignore[union-attr]
    assert not list((LayerStore().root / "containers").iterdir())  # no container left behind
    (ctx / "Dockerfile").write_text('FROM busybox\nRUN ["no-such-command"]\n')
    missing = Built(ctx)
    assert missing.error.exit_code == 127 and "executable file not found" in missing.output  # type: ignore[union-attr]


def test_a_bad_dockerfile_fails_before_anything_runs(busybox: str, tmp_path: Path) -> None:
    ctx = tmp_path
    for last, where in (("COPY onlyone", "Dockerfile:3: COPY requires at least two"),
                        ("ENV X=${Y", "Dockerfile:3: missing '}'"),
                        ("RUNN x", "Dockerfile:3: unknown instruction: RUNN")):
        text = f"FROM busybox\nRUN echo ran\n{last}\n"
        (ctx / "Dockerfile").write_text(text)
        events: list[dict] = []
        with pytest.raises(Exception, match=where):
            build(ctx, on_event=events.append)
        assert events == []  # not a single step started
    result = run_stage("build.builder", "-f", "Dockerfile", str(ctx))
    assert result.returncode == 125
    assert result.stderr == "minidocker: Dockerfile:3: unknown instruction: RUNN (did you mean RUN?)\n"


def test_history_shows_each_layer_with_its_instruction_and_size(busybox: str, tmp_path: Path) -> None:
    from minidocker.build.image import history

    ctx = context(tmp_path, {"Dockerfile": "FROM busybox\nRUN head -c 3000 /dev/zero > /zeros\nENV A=1\n"
                                           "COPY five.txt /\nWORKDIR /\n", "five.txt": "12345"})
    built = Built(ctx, tags=["hist"])
    store = ImageStore()
    entries = history(store.get("hist"), store)
    shown = [(e["CreatedBy"], e["Size"]) for e in entries[:4]]
    assert shown[0] == ("/bin/sh -c #(nop) WORKDIR /", 0)  # the directory exists: an empty layer
    assert shown[1][0].startswith("/bin/sh -c #(nop) COPY file:") and shown[1][1] == 5
    assert shown[2] == ("/bin/sh -c #(nop)  ENV A=1", 0)
    assert shown[3] == ("/bin/sh -c head -c 3000 /dev/zero > /zeros", 3000)
    assert entries[0]["Id"] == built.image_id and entries[1]["Id"] == "<missing>"
    config = store.get("hist").config
    assert [bool(h.get("empty_layer")) for h in config["history"][-4:]] == [False, True, False, True]
    table = run_stage("build.builder", "history", "hist").stdout.splitlines()
    assert table[0].split() == ["IMAGE", "CREATED", "CREATED", "BY", "SIZE", "COMMENT"]
    assert "3kB" in table[4] and "/bin/sh -c head -c 3000" in table[4]


def test_build_cache_prune_drops_the_cache_but_not_images(busybox: str, tmp_path: Path) -> None:
    from minidocker.overlay.layers import import_rootfs

    ctx = context(tmp_path, {"Dockerfile": "FROM busybox\nRUN echo pruned > /p\n"})
    Built(ctx, tags=["pruned"])
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "not-the-cache's").write_text(str(tmp_path))
    other = import_rootfs(LayerStore(), tmp_path / "tree")  # stored by another tool, held by nobody
    keys, reclaimed = BuildCache().prune()
    assert LayerStore().has(other)  # the cache's prune takes only the layers the cache held
    LayerStore().remove_unused(only=[other])
    assert keys and reclaimed > 0
    holders = {h for d in LayerStore().layers() for h in LayerStore().holders(d)}
    assert not [h for h in holders if h.startswith("build-cache:")]
    assert run("pruned", "cat", "/p").stdout == "pruned\n"  # the image keeps its layers
    assert Built(ctx, tags=["pruned"]).cached == [False]


def test_a_built_image_pushes_and_pulls_back_identical(busybox: str, tmp_path: Path) -> None:
    from minidocker.images import pull, push
    from minidocker.registry import server as registry_server

    ctx = context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nCOPY a.txt /\nRUN echo b > /b\n",
                                     "a.txt": "a"})
    image_id = Built(ctx, tags=["pushed"]).image_id
    with registry_server.running(tmp_path / "registry", "--allow-anonymous-push") as server:
        name = f"{server.host}/team/pushed:v1"
        store = ImageStore()
        store.tag("pushed", name)
        digest = push.push(name, store=store)
        other = ImageStore(tmp_path / "other-images", layer_store=LayerStore(tmp_path / "other-layers"))
        pulled = pull.pull(name, store=other)
    assert pulled.id == image_id and pulled.manifest_digest == digest
    assert pulled.repo_digests == [f"{server.host}/team/pushed@{digest}"]
    assert pulled.diff_ids == store.get("pushed").diff_ids
