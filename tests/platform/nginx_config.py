"""A small reader for platform/nginx/platform.conf, for the deployment tests."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NGINX_CONF = ROOT / "platform" / "nginx" / "platform.conf"
MiB = 1024 * 1024

_TOKEN = re.compile(r""""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[{};]|[^\s{};]+""")
_SIZES = {"": 1, "k": 1024, "m": MiB, "g": 1024 * MiB}
_SECONDS = {"": 1, "ms": 0.001, "s": 1, "m": 60, "h": 3600}


@dataclass
class Directive:
    name: str
    args: list[str]
    children: list[Directive] = field(default_factory=list)

    def all(self, name: str) -> list[Directive]:
        return [child for child in self.children if child.name == name]

    def one(self, name: str) -> Directive:
        found = self.all(name)
        assert len(found) == 1, (
            f"expected one {name!r} in {self.name} {' '.join(self.args)}, found {len(found)}"
        )
        return found[0]

    def location(self, *args: str) -> Directive:
        found = [child for child in self.all("location") if child.args == list(args)]
        assert len(found) == 1, f"expected one location {' '.join(args)}"
        return found[0]


def parse(text: str) -> Directive:
    """The configuration as a tree of directives (comments dropped, quotes kept)."""
    text = re.sub(r"(^|\s)#[^\n]*", r"\1", text)
    root = Directive("main", [])
    stack = [root]
    words: list[str] = []
    for token in _TOKEN.findall(text):
        if token == ";":
            stack[-1].children.append(Directive(words[0], words[1:]))
            words = []
        elif token == "{":
            block = Directive(words[0], words[1:])
            stack[-1].children.append(block)
            stack.append(block)
            words = []
        elif token == "}":
            assert not words, f"unterminated directive {words}"
            stack.pop()
        else:
            words.append(token)
    assert len(stack) == 1 and not words, "unbalanced braces or a missing ';'"
    return root


def config() -> Directive:
    return parse(NGINX_CONF.read_text())


def server() -> Directive:
    return config().one("server")


def size(value: str) -> int:
    match = re.fullmatch(r"(\d+)([kKmMgG]?)", value)
    assert match, f"not an nginx size: {value!r}"
    return int(match.group(1)) * _SIZES[match.group(2).lower()]


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(ms|s|m|h|)", value)
    assert match, f"not an nginx time (in one unit): {value!r}"
    return int(match.group(1)) * _SECONDS[match.group(2)]
