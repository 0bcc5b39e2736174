"""The mapping file: statsd_exporter's rules, the part of them the shipped mapping uses.

- ``mappings``: ``glob`` rules (``*`` is one dot-separated component) are tried first, in file
  order, and the first match wins; then ``regex`` rules in file order (an unanchored search).
  A rule has ``match``, ``name``, optional ``match_type``, ``labels``, ``help``,
  ``action: map|drop``, ``observer_type: histogram`` and ``histogram_options: {buckets}``.
- ``$n`` / ``${n}`` in the name and label values: the n-th ``*`` of a glob, the n-th group of a
  regex.
- ``defaults``: ``match_type``, ``glob_disable_ordering: false``, ``observer_type: histogram``
  (required: timers are histograms here, and upstream's default would be a summary) and
  ``histogram_options: {buckets}``.

Anything else statsd_exporter reads (summaries, ``scale``, ``honor_labels``,
``match_metric_type``, ``ttl``, the legacy ``timer_type`` and ``buckets``, the most-specific-glob
order of ``glob_disable_ordering: true``, …) is refused when the file is loaded, naming the key
and where it is, so that the bridge and the docker runtime's statsd_exporter never read one file
two ways. Every ``$n`` must name a capture the rule has.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

# prometheus.DefBuckets, upstream's default when the mapping file sets none
DEFAULT_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

# upstream's validation (pkg/mapper/mapper.go)
_COMPONENT = r"[a-zA-Z_](-?[a-zA-Z0-9_])*"
_GLOB_LINE = re.compile(rf"^(\*\.|{_COMPONENT}\.)+(\*|{_COMPONENT})$")
_TEMPLATE = r"(\$\{?\d+\}?)"
_METRIC_NAME = re.compile(rf"^([a-zA-Z_]|{_TEMPLATE})([a-zA-Z0-9_]|{_TEMPLATE})*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]+$")
# a reference, as upstream's glob formatter reads one (pkg/mapper/fsm/formatter.go)
_REFERENCE = re.compile(r"\$\{?([a-zA-Z0-9_$]+)\}?")
# why a key the bridge refuses is refused, when that is not obvious
_HINTS = {
    "observer_type": "timers are histograms here; statsd_exporter makes them summaries unless "
    "defaults say observer_type: histogram",
    "glob_disable_ordering": "globs are tried in file order, the first match wins",
    "defaults": "the bridge needs at least observer_type: histogram there",
}


class MappingError(ValueError):
    """The mapping file is missing, invalid or asks for what the bridge does not do."""


# ------------------------------------------------------------------------ the file, as read


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


class _HistogramOptions(_Spec):
    buckets: tuple[float, ...] = ()

    @field_validator("buckets")
    @classmethod
    def _increasing(cls, buckets: tuple[float, ...]) -> tuple[float, ...]:
        if any(later <= earlier for earlier, later in itertools.pairwise(buckets)):
            raise ValueError(f"buckets must be in increasing order, got {list(buckets)}")
        return buckets


class _Defaults(_Spec):
    match_type: Literal["glob", "regex"] = "glob"
    glob_disable_ordering: Literal[False] = False
    observer_type: Literal["histogram"]
    histogram_options: _HistogramOptions = _HistogramOptions()


class _Rule(_Spec):
    match: str = Field(min_length=1)
    name: str = Field(min_length=1)
    labels: dict[str, str] = {}
    help: str | None = None
    action: Literal["map", "drop"] = "map"
    match_type: Literal["glob", "regex"] | None = None
    observer_type: Literal["histogram"] = "histogram"
    histogram_options: _HistogramOptions = _HistogramOptions()


class _File(_Spec):
    defaults: _Defaults
    mappings: list[_Rule] = []


def _explain(exc: ValidationError) -> str:
    """Pydantic's errors as one line: where (``mappings.3.scale``) and what."""
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "top level"
        what = (
            "not supported by statsd_bridge"
            if error["type"] == "extra_forbidden"
            else error["msg"].removeprefix("Value error, ")
        )
        hint = _HINTS.get(str(error["loc"][-1])) if error["loc"] else None
        problems.append(f"{where}: {what}" + (f" ({hint})" if hint else ""))
    return "; ".join(problems)


# ----------------------------------------------------------------------------- compiled rules


@dataclass(frozen=True)
class MappingRule:
    """One entry of ``mappings:``, with the defaults applied."""

    index: int
    match: str
    name: str
    labels: tuple[tuple[str, str], ...]
    action: Literal["map", "drop"]
    help: str | None
    buckets: tuple[float, ...]
    glob: tuple[str, ...] | None  # the components of a glob rule
    regex: re.Pattern[str] | None  # the pattern of a regex rule

    def describe(self) -> str:
        return f"mapping {self.index} ({self.match})"

    def apply(self, captures: Sequence[str]) -> MappingResult:
        """This rule's metric name and labels for a name that matched with ``captures``."""

        def expand(template: str) -> str:
            return _REFERENCE.sub(lambda ref: captures[int(ref[1]) - 1], template)

        return MappingResult(self, expand(self.name), {k: expand(v) for k, v in self.labels})


@dataclass(frozen=True)
class MappingResult:
    """What a rule makes of one StatsD name: the rule, the metric name and the labels."""

    mapping: MappingRule
    name: str  # substituted, not yet escaped
    labels: Mapping[str, str]


Pattern = tuple[tuple[str, ...], None] | tuple[None, re.Pattern[str]]


def _pattern(spec: _Rule, match_type: str, where: str) -> Pattern:
    """(the glob's components, None) or (None, the compiled regex)."""
    if match_type == "regex":
        try:
            return None, re.compile(spec.match)
        except re.error as exc:
            raise MappingError(f"{where}: invalid regular expression: {exc}") from exc
    if not _GLOB_LINE.fullmatch(spec.match):
        raise MappingError(f"{where}: invalid glob (dot-separated names or *, 2 or more)")
    return tuple(spec.match.split(".")), None


def _check_templates(spec: _Rule, captures: int, where: str) -> None:
    """Valid metric and label names; every ``$n`` names one of the ``captures``."""
    if not _METRIC_NAME.fullmatch(spec.name):
        raise MappingError(f"{where}: metric name {spec.name!r} is not a valid Prometheus name")
    for key in spec.labels:
        if not _LABEL_NAME.fullmatch(key):
            raise MappingError(f"{where}: invalid label name {key!r}")
    labels = ((f"labels.{key}", value) for key, value in spec.labels.items())
    for key, template in (("name", spec.name), *labels):
        for ref in _REFERENCE.findall(template):
            if not (ref.isdigit() and 1 <= int(ref) <= captures):
                raise MappingError(
                    f"{where}: {key} {template!r} refers to ${ref}, but the match has "
                    f"{captures} capture(s) ($1 to $n, or ${{n}} when a letter or digit follows)"
                )


def _compile(index: int, spec: _Rule, defaults: _Defaults) -> MappingRule:
    where = f"mappings.{index} (match {spec.match!r})"
    match_type = spec.match_type or defaults.match_type
    glob, regex = _pattern(spec, match_type, where)
    _check_templates(spec, regex.groups if regex else (glob or ()).count("*"), where)
    return MappingRule(
        index=index,
        match=spec.match,
        name=spec.name,
        labels=tuple(spec.labels.items()),
        action=spec.action,
        help=spec.help,
        buckets=spec.histogram_options.buckets
        or defaults.histogram_options.buckets
        or DEFAULT_BUCKETS,
        glob=glob,
        regex=regex,
    )


# --------------------------------------------------------------------------------------- mapper


class MetricMapper:
    """The rules of one mapping file; :meth:`lookup` applies them to a StatsD name."""

    def __init__(self, mappings: Sequence[MappingRule], buckets: Sequence[float]) -> None:
        self.mappings = tuple(mappings)
        self.buckets = tuple(buckets)  # for timers no rule maps
        self._globs: dict[int, list[MappingRule]] = {}
        for rule in self.mappings:
            if rule.glob is not None:
                self._globs.setdefault(len(rule.glob), []).append(rule)
        self._regexes = [rule for rule in self.mappings if rule.regex is not None]
        self.warnings = self._shadowed_globs()

    @classmethod
    def unmapped(cls) -> MetricMapper:
        """No mapping file: every name exported as it is (escaped), timers as histograms."""
        return cls([], DEFAULT_BUCKETS)

    @classmethod
    def from_yaml(cls, text: str, source: str = "mapping config") -> MetricMapper:
        try:
            spec = _File.model_validate(yaml.safe_load(text))
            rules = [_compile(i, rule, spec.defaults) for i, rule in enumerate(spec.mappings)]
        except yaml.YAMLError as exc:
            raise MappingError(f"{source}: not valid YAML: {exc}") from exc
        except ValidationError as exc:
            raise MappingError(f"{source}: {_explain(exc)}") from exc
        except MappingError as exc:
            raise MappingError(f"{source}: {exc}") from exc
        buckets = spec.defaults.histogram_options.buckets or DEFAULT_BUCKETS
        return cls(rules, buckets)

    @classmethod
    def from_file(cls, path: str | Path) -> MetricMapper:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise MappingError(f"mapping config {path} does not exist") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise MappingError(f"mapping config {path} cannot be read: {exc}") from exc
        return cls.from_yaml(text, source=f"mapping config {path}")

    def _shadowed_globs(self) -> list[str]:
        """Warnings for glob rules that an earlier glob rule always wins over."""
        warnings = []
        for rules in self._globs.values():
            for j, later in enumerate(rules):
                for earlier in rules[:j]:
                    assert earlier.glob is not None and later.glob is not None
                    if all(e in ("*", p) for e, p in zip(earlier.glob, later.glob, strict=True)):
                        warnings.append(
                            f"{later.describe()} will never be matched: {earlier.describe()} "
                            "comes first and matches every name it matches"
                        )
                        break
        return warnings

    def lookup(self, name: str) -> MappingResult | None:
        """The first rule that matches StatsD metric ``name`` applied to it, or None."""
        parts = name.split(".")
        for rule in self._globs.get(len(parts), ()):
            assert rule.glob is not None
            if all(g in ("*", p) for g, p in zip(rule.glob, parts, strict=True)):
                return rule.apply([p for g, p in zip(rule.glob, parts, strict=True) if g == "*"])
        for rule in self._regexes:
            assert rule.regex is not None
            found = rule.regex.search(name)
            if found is not None:
                return rule.apply([group or "" for group in found.groups()])
        return None
