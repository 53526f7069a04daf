"""deploy/cloud: the systemd unit verifies, compose and Kubernetes YAML parse with the objects they need."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "cloud"


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "make setup installs systemd tools (deploy/install-system-packages.sh)"
    unit = (DEPLOY / "fogpark-cloud.service").read_text()
    # verify checks that ExecStart exists: point it at this checkout's console script.
    unit = unit.replace("/opt/fogpark/venv/bin/fogpark-cloud", str(Path(sys.executable).with_name("fogpark-cloud")))
    (tmp_path / "fogpark-cloud.service").write_text(unit)
    out = subprocess.run([analyze, "verify", str(tmp_path / "fogpark-cloud.service")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "fogpark-cloud.service" not in out.stderr  # no warnings about our unit
    for line in ("Restart=always", "ProtectSystem=strict", "StateDirectory=fogpark-cloud", "--tls-cert",
                 "--http 127.0.0.1:8081"):
        assert line in unit


def _documents(name: str) -> list[dict[str, object]]:
    with (DEPLOY / name).open() as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def test_compose_file_has_cloud_replicas_influxdb_and_a_balancer() -> None:
    (compose,) = _documents("compose.yaml")
    services = compose["services"]
    assert isinstance(services, dict) and set(services) == {"influxdb", "cloud", "proxy"}
    assert services["cloud"]["deploy"]["replicas"] >= 2
    assert services["influxdb"]["image"].startswith("influxdb:2")
    assert any(v.endswith(":/var/lib/fogpark-cloud") for v in services["cloud"]["volumes"])


@pytest.mark.parametrize("name", ["k8s/fogpark-cloud.yaml", "k8s/influxdb.yaml"])
def test_kubernetes_objects_are_well_formed(name: str) -> None:
    docs = _documents(name)
    assert docs
    for doc in docs:
        assert isinstance(doc.get("apiVersion"), str) and doc["apiVersion"]
        assert isinstance(doc.get("kind"), str) and doc["kind"]
        metadata = doc.get("metadata")
        assert isinstance(metadata, dict) and metadata.get("name")
        if doc["kind"] != "Namespace":
            assert metadata.get("namespace") == "fogpark"


def test_cloud_deployment_runs_replicas_with_probes_and_tls() -> None:
    docs = {d["kind"]: d for d in _documents("k8s/fogpark-cloud.yaml")}
    deployment = docs["Deployment"]
    assert deployment["spec"]["replicas"] >= 2
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert "--tls-cert" in container["args"]
    assert {p["containerPort"] for p in container["ports"]} == {50051, 8081}
    assert docs["Service"]["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


@pytest.mark.parametrize("script", ["install-chromium.sh"])
def test_scripts_parse(script: str) -> None:
    assert subprocess.run(["bash", "-n", str(DEPLOY / script)]).returncode == 0
