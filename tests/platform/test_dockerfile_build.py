"""The image's build steps run, for real, in order.

There is no Docker engine on the project's machines, so ``docker build`` cannot run. Instead this
test reads platform/Dockerfile and carries out its instructions on this machine:

- ``FROM``: the base image's Python is played by a fresh virtual environment made from this
  interpreter (the image's Python version must satisfy the project's ``requires-python``). A
  ``.pth`` file puts the project's own ``.venv`` site-packages after the new environment's, so
  that ``pip install .`` finds the pinned dependencies already installed and downloads only what
  its isolated build needs (setuptools, from the package index, as ``make install`` does); pip
  installs into the new environment only and never touches ``.venv``.
- ``ENV``, ``WORKDIR``: applied. RUN steps see only the image's environment (plus this machine's
  pip, proxy and certificate settings), with ``python`` and ``pip`` from the new environment.
- ``COPY``: the files are copied from the repository (the build context), filtered by
  platform/Dockerfile.dockerignore as BuildKit filters them.
- ``RUN``: run with ``/bin/sh -c``, as Docker runs them. Absolute paths of the image's own
  directories (``/app``, ``/data``, ...) are mapped into a temporary root. A step that names a
  system directory (``/usr``, ``/etc``, ...) is not run: the tests run as root here and the step
  would change this machine, so the test fails and says so. ``useradd``/``groupadd`` and
  ``chown`` are stand-ins that record users and check that a chown's user exists and its paths
  exist, as in the image, without changing this machine's accounts or file owners.
- ``USER``: the user must have been created by an earlier step. ``CMD``: its script must exist.

A broken build step (like a settings check that refuses the build's placeholder SECRET_KEY)
therefore fails this test; the second test proves it with exactly that regression.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pytest
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "platform" / "Dockerfile"
DOCKERIGNORE = ROOT / "platform" / "Dockerfile.dockerignore"

# Top-level directories of the base image's operating system. A RUN step naming one would change
# this machine rather than an image, so it is refused (see the module docstring).
SYSTEM_DIRS = frozenset(
    {"bin", "boot", "dev", "etc", "home", "lib", "lib32", "lib64", "libx32", "media", "mnt", "opt"}
    | {"proc", "root", "run", "sbin", "srv", "sys", "usr", "var"}
)
# This machine's settings that pip needs to reach the package index, passed to RUN steps.
PASS_THROUGH_PREFIXES = ("PIP_",)
PASS_THROUGH = frozenset(
    {
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
    }
)
# An absolute path in a shell command: a "/" at the start of a word (or after "=", ":" or a quote)
# followed by a name. "scheme://host" and "sqlite:////tmp/x" do not match: their slashes follow
# a slash.
ABSOLUTE_PATH = re.compile(r"""(?<![^\s=:'"(])/([A-Za-z0-9._-]+)""")

STUBS = {
    "useradd": """#!/bin/sh
# Stand-in for useradd: records the user; this machine's accounts are never changed.
set -eu
name=""
for arg; do name="$arg"; done
case "$name" in "" | -*) echo "useradd: no user name" >&2; exit 2 ;; esac
echo "$name" >>"$BUILD_STUB_STATE/users"
echo "[build reproduction] useradd $*: user '$name' recorded, not created on this machine" >&2
""",
    "groupadd": """#!/bin/sh
# Stand-in for groupadd: records the group; this machine's groups are never changed.
set -eu
name=""
for arg; do name="$arg"; done
case "$name" in "" | -*) echo "groupadd: no group name" >&2; exit 2 ;; esac
echo "$name" >>"$BUILD_STUB_STATE/groups"
echo "[build reproduction] groupadd $*: group '$name' recorded" >&2
""",
    "chown": """#!/bin/sh
# Stand-in for chown: fails where chown in the image would (an owner no earlier step created, a
# path that does not exist); file owners on this machine are never changed.
set -eu
known() {
  case "$1" in root | 0) return 0 ;; esac
  case "$1" in *[!0-9]*) ;; *) return 0 ;; esac
  grep -qx -- "$1" "$BUILD_STUB_STATE/users" "$BUILD_STUB_STATE/groups" 2>/dev/null
}
owner=""
paths=0
for arg; do
  case "$arg" in -*) continue ;; esac
  if [ -z "$owner" ]; then owner="$arg"; continue; fi
  if [ ! -e "$arg" ] && [ ! -L "$arg" ]; then
    echo "chown: cannot access '$arg': No such file or directory" >&2
    exit 1
  fi
  paths=$((paths + 1))
done
if [ -z "$owner" ] || [ "$paths" -eq 0 ]; then echo "chown: missing operand" >&2; exit 1; fi
user="${owner%%:*}"
group=""
case "$owner" in *:*) group="${owner#*:}" ;; esac
if [ -n "$user" ] && ! known "$user"; then echo "chown: invalid user: '$owner'" >&2; exit 1; fi
if [ -n "$group" ] && ! known "$group"; then echo "chown: invalid group: '$owner'" >&2; exit 1; fi
echo "[build reproduction] chown $*: checked, not applied on this machine" >&2
""",
}


class RefusedStepError(AssertionError):
    """A step this reproduction will not run on this machine."""


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int

    def __str__(self) -> str:
        return f"line {self.line}: {self.keyword} {self.args}"


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions in order, with continuation lines joined and comments dropped, as Docker does."""
    instructions: list[Instruction] = []
    parts: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not parts and not stripped):
            continue  # comments (also inside a continued instruction) and blank lines
        if not parts:
            start = number
        if raw.rstrip().endswith("\\"):
            parts.append(raw.rstrip()[:-1])
            continue
        parts.append(raw)
        keyword, _, args = "".join(parts).strip().partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip(), start))
        parts = []
    assert not parts, "the Dockerfile ends inside a continued instruction"
    return instructions


def _pattern(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go's filepath.Match plus "**") as a regular expression."""
    out, i = "", 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                out, i = out + "(?:.*/)?", i + 1
            else:
                out += ".*"
            continue
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char == "[":
            end = pattern.index("]", i)
            out += pattern[i : end + 1]
            i = end
        else:
            out += re.escape(char)
        i += 1
    return re.compile(out)


def load_ignore(path: Path) -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for raw in path.read_text().splitlines() if path.exists() else []:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        cleaned = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        rules.append((negated, _pattern(cleaned)))
    return rules


def is_ignored(relative: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether BuildKit leaves this context path out: the last rule matching it or a parent wins."""
    parts = PurePosixPath(relative).parts
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for negated, rule in rules:
        if any(rule.fullmatch(prefix) for prefix in prefixes):
            ignored = not negated
    return ignored


@dataclass
class Step:
    instruction: Instruction
    seconds: float
    output: str = ""


@dataclass
class BuildReproduction:
    """Carries out a Dockerfile's instructions on this machine (see the module docstring)."""

    workspace: Path
    context: Path = ROOT
    env: dict[str, str] = field(default_factory=dict)
    workdir: str = "/"
    user: str = "root"
    cmd: list[str] = field(default_factory=list)
    from_image: str = ""
    steps: list[Step] = field(default_factory=list)
    seconds: float = 0.0

    def __post_init__(self) -> None:
        self.rootfs = self.workspace / "rootfs"
        self.venv = self.workspace / "python"
        self.stubs = self.workspace / "stubs"
        self.state = self.workspace / "state"
        for directory in (
            self.rootfs,
            self.stubs,
            self.state,
            self.workspace / "home",
            self.workspace / "tmp",
        ):
            directory.mkdir(parents=True, exist_ok=True)
        for name in ("users", "groups"):
            (self.state / name).touch()
        for name, script in STUBS.items():
            (self.stubs / name).write_text(script)
            (self.stubs / name).chmod(0o755)
        self.ignore_rules = load_ignore(DOCKERIGNORE)

    # -- paths -------------------------------------------------------------------------------
    def host_path(self, image_path: str) -> Path:
        """Where an absolute path of the image lives here (inside the temporary root)."""
        path = PurePosixPath(image_path)
        assert path.is_absolute(), image_path
        if len(path.parts) > 1 and path.parts[1] in SYSTEM_DIRS:
            raise RefusedStepError(f"{image_path} is a system directory: this step would change this machine")
        return self.rootfs.joinpath(*path.parts[1:])

    def map_paths(self, text: str) -> str:
        return ABSOLUTE_PATH.sub(lambda m: str(self.host_path("/" + m.group(1))), text)

    def image_path(self, path: str) -> str:
        """A path of an instruction, made absolute against WORKDIR and with $VARIABLES expanded."""
        path = self.expand(path)
        return str(PurePosixPath(self.workdir, path)) + ("/" if path.endswith("/") else "")

    def expand(self, text: str) -> str:
        def value(match: re.Match[str]) -> str:
            name = match.group(1) or match.group(2)
            if name not in self.env:
                raise AssertionError(f"${name} is not set by an earlier ENV")
            return self.env[name]

        if re.search(r"\$\{[^}]*[:}][-+?]", text):
            raise AssertionError(f"unsupported variable modifier in {text!r}: extend the reproduction")
        return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, text)

    # -- environment -------------------------------------------------------------------------
    def create_python(self) -> None:
        """The base image's Python: a fresh virtual environment on top of the project's packages."""
        subprocess.run([sys.executable, "-m", "venv", str(self.venv)], check=True, timeout=120)
        site = Path(
            subprocess.run(
                [
                    str(self.venv / "bin" / "python"),
                    "-c",
                    "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                ],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
        )
        (site / "zz-project-packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    def run_env(self) -> dict[str, str]:
        env = {
            name: value
            for name, value in os.environ.items()
            if name in PASS_THROUGH or name.startswith(PASS_THROUGH_PREFIXES)
        }
        env.update(self.env)
        base_path = self.env.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        env.update(
            PATH=f"{self.stubs}:{self.venv / 'bin'}:{base_path}",
            HOME=str(self.workspace / "home"),
            LANG=self.env.get("LANG", "C.UTF-8"),
            TMPDIR=str(self.workspace / "tmp"),
            BUILD_STUB_STATE=str(self.state),
        )
        return env

    # -- instructions ------------------------------------------------------------------------
    def build(self, instructions: list[Instruction]) -> None:
        for instruction in instructions:
            started = time.monotonic()
            output = self.apply(instruction)
            self.steps.append(Step(instruction, time.monotonic() - started, output))

    def apply(self, instruction: Instruction) -> str:
        handler = getattr(self, f"do_{instruction.keyword.lower()}", None)
        if handler is None:
            raise AssertionError(f"{instruction}: not reproduced here; extend {Path(__file__).name}")
        return handler(instruction) or ""

    def do_from(self, instruction: Instruction) -> None:
        self.from_image = instruction.args.split()[0]
        match = re.match(r"(?:docker\.io/)?(?:library/)?python:(\d+)\.(\d+)", self.from_image)
        assert match, f"{instruction}: the base image is expected to be the official Python image"
        image_python = f"{match.group(1)}.{match.group(2)}"
        requires = tomllib.loads((self.context / "pyproject.toml").read_text())["project"]["requires-python"]
        assert SpecifierSet(requires).contains(f"{image_python}.0"), (
            f"the image's Python {image_python} does not satisfy requires-python {requires}"
        )
        self.create_python()

    def do_env(self, instruction: Instruction) -> None:
        tokens = shlex.split(instruction.args)
        if tokens and "=" not in tokens[0]:  # legacy form: ENV NAME value with spaces
            tokens = [f"{tokens[0]}={' '.join(tokens[1:])}"]
        for token in tokens:
            name, _, value = token.partition("=")
            self.env[name] = self.map_env_value(self.expand(value))

    def map_env_value(self, value: str) -> str:
        try:
            return self.map_paths(value)
        except RefusedStepError:
            return value  # e.g. PATH=/usr/local/bin: read, never written, by the variable itself

    def do_arg(self, instruction: Instruction) -> None:
        name, _, default = instruction.args.partition("=")
        self.env.setdefault(name.strip(), self.expand(default.strip()))

    def do_workdir(self, instruction: Instruction) -> None:
        self.workdir = self.image_path(instruction.args.strip())
        self.host_path(self.workdir).mkdir(parents=True, exist_ok=True)

    def do_copy(self, instruction: Instruction) -> None:
        args = instruction.args.strip()
        tokens = json.loads(args) if args.startswith("[") else shlex.split(args)
        tokens = [token for token in tokens if not token.startswith("--")]  # --chown, --chmod
        *sources, destination = tokens
        assert sources, f"{instruction}: nothing to copy"
        files: list[Path] = []
        for source in sources:
            matches = (
                sorted(self.context.glob(source))
                if any(c in source for c in "*?[")
                else [self.context / source]
            )
            matches = [
                m for m in matches if m.exists() and not is_ignored(self.relative(m), self.ignore_rules)
            ]
            assert matches, f"{instruction}: {source} is not in the build context (or is ignored)"
            files.extend(matches)
        target = self.host_path(self.image_path(destination))
        if len(files) > 1:
            assert destination.endswith("/"), f"{instruction}: several sources need a destination ending in /"
        for source_path in files:
            if source_path.is_dir():
                self.copy_tree(source_path, target)
            else:
                dest = target / source_path.name if destination.endswith("/") or target.is_dir() else target
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source_path, dest)

    do_add = do_copy  # local sources only, which is all ADD is allowed to mean here

    def relative(self, path: Path) -> str:
        return path.relative_to(self.context).as_posix()

    def copy_tree(self, source: Path, target: Path) -> None:
        for directory, subdirectories, filenames in os.walk(source):
            here = Path(directory)
            subdirectories[:] = [
                d for d in subdirectories if not is_ignored(self.relative(here / d), self.ignore_rules)
            ]
            out = target / here.relative_to(source)
            out.mkdir(parents=True, exist_ok=True)
            for name in filenames:
                if not is_ignored(self.relative(here / name), self.ignore_rules):
                    shutil.copy2(here / name, out / name)

    def do_run(self, instruction: Instruction) -> str:
        process = self.run_step(instruction)
        assert process.returncode == 0, (
            f"{instruction}\nfailed with exit status {process.returncode}:\n{process.stdout[-6000:]}"
        )
        return process.stdout

    def run_step(self, instruction: Instruction) -> subprocess.CompletedProcess[str]:
        args = instruction.args.strip()
        if re.match(r"<<|--mount|--network|--security", args):
            raise AssertionError(f"{instruction}: RUN options and heredocs are not reproduced here")
        if args.startswith("["):
            command = [self.map_paths(arg) for arg in json.loads(args)]
        else:
            command = ["/bin/sh", "-c", self.map_paths(args)]
        return subprocess.run(
            command,
            cwd=self.host_path(self.workdir),
            env=self.run_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=300,
            check=False,
        )

    def do_user(self, instruction: Instruction) -> None:
        self.user = instruction.args.split(":")[0].strip()
        users = (self.state / "users").read_text().split()
        assert self.user in ("root", "0", *users) or self.user.isdigit(), (
            f"{instruction}: no earlier step created the user {self.user!r}"
        )

    def do_cmd(self, instruction: Instruction) -> None:
        args = instruction.args.strip()
        self.cmd = json.loads(args) if args.startswith("[") else ["/bin/sh", "-c", args]

    def do_expose(self, instruction: Instruction) -> None:
        pass

    def do_label(self, instruction: Instruction) -> None:
        pass


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> BuildReproduction:
    build = BuildReproduction(tmp_path_factory.mktemp("image"))
    started = time.monotonic()
    build.build(parse_dockerfile(DOCKERFILE.read_text()))
    build.seconds = time.monotonic() - started
    return build


def test_the_dockerfile_builds(image: BuildReproduction) -> None:
    timings = ", ".join(f"{s.instruction.keyword}@{s.instruction.line} {s.seconds:.1f}s" for s in image.steps)
    print(f"build reproduced in {image.seconds:.1f} s: {timings}")
    app = image.host_path(image.workdir)
    # pip install . put the project into the image's Python, not just a source tree beside it.
    installed = subprocess.run(
        [str(image.venv / "bin" / "python"), "-c", "import apps, workers; print(apps.__file__)"],
        cwd=image.workspace,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert installed.startswith(str(image.venv)), installed
    # collectstatic ran under the production settings.
    static = app / "var" / "static"
    assert (static / "admin" / "css" / "base.css").exists()
    assert any(static.glob("drf_spectacular_sidecar/swagger-ui-dist/*.js"))
    # The image runs as the user it created, and its command's script is there and parses.
    assert image.user == "app"
    assert image.cmd[:1] == ["sh"] and (app / image.cmd[1]).is_file(), image.cmd
    for script in (app / "platform").glob("start-*.sh"):
        subprocess.run(["sh", "-n", str(script)], check=True)
    assert sorted(p.name for p in (app / "platform").iterdir()) == [
        "start-beat.sh",
        "start-web.sh",
        "start-worker.sh",
    ], "only the start scripts of platform/ belong in the image"
    # Nothing from the local state or the developer's secrets came along.
    for leftover in (".venv", "var/platform.sqlite3", "platform/env"):
        assert not (app / leftover).exists(), leftover
    assert not any(app.rglob("__pycache__")), "caches are ignored, and the image writes no bytecode"


def test_a_broken_build_step_fails_the_reproduction(image: BuildReproduction) -> None:
    """The original defect: the build's placeholder SECRET_KEY did not pass the production check."""
    collect = next(i for i in parse_dockerfile(DOCKERFILE.read_text()) if "collectstatic" in i.args)
    broken = Instruction("RUN", re.sub(r"SECRET_KEY=\S+", "SECRET_KEY=build", collect.args), collect.line)
    assert broken.args != collect.args
    with pytest.raises(AssertionError, match="SECRET_KEY must be at least 50 characters"):
        image.apply(broken)


def test_build_only_placeholders_stay_out_of_the_image_environment() -> None:
    instructions = parse_dockerfile(DOCKERFILE.read_text())
    for instruction in instructions:
        if instruction.keyword in ("ENV", "ARG"):
            assert "SECRET_KEY" not in instruction.args, f"{instruction}: a key would be baked into the image"
    collect = next(i for i in instructions if "collectstatic" in i.args)
    key = re.search(r"SECRET_KEY=(\S+)", collect.args)
    assert key and key.group(1).startswith("build-only-"), "the build's key must say it is a placeholder"
    compose = (ROOT / "docker-compose.yml").read_text()
    assert "SECRET_KEY: ${SECRET_KEY:?" in compose, "at run time the key must come from the environment"


def test_dockerignore_keeps_local_state_and_secrets_out_of_the_context() -> None:
    rules = load_ignore(DOCKERIGNORE)
    for path in (
        "platform/env/production.env",
        ".venv/bin/python",
        "var/platform.sqlite3",
        "apps/__pycache__/x.cpython-311.pyc",
        ".git/config",
    ):
        assert is_ignored(path, rules), path
    for path in ("platform/env/production.env.example", "apps/config/settings/base.py", "README.md"):
        assert not is_ignored(path, rules), path
