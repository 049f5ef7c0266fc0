"""Chapter 08: ``docker build``: a Dockerfile becomes an image, one cached layer at a time.

The builder reads the Dockerfile (:mod:`~minidocker.build.dockerfile`), unpacks the context
(:mod:`~minidocker.build.context`), and walks the instructions. Each one turns the image so far
into the next (:mod:`~minidocker.build.steps`) unless the cache (:mod:`~minidocker.build.cache`)
already knows the result; the last image is stored and tagged (chapter 07's store). It speaks as
Docker's classic builder does, as a stream of events the daemon forwards as they come::

    {"stream": "Step 2/4 : RUN make\\n"}
    {"stream": " ---> Using cache\\n"}
    {"stream": " ---> 4c1b2a9e0f37\\n"}
    {"aux": {"ID": "sha256:4c1b…"}}
    {"stream": "Successfully built 4c1b2a9e0f37\\n"}

Run it (as root)::

    python -m minidocker.build.builder -t hello:v1 [-f FILE] [--build-arg K=V] [--target T] [--no-cache] PATH
    python -m minidocker.build.builder history hello:v1     # each layer, its instruction and its size
    python -m minidocker.build.builder prune                # drop the build cache

Example (the API the daemon calls)::

    image_id = build("ctx.tar", tags=["hello:v1"], on_event=print)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from minidocker.build import context as buildcontext
from minidocker.build import steps as buildsteps
from minidocker.build.cache import BuildCache
from minidocker.build.dockerfile import Dockerfile, Instruction, Stage, instruction
from minidocker.build.dockerfile import parse as parse_dockerfile
from minidocker.build.image import ImageState, compress_layer, store_image
from minidocker.build.imagefs import ImageFS
from minidocker.build.steps import BuildError, StageBuild
from minidocker.core.process import EXIT_ENGINE, EngineError
from minidocker.images.store import ImageStore

__all__ = ["BuildError", "Builder", "build", "main", "summarize"]

Event = dict[str, Any]


class Builder:
    """One build: the Dockerfile, the context, the stages built so far, the cache, the events."""

    def __init__(self, df: Dockerfile, context: Path, *, store: ImageStore, cache: BuildCache,
                 build_args: dict[str, str], no_cache: bool, pull: bool, network: str,
                 on_event: Callable[[Event], None], extra_hosts: list[str] | tuple = ()) -> None:
        from minidocker.build.run import Worker

        self.df, self.escape, self.store, self.cache = df, df.escape, store, cache
        self.context_fs = ImageFS([context])
        self.build_args, self.consumed = dict(build_args), set()
        self.no_cache, self.pull, self.network, self.on_event = no_cache, pull, network, on_event
        self.extra_hosts = list(extra_hosts)  # docker build --add-host: every RUN's /etc/hosts
        self.meta_args: dict[str, str | None] = {}
        self.stages: list[StageBuild] = []
        self.worker = Worker()
        self.current: Instruction | None = None

    # ---- helpers the steps use ----------------------------------------------------------------
    def say(self, text: str) -> None:
        self.on_event({"stream": text})

    def error_at(self, step: Instruction | None, message: str) -> BuildError:
        where = f"{self.df.filename}:{step.line}: " if step else ""
        return BuildError(where + message)

    def image_fs(self, state: ImageState) -> ImageFS:
        """The files of an image so far, from its layers (top first)."""
        return ImageFS([self.store.layers.path(d) for d in reversed(state.diff_ids)])

    def source_fs(self, stage: StageBuild, origin: str) -> ImageFS:
        """``COPY --from=NAME|INDEX|IMAGE``: an earlier stage's files, or an image's."""
        for done in self.stages:
            if origin.lower() == done.name or (origin.isdigit() and int(origin) == done.index):
                if done.index >= stage.index:
                    break
                return self.image_fs(done.state)
        if origin.isdigit() or origin.lower() == stage.name:
            raise self.error_at(self.current, f"invalid from flag value {origin}: it must name an earlier "
                                              "stage, or an image")
        return self.image_fs(self._base_image(origin))

    def _base_image(self, name: str) -> ImageState:
        from minidocker.images.pull import ensure_image

        image = ensure_image(name, store=self.store, policy="always" if self.pull else "missing",
                             progress=self.on_event)
        return ImageState.from_image(image, self.store)

    # --8<-- [start:step]
    def step(self, stage: StageBuild, key_text: str, make: Callable[[], ImageState], checksum: str = "",
             made: Callable[[ImageState], dict | None] = lambda s: None) -> ImageState:
        """One step through the cache: the cached image if this step was done on this parent before."""
        key = self.cache.key(stage.state.id, key_text, checksum)
        if not self.no_cache and (cached := self.cache.get(key)) is not None:
            self.say(" ---> Using cache\n")
            return cached
        state = make()
        self.cache.put(key, state, made(state))
        return state
    # --8<-- [end:step]

    def layer_step(self, stage: StageBuild, key_text: str, plan: Any, created_by: str,
                   change: Callable[[dict], None] | None = None) -> ImageState:
        """A step whose layer is written directly (COPY, ADD, a new WORKDIR)."""
        from minidocker.build.copy import write_layer

        key = self.cache.key(stage.state.id, key_text)

        def make() -> ImageState:
            scratch = self.cache.scratch()
            try:
                diff_id = write_layer(plan.entries, scratch / "layer.tar")
                self.store.layers.add(scratch / "layer.tar", expected_diff_id=diff_id, compression="none",
                                      holder=self.cache.holder(key))
                blob = compress_layer(scratch / "layer.tar", self.cache.blobs)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            return stage.state.with_layer(diff_id, blob, created_by, change)

        return self.step(stage, key_text, make, made=lambda s: s.layers[-1])

    # --8<-- [start:run_step]
    def run_step(self, stage: StageBuild, created_by: str, command: list[str],
                 env: dict[str, str]) -> ImageState:
        """RUN: a container of the image so far (the build worker), its changes committed as a layer."""
        import os

        from minidocker.build.run import step_argv

        key = self.cache.key(stage.state.id, created_by)

        def make() -> ImageState:
            container_id = os.urandom(32).hex()
            self.say(f" ---> Running in {container_id[:12]}\n")
            scratch = self.cache.scratch()
            try:
                argv = step_argv(stage.state.run_config, stage.state.diff_ids, command, env, container_id,
                                 self.network, self.extra_hosts)
                answer = self.worker.run({"id": container_id, "argv": argv, "tar": str(scratch / "layer.tar"),
                                          "holder": self.cache.holder(key)},
                                         on_output=lambda data: self.say(data.decode(errors="replace")))
                if answer.get("commit_failed"):
                    raise BuildError(answer["error"])
                if answer.get("error"):
                    self.say(answer["error"] + "\n")
                if answer["exit"] != 0:
                    raise BuildError(f"The command '{' '.join(command)}' returned a non-zero code: "
                                     f"{answer['exit']}", answer["exit"])
                self.say(f"Removing intermediate container {container_id[:12]}\n")
                blob = compress_layer(scratch / "layer.tar", self.cache.blobs) if answer["diff_id"] else None
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            return stage.state.with_layer(answer["diff_id"], blob, created_by)

        return self.step(stage, created_by, make,
                         made=lambda s: s.layers[-1] if len(s.layers) > len(stage.state.layers) else None)
    # --8<-- [end:run_step]

    # ---- the build -------------------------------------------------------------------------
    # --8<-- [start:run]
    def run(self, target: int, extra: list[Instruction]) -> ImageState:
        """Build every stage up to ``target`` in order (as the classic builder does); the last image."""
        stages = self.df.stages[:target + 1]
        total = len(self.df.meta_args) + sum(1 + len(s.instructions) for s in stages) + len(extra)
        number = 0

        def announce(step: Instruction) -> None:
            nonlocal number
            number += 1
            self.current = step
            self.say(f"Step {number}/{total} : {step.original}\n")

        for step in self.df.meta_args:  # ARGs before FROM: only FROM lines can use them
            announce(step)
            for word in step.args:
                name, has_default, default = word.partition("=")
                env = {k: v for k, v in self.meta_args.items() if v is not None}
                value = self.expand(default, env, step) if has_default else None
                self.meta_args[name] = self.build_args.get(name, value)
                self.consumed.add(name)
        for definition in stages:
            announce(definition.origin)
            stage = StageBuild(definition.index, definition.name, self.from_state(definition))
            self.stages.append(stage)
            self.say(f" ---> {stage.state.id[7:19]}\n")
            self.run_triggers(stage, definition.origin)
            for step in definition.instructions + (extra if definition is stages[-1] else []):
                announce(step)
                stage.state = buildsteps.DISPATCH[step.keyword](self, stage, step)
                self.say(f" ---> {stage.state.id[7:19]}\n")
        unused = sorted(set(self.build_args) - self.consumed)
        if unused:
            self.say(f"[Warning] One or more build-args {unused} were not consumed\n")
        return self.stages[-1].state
    # --8<-- [end:run]

    def run_triggers(self, stage: StageBuild, origin: Instruction) -> None:
        """The base image's ONBUILD instructions run first; the new image does not inherit them."""
        triggers = stage.state.run_config.get("OnBuild") or []
        if not triggers:
            return
        self.say(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}\n")
        for text in triggers:
            self.current = instruction(origin.line, text, self.escape, self.df.filename)
            stage.state = buildsteps.DISPATCH[self.current.keyword](self, stage, self.current)
        config = dict(stage.state.config, config={k: v for k, v in stage.state.run_config.items()
                                                  if k != "OnBuild"})
        stage.state = ImageState.of(config, stage.state.layers)

    def expand(self, word: str, env: dict[str, str], step: Instruction) -> str:
        from minidocker.build import shellwords

        try:
            return shellwords.expand(word, env, self.escape)
        except shellwords.SubstitutionError as e:
            raise self.error_at(step, str(e)) from None

    def from_state(self, definition: Stage) -> ImageState:
        """``FROM``: scratch, an earlier stage, or an image (pulled if missing)."""
        env = {k: v for k, v in self.meta_args.items() if v is not None}
        name = self.expand(definition.base, env, definition.origin)
        if not name:
            raise self.error_at(definition.origin, f"base name ({definition.base}) should not be blank")
        if name.lower() == "scratch":
            return ImageState.scratch()
        for done in self.stages:
            if done.name == name.lower():
                return done.state
        try:
            return self._base_image(name)
        except EngineError as e:
            raise self.error_at(definition.origin, str(e)) from None


def _context_source(context: str | Path | BinaryIO, scratch: Path, dockerfile_name: str) -> None:
    """Unpack the context (a tar path or stream, or a directory packed first) into ``scratch/context``."""
    if isinstance(context, (str, Path)) and Path(context).is_dir():
        with open(scratch / "context.tar", "w+b") as packed:  # as a client sends it: .dockerignore applied
            buildcontext.pack(context, packed, dockerfile=dockerfile_name)
            packed.seek(0)
            buildcontext.extract(packed, scratch / "context")
        os.unlink(scratch / "context.tar")
        return
    buildcontext.extract(context, scratch / "context")


# --8<-- [start:build]
# --8<-- [start:build_part1]
def build(context_tar: str | Path | BinaryIO, *, dockerfile: str = "Dockerfile",
          tags: tuple[str, ...] | list[str] = (),
          build_args: dict[str, str] | None = None, target: str | None = None, no_cache: bool = False,
          on_event: Callable[[Event], None] | None = None, pull: bool = False, network: str = "default",
          labels: dict[str, str] | None = None, store: ImageStore | None = None,
          cache: BuildCache | None = None, extra_hosts: list[str] | tuple = ()) -> str:
# --8<-- [end:build_part1]
    """Build the image the context's Dockerfile describes; tag it; return its ID.

    ``context_tar`` is the build context as a tar (a path or a binary stream, maybe compressed),
    or a directory. Progress goes to ``on_event`` as Docker's ``/build`` stream messages. A
    failing step raises :class:`BuildError` (its exit code is the command's); nothing is tagged
    then, and the cache keeps the steps that completed.
    """
    # --8<-- [start:build_part2]
    from minidocker.images import reference

    emit = on_event or (lambda event: None)
    store = store or ImageStore()
    cache = cache or BuildCache(layer_store=store.layers)
    for tag in tags:  # a bad name is an error before anything runs
        reference.parse(tag)
    cache.clean_temp()
    scratch = cache.scratch()
    try:
        (scratch / "context").mkdir()
        _context_source(context_tar, scratch, dockerfile)
        text = buildcontext.read_dockerfile(scratch / "context", dockerfile)
        ignore = buildcontext.read_ignore(scratch / "context")  # bounded, never through a symlink
        if ignore.patterns:
            buildcontext.remove_ignored(scratch / "context", ignore)
        df = parse_dockerfile(text, dockerfile)
        for warning in df.warnings:
            emit({"stream": f"[WARNING]: {warning}\n"})
        extra = [dockerfile_label(labels)] if labels else []
        builder = Builder(df, scratch / "context", store=store, cache=cache, build_args=build_args or {},
                          no_cache=no_cache, pull=pull, network="bridge" if network == "default" else network,
                          on_event=emit, extra_hosts=extra_hosts)
        with builder.worker:
            state = builder.run(df.stage(target), extra)
        image = store_image(state, store, [cache.blobs], list(tags))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    emit({"aux": {"ID": image.id}})
    emit({"stream": f"Successfully built {image.short_id}\n"})
    for tag in tags:
        emit({"stream": f"Successfully tagged {reference.parse(tag).familiar}\n"})
    return image.id
    # --8<-- [end:build_part2]
# --8<-- [end:build]


def dockerfile_label(labels: dict[str, str]) -> Instruction:
    """The API's ``labels``: one more LABEL step at the end, as Docker's classic builder adds it."""
    import json

    text = "LABEL " + " ".join(f"{json.dumps(k)}={json.dumps(v)}" for k, v in sorted(labels.items()))
    return instruction(0, text)


def summarize(events: list[Event]) -> list[dict[str, Any]]:
    """The steps of a build from its events: ``{"step", "instruction", "cached", "id"}`` each.

    What tests and the notebook look at: which steps came from the cache, which ran.
    """
    steps: list[dict[str, Any]] = []
    for event in events:
        text = event.get("stream", "")
        if text.startswith("Step "):
            number, _, instruction = text.partition(" : ")
            steps.append({"step": number[5:], "instruction": instruction.rstrip("\n"), "cached": False,
                          "id": None})
        elif steps and text == " ---> Using cache\n":
            steps[-1]["cached"] = True
        elif steps and text.startswith(" ---> ") and not text.startswith(" ---> Running in"):
            steps[-1]["id"] = text[6:].strip()
    return steps


def main(argv: list[str] | None = None) -> int:
    """``python -m minidocker.build [OPTIONS] PATH``, ``history IMAGE``, ``prune``: here, without a daemon."""
    from minidocker.build import cli
    from minidocker.core import stage as _stage
    from minidocker.core.console import table
    from minidocker.core.units import human_size

    argv = sys.argv[1:] if argv is None else argv

    def body() -> int:
        from minidocker.build.image import history

        if argv[:1] == ["history"] and len(argv) == 2:
            store = ImageStore()
            print(table(cli.history_rows(history(store.get(argv[1]), store))))
            return 0
        if argv == ["prune"]:
            keys, reclaimed = BuildCache().prune()
            print(f"Deleted build cache objects: {len(keys)}\nTotal reclaimed space: {human_size(reclaimed)}")
            return 0
        about = "Build an image from a Dockerfile, here (no daemon)."
        p = cli.build_options(_stage._Parser(prog="python -m minidocker.build", description=about))
        opts = p.parse_args(argv)
        name, extra = cli.dockerfile_option(opts)
        if extra:
            raise BuildError("-f outside the context: use the minidocker client, or move the Dockerfile "
                             "into PATH")
        image_id = build(opts.path, dockerfile=name, tags=opts.tag,
                         build_args=cli.pairs(opts.build_arg, "--build-arg"), target=opts.target,
                         no_cache=opts.no_cache, pull=opts.pull, network=opts.network,
                         labels=cli.pairs(opts.label, "--label") or None,
                         on_event=lambda e: cli.render(e, sys.stdout, opts.quiet))
        if opts.quiet:
            print(image_id)
        return 0

    return _stage.guarded(body)


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
    sys.exit(EXIT_ENGINE)
