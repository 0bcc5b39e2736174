"""Checks the Kubernetes manifests (deploy/k8s) with no cluster: `make k8s-check`.

    python -m mlops_platform.cicd.k8s_check [--overlay dev ...] [--sync]

For every overlay (deploy/k8s/overlays/<env>): `kubectl kustomize` renders it; every object is
validated against the Kubernetes OpenAPI schemas in strict mode (unknown fields fail), with the
schemas that the `kubernetes-validate` package ships, for each of KUBERNETES_VERSIONS; then the
policy below applies. Airflow's worker pod template, which lives as a file inside a ConfigMap, is
checked as the Pod it becomes. Every failure names the overlay, the object (Kind/name) and the
rule, e.g. `prod: Deployment/serving: [probes] container serving has no readinessProbe`.

Policy rules:

- ``image-tag``: every image is pinned: a tag other than `latest`, or a digest.
- ``resources``: every container (init containers too) requests and limits cpu and memory.
- ``probes``: every container of a long-running workload (Deployment, StatefulSet, DaemonSet;
  native sidecars included) has a readinessProbe and a livenessProbe.
- ``non-root``: every pod runs as non-root (`runAsNonRoot: true`), no container escalates
  privileges.
- ``read-only-root``: every container's root file system is read-only, unless the pod states why
  it cannot be in the annotation `mlops.io/writable-root-fs`.
- ``inline-secret``: no Secret object is rendered from the repository (secretGenerator
  included); no env `value:` of a secret-looking name (*_PASSWORD, *_SECRET, *_KEY, *_TOKEN,
  *_CREDENTIALS), no ConfigMap key of such a name with a value, no URL with a literal password
  (`$(VAR)` references to secretKeyRef variables are the way).
- ``secret-documented``: every Secret a manifest refers to (secretKeyRef with its key,
  envFrom.secretRef, secret volumes, imagePullSecrets) is listed in the secrets table of
  deploy/k8s/README.md, which says how to create it.
- ``references``: every ConfigMap, PersistentVolumeClaim and ServiceAccount a pod refers to is
  rendered in the overlay under that exact name (a pod kept as a file, which kustomize does not
  rewrite, must not name a ConfigMap whose name gets a hash suffix).
- ``worker-image``: Airflow's task pods run the scheduler's image (airflow-env's
  WORKER_CONTAINER_REPOSITORY:WORKER_CONTAINER_TAG equals the airflow-scheduler image).
- ``synced-files``: the configuration copied under deploy/k8s/base/files equals its source under
  platform/ (kustomize reads no file outside its root); `--sync` rewrites the copies.
"""

from __future__ import annotations

import argparse
import functools
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import referencing
import yaml
from kubernetes_validate import utils as kv_utils

REPO_ROOT = Path(__file__).resolve().parents[4]
K8S_DIR = REPO_ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "staging", "prod")

#: The schemas every object is validated against: 1.32, the oldest release these manifests
#: target (the kubectl/kustomize client on the development machines is 1.32; native sidecar
#: containers, used for git-sync, are on by default since 1.29), and 1.37, the newest the pinned
#: kubernetes-validate ships, which catches an API that a later release removed.
KUBERNETES_VERSIONS = ("1.32", "1.37")

#: deploy/k8s/base/files/<copy> -> its source in the repository
SYNCED_FILES: Mapping[str, str] = {
    "base/files/prometheus-rules/monitoring.yml": "platform/prometheus/rules/monitoring.yml",
    "base/files/prometheus-rules/platform.yml": "platform/prometheus/rules/platform.yml",
    "base/files/prometheus-rules/serving.yml": "platform/prometheus/rules/serving.yml",
    "base/files/alertmanager.yml": "platform/alertmanager/alertmanager.yml",
    "base/files/statsd_mapping.yml": "platform/prometheus/statsd_mapping.yml",
}

WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"}
LONG_RUNNING = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"}
WRITABLE_ROOT_ANNOTATION = "mlops.io/writable-root-fs"
POD_TEMPLATE_KEY = re.compile(r"(^|[_-])pod[_-]template\.ya?ml$")
SECRET_NAME = re.compile(r"(^|_)(PASSWORD|PASSWD|SECRET|KEY|TOKEN|CREDENTIALS)$")
ONLY_REFERENCES = re.compile(r"^(\$\([A-Za-z_][A-Za-z0-9_]*\))+$")
URL_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/:@\s]+:(?P<password>[^@\s]*)@")
SECRETS_HEADING = "## Secrets"
SECRET_ROW = re.compile(r"^\|\s*`(?P<name>[a-z0-9][a-z0-9.-]*)`\s*\|(?P<keys>[^|]*)\|")


_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class K8sCheckError(RuntimeError):
    """The check could not run (kubectl missing, an overlay that does not render...)."""


@dataclass(frozen=True)
class Finding:
    """One broken rule: where (overlay, Kind/name) and what."""

    overlay: str
    obj: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.overlay}: {self.obj}: [{self.rule}] {self.message}"


# --- rendering -------------------------------------------------------------------------------


def kubectl_binary() -> str:
    found = shutil.which("kubectl")
    if not found:
        raise K8sCheckError(
            "kubectl not found on PATH: it renders the overlays (`kubectl kustomize`); install "
            "the Kubernetes client (kustomize is built in)"
        )
    return found


def render(overlay_dir: Path, kubectl: str) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize <overlay_dir>` renders."""
    result = subprocess.run(
        [kubectl, "kustomize", str(overlay_dir)], capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        raise K8sCheckError(f"kubectl kustomize {overlay_dir} failed: {result.stderr.strip()}")
    return [doc for doc in yaml.load_all(result.stdout, Loader=_YAML_LOADER) if doc]


def object_id(obj: Mapping[str, Any]) -> str:
    return f"{obj.get('kind', '?')}/{obj.get('metadata', {}).get('name', '?')}"


def embedded_pods(obj: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Pods kept as files in a ConfigMap (Airflow's pod_template_file), with a name that says
    where they live."""
    if obj.get("kind") != "ConfigMap":
        return
    for key, text in (obj.get("data") or {}).items():
        if POD_TEMPLATE_KEY.search(key):
            pod = yaml.safe_load(text)
            if isinstance(pod, dict):
                yield f"{object_id(pod)} (file {key} of {object_id(obj)})", pod


# --- schemas ---------------------------------------------------------------------------------


def _schema_dir(version: str) -> str:
    known = [v for v in kv_utils.all_versions() if kv_utils.major_minor(v) == version]
    if not known:
        raise K8sCheckError(
            f"kubernetes-validate {kv_utils.__version__} has no schemas for Kubernetes {version}"
        )
    return f"v{known[-1]}-local-strict"


@functools.cache
def _definitions(version: str) -> referencing.Registry[Any]:
    contents = kv_utils.schema_contents(
        f"kubernetes-json-schema/{_schema_dir(version)}/_definitions.json", version
    )
    resource: referencing.Resource[Any] = referencing.Resource.from_contents(contents)
    return resource @ referencing.Registry()


@functools.cache
def _validator(version: str, kind: str, api_version: str) -> jsonschema.protocols.Validator | None:
    """A strict validator for one kind, built once (kubernetes-validate's own `validate` reads
    and parses the 1.3 MB definitions file for every object)."""
    group = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = kv_utils.schema_contents(
            f"kubernetes-json-schema/{_schema_dir(version)}/{kind.lower()}-{group}.json", version
        )
    except FileNotFoundError:
        return None
    registry = referencing.Resource.from_contents(schema) @ _definitions(version)
    validator: jsonschema.protocols.Validator = jsonschema.Draft202012Validator(
        schema, registry=registry
    )
    return validator


def schema_errors(obj: Mapping[str, Any], version: str) -> list[str]:
    """What the Kubernetes `version` schema (strict) says about `obj`; [] when it is valid."""
    kind, api_version = str(obj.get("kind", "")), str(obj.get("apiVersion", ""))
    validator = _validator(version, kind, api_version)
    if validator is None:
        return [f"no schema for {kind} {api_version} in Kubernetes {version}"]
    errors = sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.path)))
    return [f"{'.'.join(map(str, e.path)) or '(root)'}: {e.message}" for e in errors[:5]]


# --- pods and containers ---------------------------------------------------------------------


def pod_spec(obj: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(pod metadata, pod spec) of a workload or a Pod; None for other kinds."""
    kind = obj.get("kind")
    if kind not in WORKLOADS:
        return None
    if kind == "Pod":
        return obj.get("metadata") or {}, obj.get("spec") or {}
    spec = obj.get("spec") or {}
    if kind == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    template = spec.get("template") or {}
    return template.get("metadata") or {}, template.get("spec") or {}


def containers(spec: Mapping[str, Any]) -> Iterator[tuple[dict[str, Any], bool]]:
    """(container, long-running?) for init containers, then containers. A native sidecar (an
    init container with restartPolicy Always) runs as long as the pod."""
    for container in spec.get("initContainers") or []:
        yield container, container.get("restartPolicy") == "Always"
    for container in spec.get("containers") or []:
        yield container, True


def image_problem(image: str) -> str | None:
    if "@sha256:" in image:
        return None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"image {image} has no tag (pin a version)"
    if last.rsplit(":", 1)[1] == "latest":
        return f"image {image} uses the tag latest (pin a version)"
    return None


def resource_problems(container: Mapping[str, Any]) -> list[str]:
    resources = container.get("resources") or {}
    name = container.get("name", "?")
    problems = []
    for section in ("requests", "limits"):
        values = resources.get(section) or {}
        missing = [r for r in ("cpu", "memory") if r not in values]
        if missing:
            problems.append(f"container {name} has no {section} for {', '.join(missing)}")
    return problems


def probe_problems(container: Mapping[str, Any]) -> list[str]:
    name = container.get("name", "?")
    return [
        f"container {name} has no {probe}"
        for probe in ("readinessProbe", "livenessProbe")
        if not container.get(probe)
    ]


def security_problems(
    metadata: Mapping[str, Any], spec: Mapping[str, Any]
) -> list[tuple[str, str]]:
    """(rule, message) for non-root, privilege escalation and the read-only root file system."""
    problems: list[tuple[str, str]] = []
    pod_context = spec.get("securityContext") or {}
    annotations = metadata.get("annotations") or {}
    writable_reason = str(annotations.get(WRITABLE_ROOT_ANNOTATION, "")).strip()
    for container, _ in containers(spec):
        context = container.get("securityContext") or {}
        name = container.get("name", "?")
        if not context.get("runAsNonRoot", pod_context.get("runAsNonRoot", False)):
            problems.append(("non-root", f"container {name} may run as root (runAsNonRoot)"))
        if context.get("allowPrivilegeEscalation", True):
            problems.append(
                ("non-root", f"container {name} may escalate privileges (allowPrivilegeEscalation)")
            )
        if not context.get("readOnlyRootFilesystem") and not writable_reason:
            problems.append(
                (
                    "read-only-root",
                    f"container {name} has a writable root file system and the pod states no "
                    f"reason ({WRITABLE_ROOT_ANNOTATION})",
                )
            )
    return problems


def workload_problems(obj: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(rule, message) of the image, resources, probes and security rules for one workload."""
    found = pod_spec(obj)
    if found is None:
        return []
    metadata, spec = found
    problems: list[tuple[str, str]] = []
    for container, long_running in containers(spec):
        if problem := image_problem(str(container.get("image", ""))):
            problems.append(("image-tag", problem))
        problems += [("resources", p) for p in resource_problems(container)]
        if long_running and obj.get("kind") in LONG_RUNNING:
            problems += [("probes", p) for p in probe_problems(container)]
    return problems + security_problems(metadata, spec)


# --- secrets ---------------------------------------------------------------------------------


def value_leaks_secret(name: str, value: str) -> str | None:
    """Why an env or ConfigMap value inlines a secret, or None."""
    if SECRET_NAME.search(name.upper()) and value and not ONLY_REFERENCES.match(value):
        return f"{name} has a literal value (use a secretKeyRef)"
    match = URL_PASSWORD.search(value)
    if match and not ONLY_REFERENCES.match(match["password"]):
        return f"{name} holds a URL with a literal password (use $(VAR) of a secretKeyRef)"
    return None


def inline_secret_problems(obj: Mapping[str, Any]) -> list[str]:
    kind = obj.get("kind")
    if kind == "Secret":
        return ["a Secret is rendered from the repository: create it in the cluster (README.md)"]
    if kind == "ConfigMap":
        return [
            f"ConfigMap key {problem}"
            for key, value in (obj.get("data") or {}).items()
            if (problem := value_leaks_secret(str(key), str(value)))
        ]
    found = pod_spec(obj)
    if found is None:
        return []
    problems = []
    for container, _ in containers(found[1]):
        for env in container.get("env") or []:
            if "value" in env and (
                problem := value_leaks_secret(str(env.get("name", "")), str(env["value"]))
            ):
                problems.append(f"container {container.get('name', '?')}: env {problem}")
    return problems


def secret_references(obj: Mapping[str, Any]) -> Iterator[tuple[str, str | None]]:
    """(Secret name, key or None) of every reference an object makes."""
    if obj.get("kind") == "ServiceAccount":
        for ref in obj.get("imagePullSecrets") or []:
            yield ref.get("name", ""), None
    found = pod_spec(obj)
    if found is None:
        return
    spec = found[1]
    for ref in spec.get("imagePullSecrets") or []:
        yield ref.get("name", ""), None
    for volume in spec.get("volumes") or []:
        if "secret" in volume:
            secret = volume["secret"]
            items = secret.get("items") or [{}]
            for item in items:
                yield secret.get("secretName", ""), item.get("key")
        for source in (volume.get("projected") or {}).get("sources") or []:
            if "secret" in source:
                yield source["secret"].get("name", ""), None
    for container, _ in containers(spec):
        for env_from in container.get("envFrom") or []:
            if "secretRef" in env_from:
                yield env_from["secretRef"].get("name", ""), None
        for env in container.get("env") or []:
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                yield ref.get("name", ""), ref.get("key")


def documented_secrets(readme: Path) -> dict[str, set[str]]:
    """Secret name -> its keys, from the table under `## Secrets` in deploy/k8s/README.md."""
    if not readme.is_file():
        raise K8sCheckError(f"no {readme}: it lists the Secrets the manifests refer to")
    secrets: dict[str, set[str]] = {}
    in_section = False
    for line in readme.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            in_section = line.strip() == SECRETS_HEADING
            continue
        match = SECRET_ROW.match(line) if in_section else None
        if match:
            secrets[match["name"]] = set(re.findall(r"`([^`]+)`", match["keys"]))
    if not secrets:
        raise K8sCheckError(f"{readme} has no secrets table under {SECRETS_HEADING!r}")
    return secrets


def undocumented_secret_problems(
    obj: Mapping[str, Any], documented: Mapping[str, set[str]]
) -> list[str]:
    problems = []
    for name, key in secret_references(obj):
        if name not in documented:
            problems.append(f"Secret {name!r} is not in deploy/k8s/README.md's secrets table")
        elif key is not None and key not in documented[name]:
            problems.append(
                f"key {key!r} of Secret {name!r} is not in deploy/k8s/README.md's secrets table"
            )
    return sorted(set(problems))


# --- across objects --------------------------------------------------------------------------


def pod_references(spec: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(kind, name) of the ConfigMaps, PersistentVolumeClaims and ServiceAccount a pod uses."""
    if spec.get("serviceAccountName"):
        yield "ServiceAccount", str(spec["serviceAccountName"])
    for volume in spec.get("volumes") or []:
        if "configMap" in volume:
            yield "ConfigMap", str(volume["configMap"].get("name", ""))
        if "persistentVolumeClaim" in volume:
            yield "PersistentVolumeClaim", str(volume["persistentVolumeClaim"].get("claimName", ""))
        for source in (volume.get("projected") or {}).get("sources") or []:
            if "configMap" in source:
                yield "ConfigMap", str(source["configMap"].get("name", ""))
    for container, _ in containers(spec):
        for env_from in container.get("envFrom") or []:
            if "configMapRef" in env_from:
                yield "ConfigMap", str(env_from["configMapRef"].get("name", ""))
        for env in container.get("env") or []:
            ref = (env.get("valueFrom") or {}).get("configMapKeyRef")
            if ref:
                yield "ConfigMap", str(ref.get("name", ""))


def reference_problems(obj: Mapping[str, Any], rendered: set[str], optional: set[str]) -> list[str]:
    """What a pod refers to that the overlay does not render (`optional` ones aside)."""
    found = pod_spec(obj)
    if found is None:
        return []
    missing = {
        f"{kind}/{name}"
        for kind, name in pod_references(found[1])
        if f"{kind}/{name}" not in rendered | optional
    }
    return [f"refers to {ident}, which this overlay does not render" for ident in sorted(missing)]


def worker_image_problems(objects: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(object id, message) when Airflow's task pods would not run the scheduler's image."""
    by_id = {object_id(o): o for o in objects}
    scheduler = by_id.get("Deployment/airflow-scheduler")
    settings = by_id.get("ConfigMap/airflow-env")
    if scheduler is None or settings is None:
        return []
    found = pod_spec(scheduler)
    spec = found[1] if found else {}
    images = [c.get("image") for c, _ in containers(spec) if c.get("name") == "scheduler"]
    data = settings.get("data") or {}
    worker = (
        f"{data.get('AIRFLOW__KUBERNETES_EXECUTOR__WORKER_CONTAINER_REPOSITORY')}:"
        f"{data.get('AIRFLOW__KUBERNETES_EXECUTOR__WORKER_CONTAINER_TAG')}"
    )
    if images and worker != images[0]:
        return [
            (
                object_id(settings),
                f"task pods would run {worker}, the scheduler runs {images[0]} (the overlay's "
                "replacements copy the scheduler's image)",
            )
        ]
    return []


def synced_file_problems(k8s_dir: Path, repo: Path) -> list[Finding]:
    findings = []
    for copy, source in SYNCED_FILES.items():
        copied, original = k8s_dir / copy, repo / source
        if not copied.is_file() or copied.read_bytes() != original.read_bytes():
            findings.append(
                Finding(
                    "base",
                    copy,
                    "synced-files",
                    f"differs from {source}: run python -m mlops_platform.cicd.k8s_check --sync",
                )
            )
    return findings


def sync_files(k8s_dir: Path, repo: Path) -> list[str]:
    """Rewrite the copies that differ from their sources; the ones written."""
    written = []
    for copy, source in SYNCED_FILES.items():
        copied, original = k8s_dir / copy, repo / source
        if not copied.is_file() or copied.read_bytes() != original.read_bytes():
            copied.parent.mkdir(parents=True, exist_ok=True)
            copied.write_bytes(original.read_bytes())
            written.append(copy)
    return written


# --- the check -------------------------------------------------------------------------------


def object_findings(
    overlay: str,
    ident: str,
    obj: Mapping[str, Any],
    documented: Mapping[str, set[str]],
    versions: Sequence[str],
) -> list[Finding]:
    findings = [
        Finding(overlay, ident, f"schema-{version}", error)
        for version in versions
        for error in schema_errors(obj, version)
    ]
    findings += [Finding(overlay, ident, rule, msg) for rule, msg in workload_problems(obj)]
    findings += [Finding(overlay, ident, "inline-secret", m) for m in inline_secret_problems(obj)]
    findings += [
        Finding(overlay, ident, "secret-documented", m)
        for m in undocumented_secret_problems(obj, documented)
    ]
    return findings


def check_objects(
    overlay: str,
    objects: Sequence[Mapping[str, Any]],
    documented: Mapping[str, set[str]],
    versions: Sequence[str] = KUBERNETES_VERSIONS,
) -> list[Finding]:
    """Every rule on one overlay's rendered objects (and the pods embedded in them)."""
    findings: list[Finding] = []
    rendered = {object_id(o) for o in objects}
    optional = {"ServiceAccount/default"}  # every namespace has it
    for obj in objects:
        pods = [(object_id(obj), obj), *embedded_pods(obj)]
        for ident, item in pods:
            findings += object_findings(overlay, ident, item, documented, versions)
            findings += [
                Finding(overlay, ident, "references", message)
                for message in reference_problems(item, rendered, optional)
            ]
    findings += [
        Finding(overlay, ident, "worker-image", message)
        for ident, message in worker_image_problems(objects)
    ]
    return findings


@dataclass(frozen=True)
class OverlayReport:
    overlay: str
    objects: int
    findings: list[Finding]
    seconds: float


def check_overlay(
    k8s_dir: Path,
    overlay: str,
    documented: Mapping[str, set[str]],
    kubectl: str,
    versions: Sequence[str] = KUBERNETES_VERSIONS,
) -> OverlayReport:
    started = time.monotonic()
    objects = render(k8s_dir / "overlays" / overlay, kubectl)
    findings = check_objects(overlay, objects, documented, versions)
    return OverlayReport(overlay, len(objects), findings, time.monotonic() - started)


def check(
    k8s_dir: Path = K8S_DIR,
    overlays: Sequence[str] = OVERLAYS,
    repo: Path = REPO_ROOT,
    versions: Sequence[str] = KUBERNETES_VERSIONS,
) -> tuple[list[OverlayReport], list[Finding]]:
    """(a report per overlay, the synced-files findings)."""
    kubectl = kubectl_binary()
    documented = documented_secrets(k8s_dir / "README.md")
    reports = [check_overlay(k8s_dir, o, documented, kubectl, versions) for o in overlays]
    return reports, synced_file_problems(k8s_dir, repo)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mlops_platform.cicd.k8s_check", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--overlay", action="append", choices=OVERLAYS, help="default: all")
    parser.add_argument("--k8s-dir", type=Path, default=K8S_DIR)
    parser.add_argument(
        "--kubernetes-version", action="append", help=f"default: {', '.join(KUBERNETES_VERSIONS)}"
    )
    parser.add_argument("--sync", action="store_true", help="rewrite the copied config files")
    args = parser.parse_args(argv)
    if args.sync:
        for written in sync_files(args.k8s_dir, REPO_ROOT):
            print(f"synced {written}")
    versions = tuple(args.kubernetes_version or KUBERNETES_VERSIONS)
    try:
        reports, synced = check(args.k8s_dir, tuple(args.overlay or OVERLAYS), REPO_ROOT, versions)
    except K8sCheckError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    failures = [*synced, *(f for r in reports for f in r.findings)]
    for report in reports:
        state = "ok" if not report.findings else f"{len(report.findings)} problem(s)"
        print(
            f"{report.overlay}: {report.objects} objects, schemas {', '.join(versions)} (strict), "
            f"policy: {state} ({report.seconds:.1f} s)"
        )
    for finding in failures:
        print(f"FAIL {finding}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
