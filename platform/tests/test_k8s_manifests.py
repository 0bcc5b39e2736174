"""deploy/k8s, checked with no cluster (mlops_platform.cicd.k8s_check): every overlay renders with
`kubectl kustomize`, validates against the Kubernetes schemas (strict) and passes the policy; the
shape the issue asks for (serving's HPA, PDB and rolling update, monitoring single-replica,
NetworkPolicies) holds; and a broken copy (written to tmp_path) fails with the object's name.

Needs `kubectl` (preinstalled on the development machines; the GitLab jobs install it with
deploy/k8s/ensure-kubectl.sh).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_platform.cicd import deploy, k8s_check
from mlops_platform.cicd.k8s_check import Finding

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
PROJECT_IMAGES = ("airflow", "mlflow", "serving", "stream", "monitoring")
ONE_VERSION = ("1.32",)


@pytest.fixture(scope="module")
def kubectl() -> str:
    return k8s_check.kubectl_binary()


@pytest.fixture(scope="module")
def rendered(kubectl: str) -> dict[str, list[dict[str, Any]]]:
    return {env: k8s_check.render(K8S / "overlays" / env, kubectl) for env in k8s_check.OVERLAYS}


def by_id(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {k8s_check.object_id(o): o for o in objects}


@pytest.fixture(scope="module")
def indexed(rendered: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Each overlay's objects by id (``Kind/name``)."""
    return {env: by_id(objects) for env, objects in rendered.items()}


# --- the committed manifests -------------------------------------------------------------------


def test_every_overlay_renders_validates_and_passes_the_policy() -> None:
    reports, synced = k8s_check.check()
    assert synced == []
    assert [r.overlay for r in reports] == ["dev", "staging", "prod"]
    for report in reports:
        assert report.objects > 60, report
        assert report.findings == [], "\n".join(map(str, report.findings))


def test_the_command_line_exits_zero_and_says_what_it_checked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert k8s_check.main(["--overlay", "dev", "--kubernetes-version", "1.32"]) == 0
    out = capsys.readouterr().out
    assert "dev:" in out and "schemas 1.32 (strict), policy: ok" in out


def test_overlays_set_namespace_registry_and_tags(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    for env, objects in rendered.items():
        assert {o["metadata"].get("namespace") for o in objects if o["kind"] != "Namespace"} == {
            f"mlops-{env}"
        }
        images = {
            c["image"]
            for o in objects
            if (found := k8s_check.pod_spec(o))
            for c, _ in k8s_check.containers(found[1])
        }
        for name in PROJECT_IMAGES:
            ours = [i for i in images if i.split(":")[0].endswith(f"/{name}")]
            assert ours, (env, name)
            assert all(i.startswith("registry.gitlab.example.com/") for i in ours), ours
        assert not any(i.startswith("mlops/") for i in images), images


def test_serving_scales_and_never_drops_below_the_ready_count(
    indexed: dict[str, dict[str, dict[str, Any]]],
) -> None:
    for env, objs in indexed.items():
        serving = objs["Deployment/serving"]
        assert serving["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
        assert "replicas" not in serving["spec"]  # the HPA owns the count
        [container] = serving["spec"]["template"]["spec"]["containers"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
        assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
        hpa = objs["HorizontalPodAutoscaler/serving"]["spec"]
        assert hpa["metrics"][0]["resource"]["name"] == "cpu"
        pdb = objs["PodDisruptionBudget/serving"]["spec"]
        expected = 2 if env == "prod" else 1
        assert pdb["minAvailable"] == expected, env
        assert hpa["minReplicas"] > pdb["minAvailable"], env  # a node can always drain


def test_monitoring_is_one_replica_on_its_own_volume(
    indexed: dict[str, dict[str, dict[str, Any]]],
) -> None:
    for objs in indexed.values():
        monitoring = objs["Deployment/monitoring"]["spec"]
        assert monitoring["replicas"] == 1
        assert monitoring["strategy"]["type"] == "Recreate"
        volumes = {v["name"]: v for v in monitoring["template"]["spec"]["volumes"]}
        claim = volumes["data"]["persistentVolumeClaim"]["claimName"]
        assert objs[f"PersistentVolumeClaim/{claim}"]["spec"]["accessModes"] == ["ReadWriteOnce"]
        assert "PodDisruptionBudget/monitoring" not in objs


def test_airflow_runs_the_kubernetes_executor_on_the_scheduler_image(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    for objects in rendered.values():
        objs = by_id(objects)
        settings = objs["ConfigMap/airflow-env"]["data"]
        assert settings["AIRFLOW__CORE__EXECUTOR"] == "KubernetesExecutor"
        for role in ("api-server", "scheduler", "dag-processor", "triggerer"):
            assert f"Deployment/airflow-{role}" in objs
        assert k8s_check.worker_image_problems(objects) == []
        pods = [pod for o in objects for _, pod in k8s_check.embedded_pods(o)]
        assert [p["spec"]["containers"][0]["name"] for p in pods] == ["base"]


def test_mlflow_uses_postgres_and_s3(indexed: dict[str, dict[str, dict[str, Any]]]) -> None:
    for env, objs in indexed.items():
        args = objs["Deployment/mlflow"]["spec"]["template"]["spec"]["containers"][0]["args"]
        assert "--artifacts-destination=$(MLFLOW_ARTIFACTS_DESTINATION)" in args
        artifacts = next(
            o["data"] for k, o in objs.items() if k.startswith("ConfigMap/mlflow-artifacts")
        )
        assert artifacts["MLFLOW_ARTIFACTS_DESTINATION"].startswith("s3://")
        assert ("Deployment/minio" in objs) == (env != "prod")
        if env == "prod":
            assert artifacts["MLFLOW_S3_ENDPOINT_URL"] != "http://minio:9000"


def pod_labels(objects: list[dict[str, Any]]) -> list[dict[str, str]]:
    labels = []
    for obj in objects:
        if found := k8s_check.pod_spec(obj):
            labels.append(found[0].get("labels") or {})
        labels += [pod["metadata"]["labels"] for _, pod in k8s_check.embedded_pods(obj)]
    return labels


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    return all(labels.get(e["key"]) in e["values"] for e in selector.get("matchExpressions") or [])


def test_network_policies_deny_by_default_and_select_real_pods(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    for env, objects in rendered.items():
        policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
        deny = by_id(objects)["NetworkPolicy/default-deny"]["spec"]
        assert deny == {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [],
            "egress": [],
        }
        labels = pod_labels(objects)
        for policy in policies:
            spec = policy["spec"]
            selectors = [spec["podSelector"]] + [
                peer["podSelector"]
                for rule in (spec.get("ingress") or []) + (spec.get("egress") or [])
                for peer in rule.get("from", []) + rule.get("to", [])
                if "podSelector" in peer and "namespaceSelector" not in peer
            ]
            for selector in selectors:
                matched = any(selects(selector, pod) for pod in labels)
                # prod has no MinIO: the base's mlflow → minio rule selects nothing there
                if env == "prod" and "minio" in str(selector):
                    continue
                assert matched, (env, policy["metadata"]["name"], selector)


def test_every_workload_is_scraped_by_annotation_with_a_job_name(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    objs = by_id(rendered["dev"])
    jobs = {}
    for ident, obj in objs.items():
        found = k8s_check.pod_spec(obj)
        annotations = (found[0].get("annotations") or {}) if found else {}
        if annotations.get("prometheus.io/scrape") == "true":
            jobs[ident] = annotations["mlops.io/job"]
    assert jobs == {
        "Deployment/mlflow": "mlflow",
        "Deployment/serving": "serving",
        "Deployment/monitoring": "monitoring",
        "Deployment/stream-producer": "stream",
        "Deployment/stream-consumer": "stream",
        "Deployment/traffic": "traffic",
        "Deployment/alertmanager": "alertmanager",
        "Deployment/statsd-exporter": "airflow",
    }


# --- broken copies fail, naming the object -------------------------------------------------------


@pytest.fixture
def broken(tmp_path: Path, kubectl: str) -> Callable[..., list[Finding]]:
    """broken(edit_file, edit, overlay) -> the findings for a copy of deploy/k8s where
    `edit(docs)` changed the YAML documents of `edit_file` (a path under deploy/k8s)."""
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy)
    documented = k8s_check.documented_secrets(copy / "README.md")

    def run(
        edit_file: str,
        edit: Callable[[list[dict[str, Any]]], None],
        overlay: str = "dev",
    ) -> list[Finding]:
        path = copy / edit_file
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        edit(docs)
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        report = k8s_check.check_overlay(copy, overlay, documented, kubectl, ONE_VERSION)
        return report.findings

    return run


def doc(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(d for d in docs if d.get("kind") == kind and d["metadata"]["name"] == name)


def container_of(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    first: dict[str, Any] = doc(docs, kind, name)["spec"]["template"]["spec"]["containers"][0]
    return first


def assert_named(findings: list[Finding], obj: str, rule: str, text: str = "") -> None:
    matching = [f for f in findings if f.obj == obj and f.rule == rule and text in f.message]
    assert matching, "\n".join(map(str, findings)) or "no finding"
    assert str(matching[0]).startswith(f"dev: {obj}: [{rule}]")


def test_a_missing_probe_fails_with_the_deployment_name(
    broken: Callable[..., list[Finding]],
) -> None:
    def edit(docs: list[dict[str, Any]]) -> None:
        del container_of(docs, "Deployment", "serving")["readinessProbe"]

    findings = broken("base/serving.yaml", edit)
    assert_named(
        findings, "Deployment/serving", "probes", "container serving has no readinessProbe"
    )
    assert len(findings) == 1


def test_a_missing_limit_fails_with_the_deployment_name(
    broken: Callable[..., list[Finding]],
) -> None:
    def edit(docs: list[dict[str, Any]]) -> None:
        del container_of(docs, "Deployment", "monitoring")["resources"]["limits"]

    findings = broken("base/monitoring.yaml", edit)
    assert_named(findings, "Deployment/monitoring", "resources", "no limits for cpu, memory")


def test_an_inlined_secret_fails_with_the_deployment_name(
    broken: Callable[..., list[Finding]],
) -> None:
    def edit(docs: list[dict[str, Any]]) -> None:
        for env in container_of(docs, "Deployment", "serving")["env"]:
            if env["name"] == "SERVING_API_KEY":
                env.pop("valueFrom")
                env["value"] = "s3cr3t-in-the-repo"
            if env["name"] == "MLOPS_DATABASE_URL":
                env["value"] = "postgresql://postgres:hunter2@postgres:5432"

    findings = broken("base/serving.yaml", edit)
    assert_named(findings, "Deployment/serving", "inline-secret", "SERVING_API_KEY")
    assert_named(findings, "Deployment/serving", "inline-secret", "URL with a literal password")


def test_a_secret_object_in_the_repo_fails(broken: Callable[..., list[Finding]]) -> None:
    def edit(docs: list[dict[str, Any]]) -> None:
        docs[0].setdefault("secretGenerator", []).append(
            {"name": "leaked", "literals": ["TOKEN=abc"]}
        )

    findings = broken("overlays/dev/kustomization.yaml", edit)
    [finding] = [f for f in findings if f.rule == "inline-secret"]
    assert finding.obj.startswith("Secret/leaked")


def test_a_latest_tag_fails_with_the_workload_name(broken: Callable[..., list[Finding]]) -> None:
    def edit(docs: list[dict[str, Any]]) -> None:
        for image in docs[0]["images"]:
            if image["name"] == "mlops/serving":
                image["newTag"] = "latest"

    findings = broken("overlays/dev/kustomization.yaml", edit)
    assert_named(findings, "Deployment/serving", "image-tag", "uses the tag latest")


def test_an_untagged_third_party_image_fails(broken: Callable[..., list[Finding]]) -> None:
    def edit(docs: list[dict[str, Any]]) -> None:
        container_of(docs, "StatefulSet", "redis")["image"] = "redis"

    findings = broken("base/redis.yaml", edit)
    assert_named(findings, "StatefulSet/redis", "image-tag", "image redis has no tag")


def test_an_undocumented_secret_fails(broken: Callable[..., list[Finding]]) -> None:
    def edit(docs: list[dict[str, Any]]) -> None:
        for env in container_of(docs, "Deployment", "mlflow")["env"]:
            if env["name"] == "AWS_SECRET_ACCESS_KEY":
                env["valueFrom"]["secretKeyRef"]["name"] = "mlops-aws"

    findings = broken("base/mlflow.yaml", edit)
    assert_named(findings, "Deployment/mlflow", "secret-documented", "Secret 'mlops-aws'")


def test_root_and_a_writable_root_fs_fail(broken: Callable[..., list[Finding]]) -> None:
    def edit(docs: list[dict[str, Any]]) -> None:
        producer = doc(docs, "Deployment", "stream-producer")["spec"]["template"]["spec"]
        producer["securityContext"]["runAsNonRoot"] = False
        producer["containers"][0]["securityContext"]["readOnlyRootFilesystem"] = False

    findings = broken("base/stream.yaml", edit)
    assert_named(findings, "Deployment/stream-producer", "non-root", "may run as root")
    assert_named(findings, "Deployment/stream-producer", "read-only-root", "states no reason")


def test_an_unknown_field_fails_the_strict_schema(broken: Callable[..., list[Finding]]) -> None:
    def edit(docs: list[dict[str, Any]]) -> None:
        container = container_of(docs, "Deployment", "serving")
        container["readinesProbe"] = container.pop("readinessProbe")

    findings = broken("base/serving.yaml", edit)
    assert_named(findings, "Deployment/serving", "schema-1.32", "readinesProbe")


def test_the_worker_pod_template_is_checked_as_a_pod(
    tmp_path: Path, broken: Callable[..., list[Finding]]
) -> None:
    def edit(docs: list[dict[str, Any]]) -> None:
        del docs[0]["spec"]["containers"][0]["resources"]["limits"]

    findings = broken("base/files/airflow-worker-pod-template.yaml", edit)
    [finding] = [f for f in findings if f.rule == "resources"]
    assert finding.obj.startswith("Pod/airflow-worker (file pod_template.yaml of ConfigMap/")
    assert "container base has no limits" in finding.message


def test_a_worker_image_apart_from_the_scheduler_fails(
    broken: Callable[..., list[Finding]],
) -> None:
    def edit(docs: list[dict[str, Any]]) -> None:
        docs[0].pop("replacements")

    findings = broken("overlays/dev/kustomization.yaml", edit)
    assert_named(findings, "ConfigMap/airflow-env", "worker-image", "task pods would run")


def test_a_stale_config_copy_fails_and_sync_repairs_it(tmp_path: Path) -> None:
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy)
    rules = copy / "base/files/prometheus-rules/serving.yml"
    rules.write_text(rules.read_text() + "\n# drifted\n")
    [finding] = k8s_check.synced_file_problems(copy, REPO)
    assert finding.obj == "base/files/prometheus-rules/serving.yml"
    assert "platform/prometheus/rules/serving.yml" in finding.message
    assert k8s_check.sync_files(copy, REPO) == ["base/files/prometheus-rules/serving.yml"]
    assert k8s_check.synced_file_problems(copy, REPO) == []


def test_the_command_line_fails_naming_the_object(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy)
    serving = copy / "base/serving.yaml"
    serving.write_text(serving.read_text().replace('              cpu: "1"\n', "", 1))
    code = k8s_check.main(["--k8s-dir", str(copy), "--overlay", "prod"])
    assert code == 1
    err = capsys.readouterr().err
    assert "FAIL prod: Deployment/serving: [resources] container serving has no limits for cpu" in (
        err
    )


def test_a_missing_secrets_table_is_an_error(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# Kubernetes\n\nno table\n")
    with pytest.raises(k8s_check.K8sCheckError, match="no secrets table"):
        k8s_check.documented_secrets(readme)


# --- the GitLab deploy's Kubernetes variant (mlops_platform.cicd.deploy, DEPLOY_TARGET=k8s) ----

K8S_ENV = {
    "DEPLOY_TARGET": "k8s",
    "CI_COMMIT_REF_NAME": "main",
    "CI_REGISTRY_IMAGE": "registry.example.org/team/mlops",
    "CI_PROJECT_URL": "https://gitlab.example.org/team/mlops",
}


def test_the_deploy_reads_each_overlays_image_names_as_yaml_does() -> None:
    for env in k8s_check.OVERLAYS:
        path = K8S / "overlays" / env / "kustomization.yaml"
        parsed = yaml.safe_load(path.read_text())["images"]
        expected = {i["name"]: i.get("newName", i["name"]) for i in parsed}
        assert deploy.overlay_images(path) == expected
        assert set(expected) == {f"mlops/{name}" for name in PROJECT_IMAGES}


def test_the_deploy_checks_the_secrets_the_readme_lists() -> None:
    assert set(deploy.K8S_SECRETS) == set(k8s_check.documented_secrets(K8S / "README.md"))


def test_a_release_renders_the_releases_images_and_dags_and_passes(
    tmp_path: Path, kubectl: str
) -> None:
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy, ignore=shutil.ignore_patterns("release"))
    deployment = deploy.deployment_for("staging", K8S_ENV)
    assert isinstance(deployment, deploy.KubernetesDeployment)
    ref = deploy.Ref.from_environment(K8S_ENV, REPO)
    release = copy / "release" / "staging"
    release.mkdir(parents=True)
    (release / "kustomization.yaml").write_text(json.dumps(deployment.release_kustomization(ref)))
    objects = k8s_check.render(release, kubectl)
    documented = k8s_check.documented_secrets(copy / "README.md")
    findings = k8s_check.check_objects("release", objects, documented, ONE_VERSION)
    assert findings == [], "\n".join(map(str, findings))
    objs = by_id(objects)
    images = {
        c["image"]
        for o in objects
        if (found := k8s_check.pod_spec(o))
        for c, _ in k8s_check.containers(found[1])
    }
    for image in deploy.IMAGES:
        revision = deploy.image_revision(REPO, ref.sha, image)
        assert f"registry.example.org/team/mlops/{image.name}:{revision}" in images
    assert not any("registry.gitlab.example.com" in i for i in images), images
    git = objs["ConfigMap/airflow-dags-git"]["data"]
    assert git["GITSYNC_REF"] == ref.sha
    assert git["GITSYNC_REPO"] == "https://gitlab.example.org/team/mlops.git"
    template = objs["Deployment/airflow-dag-processor"]["spec"]["template"]
    assert template["metadata"]["annotations"]["mlops.io/dags-ref"] == ref.sha
    settings = objs["ConfigMap/airflow-env"]["data"]
    airflow = deploy.image_revision(REPO, ref.sha, deploy.IMAGES[0])
    assert settings["AIRFLOW__KUBERNETES_EXECUTOR__WORKER_CONTAINER_TAG"] == airflow
    assert {o["metadata"].get("namespace") for o in objects} >= {"mlops-staging"}


def test_the_k8s_deploy_dry_run_applies_the_release_and_smoke_tests_inside_the_pods(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert deploy.main(["deploy", "dev", "--dry-run"], env=K8S_ENV) == 0
    out = capsys.readouterr().out
    steps = [line.split(":")[0] for line in out.splitlines() if line.startswith("[")]
    assert steps == [
        "[1/6] check-ref",
        "[2/6] secrets",
        "[3/6] release",
        "[4/6] apply",
        "[5/6] rollout",
        "[6/6] smoke",
    ]
    assert "kubectl -n mlops-dev apply -k deploy/k8s/release/dev" in out
    assert "kubectl -n mlops-dev rollout status deployment" in out
    assert "kubectl -n mlops-dev exec deploy/serving -c serving -- python -c" in out
    assert 'os.environ["SERVING_API_KEY"]' in out  # read inside the pod, never passed in
    assert "docker" not in out and "ssh" not in out


def test_the_k8s_deploy_refuses_prod_from_a_branch_and_an_unknown_target(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert deploy.main(["deploy", "prod", "--dry-run"], env=K8S_ENV) == 1
    assert "prod deploys only from a tag" in capsys.readouterr().err
    assert deploy.main(["deploy", "dev", "--dry-run"], env={**K8S_ENV, "DEPLOY_TARGET": "helm"})
    assert "DEPLOY_TARGET='helm': use compose or k8s" in capsys.readouterr().err


def test_the_k8s_model_rollback_runs_in_the_scheduler_pod(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["model", "staging", "rollback", "--reason", "drift", "--actor", "me", "--dry-run"]
    assert deploy.main(argv, env=K8S_ENV) == 0
    out = capsys.readouterr().out
    assert (
        "kubectl -n mlops-staging exec deploy/airflow-scheduler -c scheduler -- "
        "training-pipeline rollback --reason drift --actor me"
    ) in out


def test_a_pod_template_naming_a_hashed_config_map_fails(
    broken: Callable[..., list[Finding]],
) -> None:
    """kustomize does not rewrite names inside a file: the worker pod must use fixed names."""

    def edit(docs: list[dict[str, Any]]) -> None:
        generators = docs[0]["configMapGenerator"]
        settings = next(g for g in generators if g["name"] == "mlops-settings")
        settings.pop("options")

    findings = broken("base/kustomization.yaml", edit)
    [finding] = [f for f in findings if f.rule == "references"]
    assert finding.obj.startswith("Pod/airflow-worker (file pod_template.yaml of ConfigMap/")
    assert "refers to ConfigMap/mlops-settings, which this overlay does not render" in (
        finding.message
    )
