"""Tests of the StatsD-to-Prometheus bridge the local runtime runs in place of statsd_exporter.

Unit tests of the line parser and the mapper (against the real mapping file,
platform/prometheus/statsd_mapping.yml), of what the bridge refuses, and one integration test
that runs the bridge as a process on free loopback ports and sends it Airflow-shaped datagrams.
"""

from __future__ import annotations

import logging
import random
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from pf_airflow_samples import DROPPED, SAMPLES, Sample, airflow_registry
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from mlops_platform.observability.statsd.cli import main
from mlops_platform.observability.statsd.exporter import Bridge, escape_metric_name
from mlops_platform.observability.statsd.line import Event, LineError, parse_line
from mlops_platform.observability.statsd.mapping import MappingError, MetricMapper

REPO = Path(__file__).resolve().parents[2]
STATSD_MAPPING = REPO / "platform" / "prometheus" / "statsd_mapping.yml"
# every mapping file the bridge reads makes timers histograms
HISTOGRAMS = "defaults: {observer_type: histogram}\n"


@pytest.fixture(scope="module")
def mapper() -> MetricMapper:
    return MetricMapper.from_file(STATSD_MAPPING)


def bridge_for(config: str | None = None) -> Bridge:
    """A bridge on its own registry: the real mapping file, or `config` (YAML)."""
    if config is None:
        return Bridge(MetricMapper.from_file(STATSD_MAPPING))
    return Bridge(MetricMapper.from_yaml(config))


def value(bridge: Bridge, name: str, **labels: str) -> float | None:
    found: float | None = bridge.registry.get_sample_value(name, labels)
    return found


def exported_names(bridge: Bridge) -> set[str]:
    text = generate_latest(bridge.registry).decode()
    return {
        sample.name
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.name.startswith(("statsd_bridge_", "process_"))
    }


# ---------------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("line", "kind", "number", "relative", "repeat"),
    [
        ("a.b:3|c", "counter", 3, False, 1),
        ("a.b:1|c|@0.1", "counter", 10, False, 1),  # sampled: value / rate
        ("a.b:2|c|@0", "counter", 2, False, 1),  # @0 means unsampled, as upstream
        ("a.b:42|g", "gauge", 42, False, 1),
        ("a.b:-3|g", "gauge", -3, True, 1),  # signed gauges are relative updates
        ("a.b:+2.5|g", "gauge", 2.5, True, 1),
        ("a.b:1|g|@0.5", "gauge", 1, False, 1),  # rate ignored on gauges
        ("a.b:1500|ms", "observer", 1.5, False, 1),  # timers: milliseconds -> seconds
        ("a.b:1e3|ms", "observer", 1.0, False, 1),
        ("a.b:100|ms|@0.25", "observer", 0.1, False, 4),  # sampled timer: observed 1/rate times
        ("a.b:100|ms|@1e-9", "observer", 0.1, False, 1000),  # at most 1000 times
    ],
)
def test_parse_sample_types(
    line: str, kind: str, number: float, relative: bool, repeat: int
) -> None:
    assert parse_line(line) == Event("a.b", kind, number, relative, repeat)  # type: ignore[arg-type]


def test_tags_in_a_name_are_not_parsed() -> None:
    """Plain StatsD has no tags: an InfluxDB- or Librato-style name is just a name."""
    assert parse_line("a.b,env=prod:1|c").name == "a.b,env=prod"
    assert parse_line("a.b#env=prod:1|c").name == "a.b#env=prod"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("no_colon_here", "malformed_line"),
        (":1|c", "malformed_line"),
        ("a.b:1", "not_enough_parts_after_colon"),
        ("a.b:one|c", "malformed_value"),
        ("a.b: 1|c", "malformed_value"),
        ("a.b:1:2:3000|ms", "malformed_value"),  # DogStatsD extended aggregation
        ("a.b:1|s", "illegal_event"),  # sets are not supported (neither upstream)
        ("a.b:1|h", "illegal_event"),  # histograms and distributions: not Airflow's
        ("a.b:1|d", "illegal_event"),
        ("a.b:1|c:2|c", "illegal_event"),  # multi-value lines
        ("a.b:1|zz", "illegal_event"),
        ("a.b:1|", "illegal_event"),
        ("a.b:1|c|@x", "invalid_sample_factor"),
        ("a.b:1|c|@-1", "invalid_sample_factor"),
        ("a.b:1|c|@nan", "invalid_sample_factor"),
        ("a.b:1|c|x", "invalid_sample_factor"),
        ("a.b:1|c||", "invalid_sample_factor"),
        ("a.b:1|c|@0.5|@0.5", "invalid_sample_factor"),
        ("a.b:1|c|#env:prod", "invalid_sample_factor"),  # DogStatsD tags
        ("a.b:1|c|c:abc", "invalid_sample_factor"),  # DogStatsD container id
        ("a.b:1|c|T1656581400", "invalid_sample_factor"),  # DogStatsD timestamp
    ],
)
def test_malformed_lines_are_rejected_with_a_reason(line: str, reason: str) -> None:
    with pytest.raises(LineError) as excinfo:
        parse_line(line)
    assert excinfo.value.reason == reason


@pytest.mark.parametrize(
    ("name", "escaped"),
    [
        ("airflow.ti.finish", "airflow_ti_finish"),
        ("dependency-check", "dependency_check"),
        ("a--b", "a_b"),  # a run of dashes is one underscore, as upstream
        ("1st.metric", "_1st_metric"),
        ("caf\u00e9:x", "caf__x"),
        ("", ""),
    ],
)
def test_escape_metric_name_like_upstream(name: str, escaped: str) -> None:
    assert escape_metric_name(name) == escaped


# ----------------------------------------------------------------------------- the real mapping

# One StatsD name per Airflow metric family (as Airflow 3 sends the legacy names, prefix airflow),
# and the metric and labels the mapping file documents for it.
REGISTRY = airflow_registry()
AIRFLOW = [(sample.statsd_name(REGISTRY), sample) for sample in SAMPLES]


def test_real_mapping_file_loads_without_warnings(mapper: MetricMapper) -> None:
    assert mapper.warnings == []
    assert mapper.buckets == (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
    assert mapper.mappings[-1].action == "drop"


@pytest.mark.parametrize(("statsd_name", "sample"), AIRFLOW, ids=[a[0] for a in AIRFLOW])
def test_airflow_metric_maps_to_the_documented_name_and_labels(
    mapper: MetricMapper, statsd_name: str, sample: Sample
) -> None:
    name, labels = sample.expected_name, sample.expected_labels
    result = mapper.lookup(statsd_name)
    assert result is not None and result.mapping.action == "map", statsd_name
    assert (result.name, dict(result.labels)) == (name, labels)
    # and the bridge exports it as the type Airflow sends it as
    bridge = Bridge(mapper)
    bridge.handle_line(f"{statsd_name}:2000|{sample.statsd_type}")
    exported = {"c": (name, 2000), "g": (name, 2000), "ms": (f"{name}_sum", 2)}
    series, number = exported[sample.statsd_type]
    assert value(bridge, series, **labels) == number


def test_every_mapping_is_reachable(mapper: MetricMapper) -> None:
    """A name built from each glob is mapped by that rule (no earlier rule shadows it)."""
    for m in mapper.mappings:
        if m.glob is None:
            continue
        name = ".".join(f"v{i}" if part == "*" else part for i, part in enumerate(m.glob))
        result = mapper.lookup(name)
        assert result is not None and result.mapping.index == m.index, m.match


@pytest.mark.parametrize("name", DROPPED)
def test_unmapped_airflow_names_are_dropped(mapper: MetricMapper, name: str) -> None:
    result = mapper.lookup(name)
    assert result is not None and result.mapping.action == "drop"
    bridge = Bridge(mapper)
    bridge.handle_packet(f"{name}:1|c\n{name}:5|g\n{name}:5|ms".encode())
    assert exported_names(bridge) == set()
    assert value(bridge, "statsd_bridge_events_actions_total", action="drop") == 3


def test_timers_are_exported_in_seconds_with_the_mappings_buckets() -> None:
    bridge = bridge_for()
    bridge.handle_packet(b"airflow.dag.training.train.duration:4000|ms")
    labels = {"dag_id": "training", "task_id": "train"}
    assert value(bridge, "airflow_task_duration_seconds_sum", **labels) == 4.0
    assert value(bridge, "airflow_task_duration_seconds_count", **labels) == 1
    # task buckets: 0.5, 1, 5, ... (not the defaults' 0.01, 0.05, ...)
    assert value(bridge, "airflow_task_duration_seconds_bucket", le="1.0", **labels) == 0
    assert value(bridge, "airflow_task_duration_seconds_bucket", le="5.0", **labels) == 1
    assert value(bridge, "airflow_task_duration_seconds_bucket", le="0.01", **labels) is None
    # a mapping without histogram_options gets the defaults' buckets
    bridge.handle_packet(b"airflow.scheduler.scheduler_loop_duration:50|ms")
    assert value(bridge, "airflow_scheduler_loop_duration_seconds_bucket", le="0.05") == 1
    assert value(bridge, "airflow_scheduler_loop_duration_seconds_bucket", le="0.01") == 0


def test_sampling_rate_scales_counters_and_repeats_timers() -> None:
    bridge = bridge_for()
    bridge.handle_packet(b"airflow.ti_failures:1|c|@0.25\nairflow.ti_failures:1|c")
    assert value(bridge, "airflow_ti_failures_total") == 5
    bridge.handle_packet(b"airflow.scheduler.critical_section_duration:5|ms|@0.5")
    assert value(bridge, "airflow_scheduler_critical_section_duration_seconds_count") == 2
    assert value(bridge, "airflow_scheduler_critical_section_duration_seconds_sum") == 0.01


def test_gauges_set_and_add() -> None:
    bridge = bridge_for()
    name = "airflow.executor.open_slots.LocalExecutor"
    bridge.handle_packet(f"{name}:10|g\n{name}:-3|g\n{name}:+1|g".encode())
    assert value(bridge, "airflow_executor_open_slots", executor="LocalExecutor") == 8
    bridge.handle_packet(f"{name}:4|g".encode())
    assert value(bridge, "airflow_executor_open_slots", executor="LocalExecutor") == 4


def test_malformed_lines_are_counted_and_do_not_stop_the_rest() -> None:
    bridge = bridge_for()
    bridge.handle_packet(
        b"garbage\nairflow.ti_failures:1|c\nairflow.ti_failures:x|c\n\xff\xfe:1|c\r\n\n"
    )
    bridge.handle_line("airflow.ti_failures:-1|c")  # negative counters are refused
    assert value(bridge, "airflow_ti_failures_total") == 1
    assert value(bridge, "statsd_bridge_lines_total", outcome="malformed") == 3
    assert value(bridge, "statsd_bridge_lines_total", outcome="parsed") == 2
    assert value(bridge, "statsd_bridge_sample_errors_total", reason="malformed_line") == 2
    assert value(bridge, "statsd_bridge_sample_errors_total", reason="malformed_value") == 1
    assert value(bridge, "statsd_bridge_event_errors_total", reason="illegal_negative_counter") == 1
    assert value(bridge, "statsd_bridge_udp_packets_total") == 1


def test_random_input_never_breaks_the_bridge_or_its_exposition() -> None:
    """Seeded fuzzing: odd names, values, types, rates and bytes are counted, never raised."""
    rng = random.Random(20240601)
    parts = ["airflow", "ti", "finish", "a", "x_total", "y_bucket", "1st", "dag-1", "\u00e9", "",
             "*", "statsd_bridge_lines", "process_open_fds"]  # fmt: skip
    values = ["1", "-1", "+2", "1.5", "nan", "inf", "1e400", "x", ""]
    types = ["c", "g", "ms", "h", "s", ""]
    extras = ["@0.5", "@0", "@1e-300", "@x", "#env:prod", "c:abc", "T123", ""]
    bridges = [bridge_for(), bridge_for(HISTOGRAMS + "mappings: []")]
    for _ in range(3000):
        name = ".".join(rng.choice(parts) for _ in range(rng.randint(1, 6)))
        name += rng.choice(["", "", "", ",env=prod", "[le=3]", "#k=v"])
        sample = f"{rng.choice(values)}|{rng.choice(types)}"
        sample += "".join("|" + rng.choice(extras) for _ in range(rng.randint(0, 2)))
        data = f"{name}:{sample}".encode()
        if rng.random() < 0.05:
            data = bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))
        for bridge in bridges:
            bridge.handle_packet(data)
    for bridge in bridges:
        assert value(bridge, "statsd_bridge_sample_errors_total", reason="internal_error") is None
        text = generate_latest(bridge.registry).decode()
        names = [family.name for family in text_string_to_metric_families(text)]
        assert len(names) == len(set(names)), "a metric family is exported twice"
    assert value(bridges[1], "statsd_bridge_events_conflict_total", type="observer")


def test_no_created_series_are_exported() -> None:
    bridge = bridge_for()
    bridge.handle_packet(b"airflow.ti_failures:1|c\nairflow.dag.d.t.duration:1|ms")
    assert exported_names(bridge) == {
        "airflow_ti_failures_total",
        *(f"airflow_task_duration_seconds_{s}" for s in ("bucket", "count", "sum")),
    }


# ------------------------------------------------------------------------- mapping semantics


def test_unmatched_names_are_escaped_and_counters_get_total() -> None:
    bridge = bridge_for(HISTOGRAMS + "mappings: []")
    bridge.handle_packet(b"my.app-requests:2|c\nmy.queue.size:7|g\nmy.req.time:250|ms")
    assert value(bridge, "my_app_requests_total") == 2
    assert value(bridge, "my_queue_size") == 7
    # timers are histograms with the default buckets
    assert value(bridge, "my_req_time_sum") == 0.25
    assert value(bridge, "my_req_time_bucket", le="0.25") == 1
    assert value(bridge, "my_req_time_bucket", le="0.1") == 0
    assert value(bridge, "statsd_bridge_events_unmapped_total") == 3


def test_without_a_mapping_file_every_name_is_exported_unmapped() -> None:
    bridge = Bridge(MetricMapper.unmapped())
    bridge.handle_packet(b"airflow.ti.finish:1|c\nairflow.job.time:30|ms")
    assert value(bridge, "airflow_ti_finish_total") == 1
    assert value(bridge, "airflow_job_time_bucket", le="0.05") == 1


def test_first_matching_glob_wins_and_globs_come_before_regexes() -> None:
    mapper = MetricMapper.from_yaml(
        HISTOGRAMS
        + """
mappings:
  - match: .
    match_type: regex
    name: regex_catch_all
  - match: app.*.requests
    name: first
    labels: {svc: "$1"}
  - match: app.web.*
    name: second
    labels: {what: "${1}"}
  - match: app.web.requests
    name: never
"""
    )
    assert [w for w in mapper.warnings if "will never be matched" in w] == [
        "mapping 3 (app.web.requests) will never be matched: mapping 1 (app.*.requests) "
        "comes first and matches every name it matches"
    ]
    result = mapper.lookup("app.web.requests")
    assert result and (result.name, dict(result.labels)) == ("first", {"svc": "web"})
    result = mapper.lookup("app.web.errors")
    assert result and (result.name, dict(result.labels)) == ("second", {"what": "errors"})
    result = mapper.lookup("app.web.errors.extra")
    assert result and result.name == "regex_catch_all"


def test_regex_rules_are_searched_in_file_order_with_numbered_substitution() -> None:
    mapper = MetricMapper.from_yaml(
        HISTOGRAMS
        + r"""
mappings:
  - match: svc\.([a-z]+)\.(\w+)(\.x)?$
    match_type: regex
    name: svc_${2}_total
    labels: {service: "$1", both: "$1-$2", optional: "$3", fixed: "7"}
  - match: svc
    match_type: regex
    name: later
"""
    )
    result = mapper.lookup("my.svc.api.calls")  # unanchored, as upstream
    assert result is not None
    assert result.name == "svc_calls_total"
    assert dict(result.labels) == {
        "service": "api",
        "both": "api-calls",
        "optional": "",
        "fixed": "7",
    }
    result = mapper.lookup("svc.API")
    assert result is not None and result.name == "later"
    assert mapper.lookup("other") is None


def test_conflicting_label_sets_and_types_are_dropped_and_counted() -> None:
    bridge = bridge_for(
        HISTOGRAMS
        + """
mappings:
  - {match: "a.*", name: shared, labels: {one: "$1"}}
  - {match: "b.*.*", name: shared, labels: {one: "$1", two: "$2"}}
"""
    )
    bridge.handle_packet(b"a.one:1|c\nb.one.two:1|c\na.one:2|g\nc.d:1|g\nc.d:1|c")
    assert value(bridge, "shared_total", one="one") == 1
    assert value(bridge, "shared_total", one="one", two="two") is None
    assert value(bridge, "c_d") == 1
    assert value(bridge, "c_d_total") is None
    assert value(bridge, "statsd_bridge_events_conflict_total", type="counter") == 2
    assert value(bridge, "statsd_bridge_events_conflict_total", type="gauge") == 1
    # the bridge's own metric names are not for StatsD clients either
    bridge.handle_line("statsd_bridge_udp_packets:1|g")
    assert value(bridge, "statsd_bridge_events_conflict_total", type="gauge") == 2


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ("mappings: [", "not valid YAML"),
        ("- just a list", "top level: Input should be a valid dictionary"),
        ("mappings: []", "defaults: Field required (the bridge needs at least observer_type"),
        (
            "defaults: {observer_type: summary}",
            "defaults.observer_type: Input should be 'histogram' (timers are histograms here",
        ),
        (HISTOGRAMS + "mappings: {match: a.b}", "mappings: Input should be a valid list"),
        (HISTOGRAMS + "mappings: [{match: a.b}]", "mappings.0.name: Field required"),
        (HISTOGRAMS + "mappings: [{match: 'a b.c', name: x}]", "invalid glob"),
        (HISTOGRAMS + "mappings: [{match: 'solo', name: x}]", "invalid glob"),
        (HISTOGRAMS + "mappings: [{match: '(', match_type: regex, name: x}]", "invalid regular"),
        (HISTOGRAMS + "mappings: [{match: a.b, name: 'bad-name'}]", "not a valid Prometheus"),
        (HISTOGRAMS + "mappings: [{match: a.b, name: x, labels: {bad-label: v}}]", "label name"),
        (
            HISTOGRAMS + "mappings: [{match: a.b, name: x, action: keep}]",
            "mappings.0.action: Input should be 'map' or 'drop'",
        ),
        (
            HISTOGRAMS + "mappings: [{match: a.b, name: x, match_type: fsm}]",
            "mappings.0.match_type: Input should be 'glob' or 'regex'",
        ),
        (HISTOGRAMS + "mappings: [{match: a.b, name: x, labels: {lab: [1]}}]", "labels.lab"),
        (
            HISTOGRAMS + "mappings: [{match: a.b, name: x, histogram_options: {buckets: [2, 1]}}]",
            "increasing",
        ),
    ],
)
def test_invalid_mapping_files_are_refused_naming_the_problem(config: str, problem: str) -> None:
    with pytest.raises(MappingError, match="^mapping config: .*" + re.escape(problem)):
        MetricMapper.from_yaml(config)


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ("defaults: {observer_type: histogram, glob_disable_ordering: true}",
         "defaults.glob_disable_ordering: Input should be False (globs are tried in file order"),
        ("defaults: {observer_type: histogram, timer_type: histogram}",
         "defaults.timer_type: not supported by statsd_bridge"),
        ("defaults: {observer_type: histogram, buckets: [1]}", "defaults.buckets: not supported"),
        ("defaults: {observer_type: histogram, summary_options: {}}",
         "defaults.summary_options: not supported"),
        ("defaults: {observer_type: histogram, ttl: 1m}", "defaults.ttl: not supported"),
        ("defaults: {observer_type: histogram, "
         "histogram_options: {native_histogram_bucket_factor: 1.1}}",
         "defaults.histogram_options.native_histogram_bucket_factor: not supported"),
        (HISTOGRAMS + "mappings: []\nextra: 1", "extra: not supported by statsd_bridge"),
        *(
            (HISTOGRAMS + f"mappings: [{{match: a.b, name: x, {entry}}}]",
             f"mappings.0.{key}: not supported by statsd_bridge")
            for key, entry in (
                ("scale", "scale: 0.001"),
                ("honor_labels", "honor_labels: true"),
                ("match_metric_type", "match_metric_type: gauge"),
                ("summary_options", "summary_options: {quantiles: []}"),
                ("quantiles", "quantiles: []"),
                ("buckets", "buckets: [1]"),
                ("timer_type", "timer_type: histogram"),
                ("ttl", "ttl: 1m"),
            )
        ),
        (HISTOGRAMS + "mappings: [{match: a.b, name: x, observer_type: summary}]",
         "mappings.0.observer_type: Input should be 'histogram'"),
        # a reference names a capture the rule has: $1 to $n (${n} when a letter follows)
        (HISTOGRAMS + "mappings: [{match: a.*, name: x, labels: {lab: $2}}]",
         "labels.lab '$2' refers to $2, but the match has 1 capture(s)"),
        (HISTOGRAMS + "mappings: [{match: a.*, name: x_$1x}]", "name 'x_$1x' refers to $1x"),
        (HISTOGRAMS + "mappings: [{match: a.*, name: x, labels: {lab: $$1}}]", "refers to $$1"),
        (HISTOGRAMS + r"mappings: [{match: '^a\.(?P<s>.+)$', match_type: regex, name: x, "
         "labels: {lab: $s}}]", "refers to $s, but the match has 1 capture(s)"),
    ],
)  # fmt: skip
def test_what_statsd_bridge_does_not_do_is_refused_at_load(config: str, problem: str) -> None:
    with pytest.raises(MappingError, match="^mapping config: .*" + re.escape(problem)):
        MetricMapper.from_yaml(config)


@pytest.fixture
def root_logging() -> Iterator[None]:
    """Undo main()'s logging setup (its handler writes to the captured stderr of one test)."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


@pytest.mark.usefixtures("root_logging")
def test_main_exits_non_zero_for_a_missing_or_invalid_mapping_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.yml"
    assert main([f"--statsd.mapping-config={missing}"]) == 1
    err = capsys.readouterr().err
    assert '"level": "error"' in err and f"mapping config {missing} does not exist" in err
    broken = tmp_path / "broken.yml"
    broken.write_text(HISTOGRAMS + "mappings: [{match: a.b, name: x, scale: 2}]\n")
    assert main([f"--statsd.mapping-config={broken}"]) == 1
    err = capsys.readouterr().err
    assert f"mapping config {broken}: mappings.0.scale: not supported by statsd_bridge" in err
    with pytest.raises(SystemExit) as excinfo:
        main(["--statsd.listen-udp=nonsense"])
    assert excinfo.value.code == 2
    assert "expected HOST:PORT" in capsys.readouterr().err
    with pytest.raises(SystemExit) as excinfo:
        main(["--statsd.listen-tcp=127.0.0.1:9125"])
    assert excinfo.value.code == 2
    assert "only listens on UDP" in capsys.readouterr().err


# ------------------------------------------------------------------------------- integration


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(url, timeout=2) as resp:
        text = resp.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.mark.integration
def test_bridge_process_maps_airflow_datagrams() -> None:
    http_port, udp_port = free_port(), free_port(socket.SOCK_DGRAM)
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "mlops_platform.observability.statsd_bridge",
            f"--web.listen-address=127.0.0.1:{http_port}",
            f"--statsd.listen-udp=127.0.0.1:{udp_port}",
            f"--statsd.mapping-config={STATSD_MAPPING}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{http_port}/metrics"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, proc.communicate(timeout=5)[1]
            try:
                scrape(url)
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "the bridge did not serve /metrics in 20s"
                time.sleep(0.1)

        datagrams = [
            # several lines per datagram, as a buffering StatsD client sends them
            b"airflow.ti.finish.training.train.failed:1|c\n"
            b"airflow.ti.finish.data_pipeline.grp__validate.success:1|c\n"
            b"airflow.dagrun.duration.failed.training:2500|ms\n",
            b"airflow.scheduler_heartbeat:1|c|@0.5",
            b"airflow.executor.open_slots.LocalExecutor:32|g\n"
            b"airflow.executor.open_slots.LocalExecutor:-4|g",
            b"airflow.ti.finish:1|c\nairflow.job_start:1|c",  # dropped
            b"this is not statsd\nairflow.ti_failures:oops|c",  # malformed
            b"airflow.ti_failures:1|c",
        ]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for datagram in datagrams:
                sock.sendto(datagram, ("127.0.0.1", udp_port))

        def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
            return name, frozenset(labels.items())

        expected = {
            key("airflow_ti_finish_total", dag_id="training", task_id="train", state="failed"): 1,
            key(
                "airflow_ti_finish_total",
                dag_id="data_pipeline",
                task_id="grp__validate",
                state="success",
            ): 1,
            key("airflow_dagrun_duration_seconds_sum", dag_id="training", state="failed"): 2.5,
            key("airflow_dagrun_duration_seconds_count", dag_id="training", state="failed"): 1,
            key(
                "airflow_dagrun_duration_seconds_bucket",
                dag_id="training",
                state="failed",
                le="5.0",
            ): 1,
            key("airflow_scheduler_heartbeat_total"): 2,
            key("airflow_executor_open_slots", executor="LocalExecutor"): 28,
            key("airflow_ti_failures_total"): 1,
            key("statsd_bridge_lines_total", outcome="malformed"): 2,
            key("statsd_bridge_events_actions_total", action="drop"): 2,
            key("statsd_bridge_udp_packets_total"): len(datagrams),
        }
        got: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            got = scrape(url)
            if all(got.get(k) == v for k, v in expected.items()):
                break
            time.sleep(0.1)
        assert {k: got.get(k) for k in expected} == expected
        # only what was mapped is exported: no dropped names, no _created series (not even
        # of the bridge's own metrics)
        assert not [name for name, _ in got if name.endswith("_created")]
        families = {re.sub(r"_(bucket|sum|count)$", "", name) for name, _ in got}
        assert {f for f in families if f.startswith("airflow")} == {
            "airflow_ti_finish_total",
            "airflow_dagrun_duration_seconds",
            "airflow_scheduler_heartbeat_total",
            "airflow_executor_open_slots",
            "airflow_ti_failures_total",
        }
    finally:
        # stop it by its pid, the way supervisord does
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            returncode = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
            raise
        err = proc.communicate(timeout=5)[1]
    assert returncode == 0, err
    assert '"level": "error"' not in err, err
    assert "received SIGTERM, stopping" in err, err
