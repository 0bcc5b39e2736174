"""A small reader of Dockerfiles for the repository checks: instructions with continuation lines
joined, stages, and what one target of a multi-stage build is made of (the root Dockerfile has
one target per image, built on shared stages)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Stage:
    """One FROM ... [AS name] block: its base, its name (lower case) and its instructions."""

    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def copied_sources(self) -> set[str]:
        """The build-context paths its COPY instructions read (not `COPY --from=`)."""
        sources: set[str] = set()
        for keyword, args in self.instructions:
            if keyword == "COPY" and "--from=" not in args:
                words = [w for w in args.split() if not w.startswith("--")]
                sources.update(w.rstrip("/") for w in words[:-1])
        return sources

    def copied_from(self) -> set[str]:
        """The stages its `COPY --from=<stage>` instructions read."""
        found: set[str] = set()
        for keyword, args in self.instructions:
            for word in args.split() if keyword == "COPY" else ():
                if word.startswith("--from="):
                    found.add(word.removeprefix("--from=").lower())
        return found


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        result.append((keyword.upper(), " ".join(args.split())))
    return result


def stages(path: Path) -> list[Stage]:
    found: list[Stage] = []
    for keyword, args in instructions(path):
        if keyword == "FROM":
            words = [w for w in args.split() if not w.startswith("--platform")]
            named = len(words) >= 3 and words[1].upper() == "AS"
            found.append(Stage(words[0], words[2].lower() if named else str(len(found))))
        if found:
            found[-1].instructions.append((keyword, args))
    return found


def target_stages(path: Path, target: str) -> list[Stage]:
    """The stages a `--target <target>` build runs: the target and, transitively, the stages it
    is built FROM or copies from, in file order."""
    by_name = {stage.name: stage for stage in stages(path)}
    if target not in by_name:
        raise KeyError(f"{path} has no stage {target!r}")
    needed: set[str] = set()
    todo = [target]
    while todo:
        name = todo.pop()
        if name in needed or name not in by_name:
            continue  # an external image (a base), not a stage of this file
        needed.add(name)
        stage = by_name[name]
        todo.extend([stage.base.lower(), *stage.copied_from()])
    return [stage for stage in by_name.values() if stage.name in needed]
