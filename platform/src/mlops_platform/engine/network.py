"""What dockerd adds to the host's networking, and how to take exactly that away again.

dockerd (bridge networking, --iptables=true) creates the `docker0` bridge and the DOCKER*
iptables chains with jump and masquerade rules in the filter and nat tables, and leaves all of
them behind when it exits. The engine snapshots the rules and links before it starts dockerd and,
after dockerd has stopped, deletes only the docker rules, chains and bridges that were not there
before: a rule or chain another engine (or an operator) owned is never touched.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

TABLES = ("filter", "nat")
DOCKER_CHAINS = ("DOCKER", "DOCKER-USER", "DOCKER-ISOLATION-STAGE-1", "DOCKER-ISOLATION-STAGE-2")
SYS_NET = Path("/sys/class/net")
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")

Run = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def run_quiet(command: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(command), capture_output=True, text=True, timeout=30, check=False)


@dataclass(frozen=True)
class NetSnapshot:
    """iptables rules (`iptables -t T -S` lines) per table and the bridge-like links present."""

    rules: dict[str, list[str]] = field(default_factory=dict)
    links: frozenset[str] = frozenset()
    ip_forward: str = ""

    def to_json(self) -> dict[str, object]:
        return {"rules": self.rules, "links": sorted(self.links), "ip_forward": self.ip_forward}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> NetSnapshot:
        rules = data.get("rules") or {}
        links = data.get("links") or []
        assert isinstance(rules, dict) and isinstance(links, list)
        return cls(
            {str(k): [str(r) for r in v] for k, v in rules.items()},
            frozenset(str(x) for x in links),
            str(data.get("ip_forward") or ""),
        )


def iptables_binary() -> str | None:
    return shutil.which("iptables") or next(
        (p for p in ("/usr/sbin/iptables", "/sbin/iptables") if Path(p).exists()), None
    )


def docker_links(sys_net: Path = SYS_NET) -> frozenset[str]:
    """docker0 and the br-<id> bridges of docker networks."""
    if not sys_net.is_dir():
        return frozenset()
    return frozenset(
        p.name for p in sys_net.iterdir() if p.name == "docker0" or p.name.startswith("br-")
    )


def take_snapshot(run: Run = run_quiet, sys_net: Path = SYS_NET) -> NetSnapshot:
    iptables = iptables_binary()
    rules: dict[str, list[str]] = {}
    if iptables is not None:
        for table in TABLES:
            result = run([iptables, "-t", table, "-S"])
            rules[table] = result.stdout.splitlines() if result.returncode == 0 else []
    try:
        forward = IP_FORWARD.read_text().strip()
    except OSError:
        forward = ""
    return NetSnapshot(rules, docker_links(sys_net), forward)


def _is_docker_rule(rule: str) -> bool:
    words = shlex.split(rule)
    mentions_chain = any(chain in words for chain in DOCKER_CHAINS)
    mentions_link = any(w == "docker0" or w.startswith("br-") for w in words)
    return mentions_chain or mentions_link


def cleanup_commands(before: NetSnapshot, after: NetSnapshot, iptables: str) -> list[list[str]]:
    """The commands that remove what dockerd added between the two snapshots, in a safe order:
    rules first (jumps out of the built-in chains), then the chains it created (flush, delete),
    then the built-in chains' policies it changed (dockerd sets FORWARD to DROP) put back."""
    deletes: list[list[str]] = []
    flushes: list[list[str]] = []
    removals: list[list[str]] = []
    policies: list[list[str]] = []
    for table in TABLES:
        old = set(before.rules.get(table, []))
        old_policy = {
            words[1]: words[2]
            for words in (shlex.split(r) for r in before.rules.get(table, []))
            if words[:1] == ["-P"] and len(words) == 3
        }
        for rule in after.rules.get(table, []):
            if rule in old:
                continue
            words = shlex.split(rule)
            if words[:1] == ["-P"] and len(words) == 3 and words[1] in old_policy:
                policies.append([iptables, "-t", table, "-P", words[1], old_policy[words[1]]])
            elif words[:1] == ["-A"] and _is_docker_rule(rule):
                deletes.append([iptables, "-t", table, "-D", *words[1:]])
            elif words[:1] == ["-N"] and len(words) == 2 and words[1] in DOCKER_CHAINS:
                flushes.append([iptables, "-t", table, "-F", words[1]])
                removals.append([iptables, "-t", table, "-X", words[1]])
    return deletes + flushes + removals + policies


def link_commands(before: NetSnapshot, after: NetSnapshot) -> list[list[str]]:
    return [["ip", "link", "delete", name] for name in sorted(after.links - before.links)]


def restore(before: NetSnapshot, run: Run = run_quiet, sys_net: Path = SYS_NET) -> list[str]:
    """Remove what was added since `before`; returns one line per action (failures included)."""
    after = take_snapshot(run, sys_net)
    iptables = iptables_binary()
    commands = link_commands(before, after)
    if iptables is not None:
        commands = cleanup_commands(before, after, iptables) + commands
    report: list[str] = []
    for command in commands:
        result = run(command)
        status = "ok" if result.returncode == 0 else f"failed: {result.stderr.strip()}"
        report.append(f"{shlex.join(command)}: {status}")
    if before.ip_forward and after.ip_forward and before.ip_forward != after.ip_forward:
        try:
            IP_FORWARD.write_text(before.ip_forward + "\n")
            report.append(f"net.ipv4.ip_forward back to {before.ip_forward}: ok")
        except OSError as exc:
            report.append(f"net.ipv4.ip_forward back to {before.ip_forward}: failed: {exc}")
    return report


def save(snapshot: NetSnapshot, path: Path) -> None:
    path.write_text(json.dumps(snapshot.to_json(), indent=1))


def load(path: Path) -> NetSnapshot | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return NetSnapshot.from_json(data) if isinstance(data, dict) else None
