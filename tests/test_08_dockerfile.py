"""Chapter 08, the syntax: Dockerfiles Docker accepts (tricky ones too), words, .dockerignore, contexts.

Pure unit tests: nothing runs. The rules are Docker's (moby/buildkit's parser and shell lexer);
each case below is one Docker users meet.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from minidocker.build.context import ContextError, Ignore, extract, glob_regex, pack, walk
from minidocker.build.dockerfile import DockerfileError, instruction, parse, parse_duration
from minidocker.build.shellwords import SubstitutionError, expand, expand_words


def steps(text: str) -> list:
    return [i for stage in parse(text).stages for i in stage.instructions]


def test_continuations_join_lines_and_skip_comments_and_blank_lines() -> None:
    df = parse("FROM busybox\n"
               "RUN echo a \\\n"
               "    # a comment inside is dropped\n"
               "  && echo b \\   \n"  # blanks after the backslash still continue
               "\n"
               "  && echo c\n"
               "   # an indented comment line\n"
               "CMD sh\n")
    run, cmd = df.stages[0].instructions
    assert run.args == ("echo a   && echo b   && echo c",)
    assert run.line == 2 and cmd.line == 8
    assert run.original == "RUN echo a   && echo b   && echo c"
    assert df.warnings and "empty continuation line" in df.warnings[0]


def test_escape_directive_makes_backtick_the_escape_and_continuation() -> None:
    df = parse("# escape=`\n"
               "FROM busybox\n"
               "COPY testfile.txt c:\\\n"  # a backslash is text now: no continuation
               "RUN dir c:\\ `\n"
               "    && echo done\n"
               "ENV A=one` word\n")
    copy, run, env = df.stages[0].instructions
    assert df.escape == "`"
    assert copy.args == ("testfile.txt", "c:\\")
    assert run.args == ("dir c:\\     && echo done",)
    assert expand(env.pairs[0][1], {}, df.escape) == "one word"


def test_directives_only_at_the_top_and_only_once() -> None:
    assert parse("# syntax=docker/dockerfile:1\n# escape=`\nFROM a\n").escape == "`"
    assert parse("# a comment\n# escape=`\nFROM a\n").escape == "\\"  # too late: a comment
    assert parse("\n# escape=`\nFROM a\n").escape == "\\"  # a blank line ends them too
    assert parse("FROM a\n# escape=`\n").escape == "\\"
    with pytest.raises(DockerfileError, match=r"Dockerfile:2: only one escape parser directive"):
        parse("# escape=`\n# escape=\\\nFROM a\n")
    with pytest.raises(DockerfileError, match="invalid escape token"):
        parse("# escape=x\nFROM a\n")


def test_exec_form_is_json_and_anything_else_is_shell_form() -> None:
    run, cmd, entry, broken, shell = steps('FROM a\nRUN ["echo", "a b"]\nCMD [ "sh" , "-c",  "x" ]\n'
                                          'ENTRYPOINT ["/bin/echo"]\nCMD ["echo", \'single\']\n'
                                          'SHELL ["/bin/ash", "-eo", "pipefail", "-c"]\n')
    assert (run.json, run.args) == (True, ("echo", "a b"))
    assert (cmd.json, cmd.args) == (True, ("sh", "-c", "x"))
    assert (entry.json, entry.args) == (True, ("/bin/echo",))
    assert (broken.json, broken.args) == (False, ("[\"echo\", 'single']",))  # not JSON: shell form
    assert shell.args == ("/bin/ash", "-eo", "pipefail", "-c")
    with pytest.raises(DockerfileError, match=r"Dockerfile:2: .*strings only"):
        parse('FROM a\nRUN ["echo", 1]\n')
    with pytest.raises(DockerfileError, match=r"Dockerfile:2: SHELL requires .*JSON"):
        parse("FROM a\nSHELL /bin/bash -c\n")


def test_env_and_label_forms() -> None:
    new, old, label = steps('FROM a\nENV A=1 B="two words" C=three\\ words D=\n'
                            'ENV OLD  the rest  of the line\nLABEL "com.example.x"="y z" k=v\n')
    assert [(k, expand(v, {})) for k, v in new.pairs] == [("A", "1"), ("B", "two words"),
                                                         ("C", "three words"), ("D", "")]
    assert old.pairs == (("OLD", "the rest  of the line"),)
    assert [(expand(k, {}), expand(v, {})) for k, v in label.pairs] == [("com.example.x", "y z"), ("k", "v")]


def test_flags_stages_and_args() -> None:
    df = parse("ARG BASE=busybox\nARG V\nFROM --platform=linux/amd64 ${BASE} AS Build\n"
               "COPY --from=build --chown=1:2 --chmod=640 a b /c/\nFROM build\nARG X=1 Y\n")
    assert [a.args for a in df.meta_args] == [("BASE=busybox",), ("V",)]
    first, second = df.stages
    assert (first.base, first.name, first.origin.flag("platform")) == ("${BASE}", "build", "linux/amd64")
    copy = first.instructions[0]
    assert (copy.flag("from"), copy.flag("chown"), copy.flag("chmod"), copy.args) == ("build", "1:2", "640",
                                                                                      ("a", "b", "/c/"))
    assert second.instructions[0].args == ("X=1", "Y")
    assert df.stage("BUILD") == 0 and df.stage(None) == 1
    with pytest.raises(DockerfileError, match="failed to reach build target nope"):
        df.stage("nope")


def test_healthcheck_and_onbuild_are_parsed() -> None:
    health, none, onbuild = steps("FROM a\n"
                                  "HEALTHCHECK --interval=5s --retries=3 CMD wget -q localhost || exit 1\n"
                                  "HEALTHCHECK NONE\nONBUILD RUN echo later\n")
    assert health.args == ("CMD", "wget -q localhost || exit 1") and health.flag("retries") == "3"
    assert none.args == ("NONE",)
    assert onbuild.trigger is not None and onbuild.trigger.keyword == "RUN"
    assert parse_duration("1m30s") == 90 * 10**9 and parse_duration("500ms") == 5 * 10**8


@pytest.mark.parametrize(("text", "line", "message"), [
    ("FROM a\nRUNN echo\n", 2, "unknown instruction: RUNN (did you mean RUN?)"),
    ("FROM a\n\n\nCOPY onlyone\n", 4, "COPY requires at least two arguments"),
    ("FROM a\nCOPY --link a b\n", 2, "requires BuildKit"),
    ("FROM a\nRUN --mount=type=cache,target=/x true\n", 2, "requires BuildKit"),
    ("FROM a\nCOPY --form=x a b\n", 2, "unknown flag: --form"),
    ("FROM a b\n", 1, "FROM requires either one or three arguments"),
    ("FROM a AS 1st\n", 1, "invalid name for build stage"),
    ("FROM a AS x\nFROM b AS X\n", 2, "duplicate name for build stage"),
    ("ENV A=1\nFROM a\n", 1, "only ARG may come before FROM"),
    ("FROM a\nENV A=1 B\n", 2, "can't find = in 'B'"),
    ("FROM a\nHEALTHCHECK --interval=5 CMD true\n", 2, "invalid --interval"),
    ("FROM a\nONBUILD FROM b\n", 2, "isn't allowed as an ONBUILD trigger"),
    ("FROM a\nWORKDIR\n", 2, "WORKDIR requires exactly one argument"),
])
def test_errors_name_the_file_and_line(text: str, line: int, message: str) -> None:
    with pytest.raises(DockerfileError) as error:
        parse(text, "app.Dockerfile")
    assert str(error.value).startswith(f"app.Dockerfile:{line}: ")
    assert message in str(error.value)


def test_files_without_instructions_or_stages_are_errors() -> None:
    for text in ("", "# only a comment\n\n"):
        with pytest.raises(DockerfileError, match="no instructions"):
            parse(text)
    with pytest.raises(DockerfileError, match="needs a FROM"):
        parse("ARG A=1\n")
    assert instruction(3, "run   echo hi").keyword == "RUN"  # keywords in any case


def test_variable_substitution_as_docker_does_it() -> None:
    env = {"NAME": "world", "EMPTY": "", "LIST": "a  b"}
    assert expand("hello $NAME ${NAME}!", env) == "hello world world!"
    assert expand("${MISSING:-fallback} ${EMPTY:-empty-too} ${EMPTY-set}", env) == "fallback empty-too "
    assert expand("${NAME:+yes} ${EMPTY:+no} ${EMPTY+set} ${MISSING+no}", env) == "yes  set "
    assert expand("${MISSING:-${NAME:-x}}", env) == "world"  # nested
    assert expand("'$NAME' \"$NAME\" \\$NAME", env) == "$NAME world $NAME"
    assert expand('"a \\"quoted\\" \\x"', env) == 'a "quoted" \\x'  # only \" \$ \\ are escapes in ""
    assert expand("`$NAME", env, escape="`") == "$NAME"
    assert expand_words("$LIST 'c d' e", env) == ["a", "b", "c d", "e"]  # variables split, quotes do not
    for bad, why in (("${NAME", "missing '}'"), ("${}", "bad substitution"), ("${NAME/a/b}", "unsupported"),
                     ('"open', "double-quote"), ("'open", "single-quote"), ("${MISSING:?is required}",
                                                                             "MISSING: is required")):
        with pytest.raises(SubstitutionError, match=why):
            expand(bad, env)


def test_dockerignore_patterns() -> None:
    ignore = Ignore("# comment\n*.log\n!keep.log\nbuild\n**/*.tmp\n/secret/**\n  docs/*.md  \n")
    cases = {"debug.log": True, "keep.log": False, "sub/debug.log": False, "build/out/x.o": True,
             "a/b/c.tmp": True, "x.tmp": True, "secret/key": True, "docs/a.md": True, "docs/sub/a.md": False,
             "src/main.c": False}
    assert {path: ignore.matches(path) for path in cases} == cases
    assert glob_regex("src/*.c").match("src/a.c") and not glob_regex("src/*.c").match("src/x/a.c")
    assert glob_regex("f[0-9]?").match("f1x") and not glob_regex("f[!0-9]").match("f1")


def test_pack_leaves_ignored_files_out_but_always_sends_the_dockerfile(tmp_path: Path) -> None:
    for name, text in {"Dockerfile": "FROM a\n", ".dockerignore": "*\n!src\n", "src/a.c": "a",
                       "notes.txt": "n"}.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    buffer = io.BytesIO()
    pack(tmp_path, buffer)
    buffer.seek(0)
    with tarfile.open(fileobj=buffer) as tar:
        members = tar.getmembers()
    assert sorted(m.name for m in members) == [".dockerignore", "Dockerfile", "src", "src/a.c"]
    assert all(m.uid == 0 for m in members)


def _tar(*members: tuple[str, str, str]) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, kind, target in members:
            info = tarfile.TarInfo(name)
            if kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, target
                tar.addfile(info)
            elif kind == "device":
                info.type = tarfile.CHRTYPE
                tar.addfile(info)
            else:
                info.size = 4
                tar.addfile(info, io.BytesIO(b"evil"))
    buffer.seek(0)
    return buffer


@pytest.mark.parametrize(("members", "why"), [
    ([("../escape", "file", "")], "leaves the context"),
    (["/etc/cron.d/x", "file", ""], "absolute path"),
    ([("link", "symlink", "/etc"), ("link/passwd", "file", "")], "goes through the symlink"),
    ([("dev", "device", "")], "device node"),
])
def test_a_hostile_context_is_refused_and_writes_nothing_outside(tmp_path: Path, members: list,
                                                                 why: str) -> None:
    if isinstance(members[0], str):
        members = [tuple(members)]
    (tmp_path / "ctx").mkdir()
    with pytest.raises(ContextError, match=why):
        extract(_tar(*members), tmp_path / "ctx")
    assert not (tmp_path / "escape").exists()
    assert sorted(walk(tmp_path / "ctx")) in ([], ["link"])


# ---- .dockerignore: a file of the context, read with a bound -------------------------------------

@pytest.mark.parametrize("kind", ["a symlink out of the context", "a symlink to /dev/zero", "a FIFO",
                                  "larger than 1 MiB"])
def test_pack_reads_dockerignore_only_as_a_small_regular_file(tmp_path: Path, kind: str) -> None:
    """A .dockerignore through a symlink, a device, a FIFO or of a megabyte: one line, not an endless read."""
    import os

    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\n")
    (context / "secret.key").write_text("k")
    (tmp_path / "outside").write_text("*.key\n")
    ignore = context / ".dockerignore"
    if kind == "a symlink out of the context":
        ignore.symlink_to(tmp_path / "outside")
    elif kind == "a symlink to /dev/zero":
        ignore.symlink_to("/dev/zero")
    elif kind == "a FIFO":
        os.mkfifo(ignore)
    else:
        ignore.write_text("*.key\n" + "#" * (1 << 20))
    refused = r"^\.dockerignore (may not be a symlink|must be a regular file|is larger)"
    with pytest.raises(ContextError, match=refused):
        pack(context, io.BytesIO())


def test_the_builder_refuses_a_dockerignore_that_leaves_the_context(tmp_path: Path) -> None:
    """The daemon's side: a context tar whose .dockerignore links to a file of the daemon's host."""
    from minidocker.build.builder import build
    from minidocker.build.cache import BuildCache
    from minidocker.images.store import ImageStore
    from minidocker.overlay.layers import LayerStore

    (tmp_path / "host-file").write_text("*\n")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        dockerfile = b"NOT-AN-INSTRUCTION\n"  # never reached: the context is refused first
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
        link = tarfile.TarInfo(".dockerignore")
        link.type, link.linkname = tarfile.SYMTYPE, str(tmp_path / "host-file")
        tar.addfile(link)
    buffer.seek(0)
    layers = LayerStore(tmp_path / "layers")
    with pytest.raises(ContextError, match=r"^\.dockerignore may not be a symlink"):
        build(buffer, store=ImageStore(tmp_path / "images", layer_store=layers),
              cache=BuildCache(tmp_path / "cache", layer_store=layers))
