"""A small Dockerfile reader for policy tests: instructions with their stage, continuations joined."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Instruction:
    keyword: str        # upper case: FROM, RUN, COPY, ...
    args: str           # the rest of the (joined) line
    line: int           # 1-based line where it starts


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def instructions(text: str) -> list[Instruction]:
    """The instructions of a Dockerfile, comments dropped and backslash continuations joined."""
    out: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue        # comment lines inside a continued instruction are dropped by Docker too
        if not pending:
            start = number
        continues = stripped.endswith("\\")
        pending.append(stripped[:-1].strip() if continues else stripped)
        if not continues:
            joined = " ".join(part for part in pending if part)
            keyword, _, args = joined.partition(" ")
            out.append(Instruction(keyword.upper(), args.strip(), start))
            pending = []
    return out


def stages(text: str) -> list[Stage]:
    """The build stages in order, each with the instructions after its FROM."""
    result: list[Stage] = []
    for ins in instructions(text):
        if ins.keyword == "FROM":
            words = [w for w in ins.args.split() if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            result.append(Stage(words[0], name))
        elif result:
            result[-1].instructions.append(ins)
    return result


def read(path: Path) -> list[Stage]:
    return stages(path.read_text())


APT_INSTALL = re.compile(r"apt-get\s+install\b(?P<rest>[^&;|]*)")


def apt_packages(run: str) -> list[str]:
    """Package names given to every ``apt-get install`` in a RUN command."""
    names: list[str] = []
    for match in APT_INSTALL.finditer(run):
        names += [w for w in match.group("rest").split() if not w.startswith("-")]
    return names
