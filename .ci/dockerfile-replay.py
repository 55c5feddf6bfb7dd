#!/usr/bin/env python3
"""Replays the Dockerfile's build on this machine, without a container engine.

No container engine runs here and no base image can be fetched, so the
image itself cannot be built. What broke the image before (a dependency
layer that named four of five benchmarks, so `cargo build` failed at once)
is a matter of the build stages' own steps: which files each COPY brings,
and whether each RUN succeeds on them. This script runs those steps as the
Dockerfile writes them, each stage in a scratch directory of its own:

- the build context is the committed tree (`git archive HEAD`) less what
  `.dockerignore` leaves out;
- `FROM <stage>` starts from a copy of that stage's files; `FROM <image>`
  starts empty (the image's toolchain is this machine's: the replay checks
  the steps, not the base image);
- `WORKDIR`, `COPY [--from=stage] src... dst` and `RUN` act inside the
  stage's directory; a RUN may write under its WORKDIR and to
  `/usr/local/bin`, which is mapped into the stage too, and nowhere else;
- the last stage (the runtime image) is not run (its RUN lines install
  system packages): its COPY sources must exist, and the ENTRYPOINT with
  the CMD and the HEALTHCHECK command must be subcommands the built binary
  knows (each is run with `--help`).

To keep CI within minutes, one thing differs from the image's build: the
RUN lines build the dev profile (`--release` is dropped and
`target/release/` read as `target/debug/`), and each stage's `target/` is
a link to this checkout's `target/`, so the dependencies CI compiled for
its tests are reused. An optimised build of every dependency would take
longer than the rest of CI; the profile changes how code is compiled, not
which files and targets the steps need, which is what broke before.

Usage: .ci/dockerfile-replay.py [Dockerfile]   (from the repository root)
"""

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path.cwd()
MAPPED_BIN = "/usr/local/bin"
# The dev profile for the image's release build (see the module docs).
PROFILE_SWAP = [("--release", ""), ("target/release/", "target/debug/")]


def fail(message):
    print(f"dockerfile-replay: {message}", file=sys.stderr)
    sys.exit(1)


def instructions(text):
    """(line number, keyword, argument) of each instruction, continuation
    lines joined and comments dropped."""
    out, buffer, start = [], "", None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue
        start = start or number
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        buffer += stripped
        keyword, _, argument = buffer.partition(" ")
        out.append((start, keyword.upper(), argument.strip()))
        buffer, start = "", None
    return out


def stages(parsed):
    """Each stage: its name, what it starts from, and its instructions."""
    args = {}
    result = []
    for number, keyword, argument in parsed:
        if keyword == "ARG" and not result:
            name, _, default = argument.partition("=")
            args[name] = default
            continue
        if keyword == "FROM":
            words = argument.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), ""), words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else str(len(result))
            result.append({"name": name, "from": base, "line": number, "steps": []})
            continue
        if not result:
            fail(f"line {number}: {keyword} before the first FROM")
        result[-1]["steps"].append((number, keyword, argument))
    return result


def context_tree(scratch):
    """The build context: the committed tree less `.dockerignore`."""
    context = scratch / "context"
    context.mkdir()
    archive = subprocess.run(
        ["git", "archive", "--format=tar", "HEAD"], cwd=ROOT, check=True, capture_output=True
    ).stdout
    archive_path = scratch / "context.tar"
    archive_path.write_bytes(archive)
    with tarfile.open(archive_path) as tar:
        tar.extractall(context, filter="data")
    ignore = ROOT / ".dockerignore"
    patterns = [
        p.strip().rstrip("/")
        for p in (ignore.read_text().splitlines() if ignore.exists() else [])
        if p.strip() and not p.startswith("#")
    ]
    for path in sorted(context.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        relative = path.relative_to(context).as_posix()
        if any(fnmatch.fnmatch(relative, p) or fnmatch.fnmatch(path.name, p) for p in patterns):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
    return context


def copy_into(source, destination):
    """`COPY source destination`, as Docker does it: a directory's contents
    are merged into the destination."""
    if not source.exists():
        return False
    if source.is_dir():
        destination.mkdir(parents=True, exist_ok=True)
        shutil.copytree(source, destination, dirs_exist_ok=True, symlinks=True)
    else:
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination)
    return True


class Stage:
    def __init__(self, spec, scratch, built):
        self.name = spec["name"]
        self.root = scratch / f"stage-{self.name}"
        base = built.get(spec["from"])
        if base is not None:
            shutil.copytree(base.root, self.root, symlinks=True)
            self.workdir = base.workdir
        else:
            self.root.mkdir()
            self.workdir = "/"

    def path(self, inside):
        """A path of the stage's filesystem, in its scratch directory."""
        inside = inside if inside.startswith("/") else f"{self.workdir.rstrip('/')}/{inside}"
        return self.root / inside.lstrip("/")


def copy_step(stage, number, argument, context, built):
    words = shlex.split(argument)
    if words[0].startswith("--from="):
        origin = built.get(words[0].split("=", 1)[1])
        if origin is None:
            fail(f"line {number}: COPY {words[0]}: no such stage before it")
        words = words[1:]
        sources = [origin.path(w) for w in words[:-1]]
    else:
        sources = [context / w for w in words[:-1]]
    destination = words[-1]
    for source in sources:
        target = stage.path(destination)
        if destination.endswith("/") or len(sources) > 1:
            target = target / source.name
        if not copy_into(source, target):
            fail(f"line {number}: COPY {argument}: `{source}` is not in the build context")


def run_step(stage, number, argument, shared_target):
    if argument.startswith("["):
        command = shlex.join(json.loads(argument))
    else:
        command = argument
    outside = [
        m.group(0)
        for m in re.finditer(r"(?<![\w.$/-])/[\w./-]+", command)
        if not m.group(0).startswith(MAPPED_BIN)
    ]
    if outside:
        fail(f"line {number}: RUN writes outside its WORKDIR and {MAPPED_BIN}: {outside}")
    command = command.replace(MAPPED_BIN, str(stage.path(MAPPED_BIN)))
    for release, dev in PROFILE_SWAP:
        command = command.replace(release, dev)
    stage.path(MAPPED_BIN).mkdir(parents=True, exist_ok=True)
    workdir = stage.path(stage.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    target = workdir / "target"
    if not target.exists():
        target.symlink_to(shared_target)
    env = dict(os.environ)
    env.pop("CARGO_TARGET_DIR", None)
    print(f"==> [{stage.name}] line {number}: RUN {argument}", flush=True)
    done = subprocess.run(["sh", "-ec", command], cwd=workdir, env=env)
    if done.returncode != 0:
        fail(f"line {number}: RUN {argument}: exit status {done.returncode}")


def check_runtime(spec, context, built):
    """The last stage: its COPY sources exist, and its commands are the
    binary's."""
    binary = None
    entrypoint, command, health = [], [], []
    for number, keyword, argument in spec["steps"]:
        if keyword == "COPY":
            words = shlex.split(argument)
            if words[0].startswith("--from="):
                origin = built[words[0].split("=", 1)[1]]
                for source in words[1:-1]:
                    if not origin.path(source).exists():
                        fail(f"line {number}: COPY {argument}: stage `{origin.name}` made no `{source}`")
                    if source.startswith(MAPPED_BIN):
                        binary = origin.path(source)
            else:
                for source in words[:-1]:
                    if not (context / source).exists():
                        fail(f"line {number}: COPY {argument}: `{source}` is not in the build context")
        elif keyword == "ENTRYPOINT":
            entrypoint = json.loads(argument)
        elif keyword == "CMD":
            command = json.loads(argument)
        elif keyword == "HEALTHCHECK":
            health = json.loads(argument.split("CMD", 1)[1].strip())
    if binary is None:
        fail("the runtime stage copies no binary from a build stage")
    for words in (entrypoint + command, health):
        if not words:
            continue
        run = [str(binary), *words[1:], "--help"]
        done = subprocess.run(run, capture_output=True, text=True)
        if done.returncode != 0:
            fail(f"`{' '.join(words)}` is not a command of the built binary: {done.stderr.strip()}")
        print(f"==> runtime: `{' '.join(words)}` is a command of the built binary", flush=True)


def main():
    dockerfile = Path(sys.argv[1] if len(sys.argv) > 1 else "Dockerfile")
    specs = stages(instructions(dockerfile.read_text()))
    shared_target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")).resolve()
    shared_target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dockerfile-replay-") as scratch:
        scratch = Path(scratch)
        context = context_tree(scratch)
        built = {}
        for spec in specs[:-1]:
            stage = Stage(spec, scratch, built)
            for number, keyword, argument in spec["steps"]:
                if keyword == "WORKDIR":
                    stage.workdir = argument
                    stage.path(argument).mkdir(parents=True, exist_ok=True)
                elif keyword == "COPY":
                    copy_step(stage, number, argument, context, built)
                elif keyword == "RUN":
                    run_step(stage, number, argument, shared_target)
            built[stage.name] = stage
        check_runtime(specs[-1], context, built)
    print("dockerfile-replay: the build stages replay and the runtime stage holds together")


if __name__ == "__main__":
    main()
