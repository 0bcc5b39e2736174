"""Air-gapped images (mlops_platform.engine.airgap), checked without building: names, commands,
the env file it writes, and that the compose file takes every image it replaces from the
variable it writes. The builds themselves are measured in docs/engine-notes.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlops_platform.engine import airgap
from mlops_platform.launcher.envfile import set_keys

REPO = Path(__file__).resolve().parents[2]


def test_stand_ins_never_take_an_official_name() -> None:
    for image in airgap.IMAGES:
        assert image.name.startswith("mlops-airgap/"), image.name
        assert image.dockerfile.is_file(), image.dockerfile
    assert airgap.DEBIAN_IMAGE.startswith("mlops-airgap/")
    assert len({image.env_key for image in airgap.IMAGES}) == len(airgap.IMAGES)


def test_every_replaced_image_is_a_compose_variable_with_an_official_default() -> None:
    compose = (REPO / "docker-compose.yml").read_text()
    for key in airgap.env_values():
        if key.endswith("_IMAGE"):
            match = re.search(rf"\$\{{{key}:-([^}}]+)\}}", compose)
            assert match, f"docker-compose.yml does not read {key}"
            assert not match[1].startswith("mlops-airgap/"), match[1]
    assert "${GRAFANA_IMAGE:-grafana/grafana:" in compose


def test_build_command_mounts_the_ca_as_a_secret_only_when_there_is_one() -> None:
    postgres = next(i for i in airgap.SERVICES if i.folder == "postgres")
    with_ca = airgap.build_command(postgres, Path("/etc/ssl/certs/ca-certificates.crt"))
    assert "--secret" in with_ca
    assert "id=build_ca,src=/etc/ssl/certs/ca-certificates.crt" in with_ca
    assert f"DEBIAN_BASE_IMAGE={airgap.DEBIAN_IMAGE}" in with_ca
    assert with_ca[-1] == str(airgap.AIRGAP_DIR / "postgres")
    assert "--secret" not in airgap.build_command(postgres, None)
    statsd = next(i for i in airgap.SERVICES if i.folder == "statsd-exporter")
    assert airgap.build_command(statsd, None)[-1] == str(REPO)  # copies the bridge's source


def test_ca_bundle_setting(tmp_path: Path) -> None:
    bundle = tmp_path / "proxy-ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    assert airgap.ca_bundle({"MLOPS_BUILD_CA_BUNDLE": str(bundle)}) == bundle
    with pytest.raises(airgap.AirgapError, match="no such file"):
        airgap.ca_bundle({"MLOPS_BUILD_CA_BUNDLE": str(tmp_path / "missing.pem")})
    default = airgap.ca_bundle({})
    assert default == (airgap.DEFAULT_CA_BUNDLE if airgap.DEFAULT_CA_BUNDLE.is_file() else None)


def test_statsd_stand_in_installs_the_locked_versions() -> None:
    dockerfile = (airgap.AIRGAP_DIR / "statsd-exporter/Dockerfile").read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", dockerfile, re.MULTILINE))
    assert args["PROMETHEUS_CLIENT_VERSION"] == airgap.locked_version("prometheus-client")
    assert args["PYYAML_VERSION"] == airgap.locked_version("pyyaml")
    assert args["PYDANTIC_VERSION"] == airgap.locked_version("pydantic")


def test_the_base_image_is_imported_with_a_path_and_debootstrapped_from_the_mirror(
    tmp_path: Path,
) -> None:
    assert airgap.debootstrap_command(tmp_path) == [
        "debootstrap",
        "--variant=minbase",
        "bookworm",
        str(tmp_path),
        "http://deb.debian.org/debian",
    ]
    command = airgap.import_command()
    assert f"ENV PATH={airgap.IMAGE_PATH}" in command and "/usr/sbin" in airgap.IMAGE_PATH
    root = tmp_path / "root"
    for folder in ("etc/apt", "usr/sbin", "var/cache/apt/archives", "var/lib/apt/lists"):
        (root / folder).mkdir(parents=True)
    (root / "var/cache/apt/archives/x.deb").write_text("deb")
    airgap.prepare_rootfs(root)
    assert "bookworm-security" in (root / "etc/apt/sources.list").read_text()
    assert (root / "usr/sbin/policy-rc.d").read_text().endswith("exit 101\n")
    assert not (root / "var/cache/apt/archives/x.deb").exists()


def test_the_base_keeps_no_documentation_or_translations(tmp_path: Path) -> None:
    root = tmp_path / "root"
    for folder in ("etc/apt", "usr/sbin", "usr/share/doc/bash", "usr/share/man/man1"):
        (root / folder).mkdir(parents=True)
    (root / "usr/share/locale/de/LC_MESSAGES").mkdir(parents=True)
    for name in ("doc/bash/copyright", "doc/bash/changelog.gz", "man/man1/ls.1.gz",
                 "locale/locale.alias", "locale/de/LC_MESSAGES/apt.mo"):  # fmt: skip
        (root / "usr/share" / name).write_text("x")
    airgap.prepare_rootfs(root)
    share = root / "usr/share"
    assert (share / "doc/bash/copyright").exists() and (share / "locale/locale.alias").exists()
    assert not (share / "doc/bash/changelog.gz").exists()
    assert not (share / "man/man1").exists() and not (share / "locale/de").exists()
    # and dpkg leaves them out of the packages the images install later
    excludes = (root / "etc/dpkg/dpkg.cfg.d/excludes").read_text()
    assert "path-exclude /usr/share/doc/*" in excludes
    assert "path-include /usr/share/doc/*/copyright" in excludes


def test_set_keys_changes_only_those_keys(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    original = "# comment\nPOSTGRES_PASSWORD=s3cret\nREDIS_IMAGE=old\nMLFLOW_PORT=5000\n"
    env.write_text(original)
    env.chmod(0o600)
    changed = set_keys(
        env,
        {
            "REDIS_IMAGE": "mlops-airgap/redis:7.0-bookworm",
            "POSTGRES_IMAGE": "mlops-airgap/postgres:15-bookworm",
        },
        "air-gapped",
    )
    assert changed == ["REDIS_IMAGE", "POSTGRES_IMAGE"]
    lines = env.read_text().splitlines()
    assert lines[:4] == [
        "# comment",
        "POSTGRES_PASSWORD=s3cret",
        "REDIS_IMAGE=mlops-airgap/redis:7.0-bookworm",
        "MLFLOW_PORT=5000",
    ]
    assert lines[-2:] == ["# air-gapped", "POSTGRES_IMAGE=mlops-airgap/postgres:15-bookworm"]
    assert env.stat().st_mode & 0o777 == 0o600
    again = env.read_text()
    assert set_keys(env, {"REDIS_IMAGE": "mlops-airgap/redis:7.0-bookworm"}, "x") == []
    assert env.read_text() == again
