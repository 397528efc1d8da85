"""The Helm chart, rendered by Helm's own Go engine (the helm-python-sdk wheel: no helm binary)
and every manifest checked against the Kubernetes API schemas of a pinned version
(kubernetes-validate, strict: unknown fields fail).

KEDA's ScaledObject is a CRD that kubernetes-validate does not know: it is checked against
`SCALED_OBJECT_SCHEMA` below, the part of KEDA's CRD schema (keda.sh/v1alpha1) the chart uses.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from service.config import Settings, load_settings
from service.errors import ConfigError
from service.jobs.memory import MemoryJobs
from service.models import BuildRecord, parse_request
from service.prepare import prepare
from service.store.local import LocalStore
from service.submit import submit
from worker.executors import make_executor
from worker.runner import Services, prepared_for

CHART = Path(__file__).resolve().parents[2] / "helm" / "wheelwright"
KUBERNETES_VERSION = "1.31.0"
RELEASE = "ww"
NAMESPACE = "builds"
ALL_INTERFACES = "0.0.0.0"  # noqa: S104  (what the API pod must listen on, and dind must not)

# The parts of KEDA's ScaledObject CRD (v2.x, keda.sh/v1alpha1) that the chart renders.
SCALED_OBJECT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"type": "string", "maxLength": 253}},
        },
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["scaleTargetRef", "triggers"],
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name"],
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "name": {"type": "string"},
                    },
                },
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["type", "metadata"],
                        "properties": {
                            "type": {"type": "string"},
                            # KEDA's CRD: metadata values are strings, numbers must be quoted.
                            "metadata": {
                                "type": "object",
                                "additionalProperties": {"type": "string"},
                            },
                            "authenticationRef": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {"name": {"type": "string"}},
                            },
                        },
                    },
                },
            },
        },
    },
}

# (b): GPU workers, KEDA, an ingress, the in-chart Redis, the dind engine, every Secret named.
FULL: dict[str, Any] = {
    "workers": {"cuda": {"enabled": True}},
    "keda": {"enabled": True},
    "api": {
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "tls": [{"secretName": "wheels-tls", "hosts": ["wheels.example.com"]}],
        }
    },
    "redis": {"inChart": {"enabled": True}},
    "docker": {"engine": "dind"},
    "store": {
        "s3": {
            "existingSecret": "ww-s3",
            "endpointUrl": "https://minio.example.com:9000",
            "region": "eu-west-1",
        }
    },
    "auth": {"existingSecret": "ww-tokens"},
    "webhooks": {
        "github": {"existingSecret": "ww-hooks"},
        "gitlab": {"existingSecret": "ww-hooks", "key": "gitlab"},
    },
    "caBundle": {"configMap": "corp-ca", "key": "bundle.pem"},
}

# (c): the node's engine through its socket; the broker URL from a Secret.
HOST: dict[str, Any] = {
    "docker": {"engine": "host", "host": {"socketGroup": 998}},
    "workers": {"cuda": {"enabled": True}},
    "redis": {"existingSecret": "ww-redis", "existingSecretKey": "broker-url"},
    "keda": {"enabled": True, "redisAddress": "redis.example.com:6380", "enableTLS": True},
}


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
    return loaded


def render(chart: helm.Chart, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every manifest the chart renders, as dicts (NOTES.txt and empty documents left out)."""
    rendered = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE)
    docs: list[dict[str, Any]] = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                assert isinstance(doc, dict), path
                docs.append(doc)
    return docs


def notes(chart: helm.Chart, values: dict[str, Any] | None = None) -> str:
    rendered = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE)
    return next(text for path, text in rendered.items() if path.endswith("NOTES.txt"))


def validate(docs: list[dict[str, Any]]) -> None:
    """Kubernetes' own schemas (strict) for built-in kinds; KEDA's for ScaledObjects."""
    problems = []
    for doc in docs:
        where = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        try:
            if doc.get("kind") == "ScaledObject":
                jsonschema.validate(doc, SCALED_OBJECT_SCHEMA)
            else:
                kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except jsonschema.ValidationError as exc:
            path = ".".join(str(p) for p in exc.absolute_path)
            problems.append(f"{where}: {path}: {exc.message}")
    assert not problems, "\n".join(problems)


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for doc in docs:
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    raise AssertionError(f"no {kind}/{name} among {kinds(docs)}")


def kinds(docs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return sorted((d["kind"], d["metadata"]["name"]) for d in docs)


def pod(deployment: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


def pod_annotations(deployment: dict[str, Any]) -> dict[str, str]:
    annotations: dict[str, str] = deployment["spec"]["template"]["metadata"]["annotations"]
    return annotations


def container(deployment: dict[str, Any], name: str) -> dict[str, Any]:
    spec = pod(deployment)
    for item in [*spec["containers"], *spec.get("initContainers", [])]:
        if item["name"] == name:
            found: dict[str, Any] = item
            return found
    raise AssertionError(f"no container {name} in {deployment['metadata']['name']}")


def env(item: dict[str, Any]) -> dict[str, Any]:
    """name -> value, or name -> {"secret": NAME, "key": KEY} for a secretKeyRef."""
    out: dict[str, Any] = {}
    for entry in item.get("env", []):
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        out[entry["name"]] = {"secret": ref["name"], "key": ref["key"]} if ref else entry["value"]
    return out


def all_containers(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in docs:
        if doc["kind"] == "Deployment":
            spec = pod(doc)
            for item in [*spec.get("initContainers", []), *spec["containers"]]:
                yield f"{doc['metadata']['name']}/{item['name']}", item


def gpu_limits(docs: list[dict[str, Any]]) -> dict[str, int]:
    return {
        where: item["resources"]["limits"]["nvidia.com/gpu"]
        for where, item in all_containers(docs)
        if "nvidia.com/gpu" in item.get("resources", {}).get("limits", {})
    }


# --- (a) default values ---------------------------------------------------------------------


def test_default_values_render_valid_manifests(chart: helm.Chart) -> None:
    docs = render(chart)
    validate(docs)
    assert kinds(docs) == [
        ("ConfigMap", "ww-wheelwright-config"),
        ("Deployment", "ww-wheelwright-api"),
        ("Deployment", "ww-wheelwright-worker-cpu"),
        ("Service", "ww-wheelwright-api"),
        ("ServiceAccount", "ww-wheelwright"),
    ]
    api = find(docs, "Deployment", "ww-wheelwright-api")
    assert container(api, "api")["args"] == ["serve", "--host", ALL_INTERFACES, "--port", "8000"]
    assert container(api, "api")["image"] == "wheelwright/api:0.1.0"
    assert container(api, "api")["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container(api, "api")["readinessProbe"]["httpGet"]["path"] == "/readyz"
    api_env = env(container(api, "api"))
    assert api_env["WHEELWRIGHT_BROKER_URL"] == "redis://redis:6379/0"
    assert api_env["WHEELWRIGHT_STORE__BACKEND"] == "s3"
    assert api_env["WHEELWRIGHT_STORE__S3_BUCKET"] == "wheelwright"
    assert api_env["WHEELWRIGHT_CONFIG"] == "/etc/wheelwright/config.toml"
    assert api_env["WHEELWRIGHT_BUILD_TIMEOUT_S"] == "3600"
    for absent in ("WHEELWRIGHT_AUTH__TOKENS", "WHEELWRIGHT_STORE__S3_ACCESS_KEY_ID"):
        assert absent not in api_env

    worker = find(docs, "Deployment", "ww-wheelwright-worker-cpu")
    main = container(worker, "worker")
    assert main["image"] == "wheelwright/worker:0.1.0"
    assert main["args"] == ["worker", "--queues", "cpu", "--concurrency", "1"]
    worker_env = env(main)
    assert worker_env["DOCKER_HOST"] == "tcp://localhost:2375"
    assert worker_env["WHEELWRIGHT_EXECUTOR"] == "docker"
    assert worker_env["WHEELWRIGHT_DOCKER__GPUS"] == "none"
    assert worker_env["WHEELWRIGHT_DOCKER__MEMORY"] == "16g"
    assert "WHEELWRIGHT_DOCKER__CPUS" not in worker_env
    assert gpu_limits(docs) == {}

    config = find(docs, "ConfigMap", "ww-wheelwright-config")
    assert config["data"]["config.toml"] == chart.values["config"]


def test_default_dind_engine_is_private_to_the_pod(chart: helm.Chart) -> None:
    worker = find(render(chart), "Deployment", "ww-wheelwright-worker-cpu")
    dind = container(worker, "dind")
    assert dind["restartPolicy"] == "Always"  # a native sidecar: outlives the worker's shutdown
    assert dind["securityContext"]["privileged"] is True
    assert "--host=tcp://127.0.0.1:2375" in dind["args"]
    assert not [a for a in dind["args"] if ALL_INTERFACES in a]
    assert env(dind)["DOCKER_TLS_CERTDIR"] == ""
    home = "/var/lib/wheelwright"
    mounts = {m["name"]: m["mountPath"] for m in dind["volumeMounts"]}
    assert mounts == {"docker-data": "/var/lib/docker", "home": home}
    worker_mounts = {m["name"]: m["mountPath"] for m in container(worker, "worker")["volumeMounts"]}
    assert worker_mounts["home"] == home  # the same path: the engine resolves the bind mounts
    assert env(container(worker, "worker"))["WHEELWRIGHT_HOME"] == home
    assert env(container(worker, "worker"))["WHEELWRIGHT_CA_BUNDLE"] == f"{home}/ca.pem"
    volumes = {v["name"]: v for v in pod(worker)["volumes"]}
    assert "emptyDir" in volumes["home"]
    assert "docker-socket" not in volumes


def test_containers_run_non_root_with_read_only_root(chart: helm.Chart) -> None:
    for values in ({}, FULL, HOST):
        docs = render(chart, values)
        for doc in docs:
            if doc["kind"] != "Deployment" or doc["metadata"]["name"].endswith("-redis"):
                continue
            assert pod(doc)["securityContext"]["runAsNonRoot"] is True
            assert pod(doc)["securityContext"]["runAsUser"] == 10001
            assert pod(doc)["automountServiceAccountToken"] is False
        for where, item in all_containers(docs):
            context = item["securityContext"]
            if where.endswith("/dind") or (where.endswith("/prepare") and values is HOST):
                continue  # the engine, and the hostPath chown: checked in their own tests
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            assert "runAsUser" not in context or context["runAsUser"] != 0, where


# --- (b) GPU workers, KEDA, ingress, in-chart Redis, dind -----------------------------------


def test_full_values_render_valid_manifests(chart: helm.Chart) -> None:
    docs = render(chart, FULL)
    validate(docs)
    assert kinds(docs) == [
        ("ConfigMap", "ww-wheelwright-config"),
        ("Deployment", "ww-wheelwright-api"),
        ("Deployment", "ww-wheelwright-redis"),
        ("Deployment", "ww-wheelwright-worker-cpu"),
        ("Deployment", "ww-wheelwright-worker-cuda"),
        ("Ingress", "ww-wheelwright-api"),
        ("ScaledObject", "ww-wheelwright-worker-cpu"),
        ("ScaledObject", "ww-wheelwright-worker-cuda"),
        ("Service", "ww-wheelwright-api"),
        ("Service", "ww-wheelwright-redis"),
        ("ServiceAccount", "ww-wheelwright"),
    ]
    ingress = find(docs, "Ingress", "ww-wheelwright-api")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "ww-wheelwright-api", "port": {"name": "http"}}
    for name in ("api", "worker-cpu", "worker-cuda"):
        deployment = find(docs, "Deployment", f"ww-wheelwright-{name}")
        main = container(deployment, "api" if name == "api" else "worker")
        assert env(main)["WHEELWRIGHT_BROKER_URL"] == "redis://ww-wheelwright-redis:6379/0"
        assert env(main)["SSL_CERT_FILE"] == "/etc/wheelwright/ca/bundle.pem"
    cuda = find(docs, "Deployment", "ww-wheelwright-worker-cuda")
    assert env(container(cuda, "prepare"))["CA_SOURCE"] == "/etc/wheelwright/ca/bundle.pem"


def test_the_api_is_told_where_users_reach_it(chart: helm.Chart) -> None:
    """Project builds name the service's URL in their builds and uv configuration, and the
    workers let builds reach it: both take it from the ingress (https where tls lists the
    host), or from api.publicUrl."""

    def public_url(values: dict[str, Any]) -> Any:
        docs = render(chart, values)
        api = env(container(find(docs, "Deployment", "ww-wheelwright-api"), "api"))
        worker = find(docs, "Deployment", "ww-wheelwright-worker-cpu")
        assert env(container(worker, "worker")).get("WHEELWRIGHT_PUBLIC_URL") == api.get(
            "WHEELWRIGHT_PUBLIC_URL"
        )  # the workers' egress proxy lets builds reach the same index
        return api.get("WHEELWRIGHT_PUBLIC_URL")

    assert public_url({}) is None  # no ingress: the URL each request came to
    assert public_url(FULL) == "https://wheels.example.com"
    plain = {"api": {"ingress": {"enabled": True}}}
    assert public_url(plain) == "http://wheels.example.com"
    told = _merge(FULL, {"api": {"publicUrl": "https://pypi.corp.example/wheelwright"}})
    assert public_url(told) == "https://pypi.corp.example/wheelwright"
    settings = load_settings(public_url=public_url(told))
    assert settings.public_url == "https://pypi.corp.example/wheelwright"


def test_gpu_limits_only_on_the_cuda_worker(chart: helm.Chart) -> None:
    docs = render(chart, FULL)
    # dind: the GPU goes to the engine that starts the build containers.
    assert gpu_limits(docs) == {"ww-wheelwright-worker-cuda/dind": 1}
    cuda = find(docs, "Deployment", "ww-wheelwright-worker-cuda")
    assert pod(cuda)["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod(cuda)["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert "runtimeClassName" not in pod(cuda)
    assert env(container(cuda, "worker"))["WHEELWRIGHT_DOCKER__GPUS"] == "auto"
    assert container(cuda, "worker")["args"] == ["worker", "--queues", "cuda", "--concurrency", "1"]
    cpu = find(docs, "Deployment", "ww-wheelwright-worker-cpu")
    assert "nodeSelector" not in pod(cpu)
    assert env(container(cpu, "worker"))["WHEELWRIGHT_DOCKER__GPUS"] == "none"

    with_class = _merge(FULL, {"workers": {"cuda": {"runtimeClassName": "nvidia"}}})
    cuda = find(render(chart, with_class), "Deployment", "ww-wheelwright-worker-cuda")
    assert pod(cuda)["runtimeClassName"] == "nvidia"


def test_keda_scales_each_worker_on_its_queue_lists(chart: helm.Chart) -> None:
    docs = render(chart, FULL)
    for name in ("cpu", "cuda"):
        scaled = find(docs, "ScaledObject", f"ww-wheelwright-worker-{name}")
        assert scaled["spec"]["scaleTargetRef"]["name"] == f"ww-wheelwright-worker-{name}"
        assert scaled["spec"]["minReplicaCount"] == 0
        (trigger,) = scaled["spec"]["triggers"]
        assert trigger["type"] == "redis"
        assert trigger["metadata"] == {
            "address": "ww-wheelwright-redis:6379",
            "databaseIndex": "0",
            "enableTLS": "false",
            "listName": name,
            "listLength": "1",
            "activationListLength": "0",
        }
        # KEDA owns the replica count.
        assert "replicas" not in find(docs, "Deployment", scaled["metadata"]["name"])["spec"]

    several = _merge(
        FULL,
        {
            "workers": {"cpu": {"queues": ["cpu", "cuda"], "concurrency": 2}},
            "redis": {"inChart": {"enabled": False}, "url": "rediss://:pw@redis.example.com/3"},
            "keda": {"authenticationRef": "redis-auth"},
        },
    )
    docs = render(chart, several)
    validate(docs)
    worker = find(docs, "Deployment", "ww-wheelwright-worker-cpu")
    assert container(worker, "worker")["args"] == [
        "worker",
        "--queues",
        "cpu,cuda",
        "--concurrency",
        "2",
    ]
    triggers = find(docs, "ScaledObject", "ww-wheelwright-worker-cpu")["spec"]["triggers"]
    assert [t["metadata"]["listName"] for t in triggers] == ["cpu", "cuda"]
    for trigger in triggers:
        assert trigger["metadata"]["address"] == "redis.example.com:6379"
        assert trigger["metadata"]["databaseIndex"] == "3"
        assert trigger["metadata"]["enableTLS"] == "true"
        assert trigger["authenticationRef"] == {"name": "redis-auth"}
        assert "pw" not in json.dumps(trigger)


def test_in_chart_redis(chart: helm.Chart) -> None:
    docs = render(chart, FULL)
    redis = find(docs, "Deployment", "ww-wheelwright-redis")
    assert pod(redis)["securityContext"]["runAsNonRoot"] is True
    service = find(docs, "Service", "ww-wheelwright-redis")
    assert service["spec"]["ports"][0]["port"] == 6379
    assert service["spec"]["selector"] == redis["spec"]["selector"]["matchLabels"]


# --- (c) the host engine ----------------------------------------------------------------------


def test_host_engine_renders_valid_manifests(chart: helm.Chart) -> None:
    docs = render(chart, HOST)
    validate(docs)
    home = "/var/lib/wheelwright"
    for name in ("cpu", "cuda"):
        worker = find(docs, "Deployment", f"ww-wheelwright-worker-{name}")
        assert [c["name"] for c in pod(worker)["initContainers"]] == ["prepare"]  # no dind
        main = container(worker, "worker")
        assert env(main)["DOCKER_HOST"] == "unix:///var/run/docker.sock"
        assert env(main)["WHEELWRIGHT_BROKER_URL"] == {"secret": "ww-redis", "key": "broker-url"}
        assert pod(worker)["securityContext"]["supplementalGroups"] == [998]
        volumes = {v["name"]: v for v in pod(worker)["volumes"]}
        assert volumes["docker-socket"]["hostPath"] == {
            "path": "/var/run/docker.sock",
            "type": "Socket",
        }
        assert volumes["home"]["hostPath"] == {"path": home, "type": "DirectoryOrCreate"}
        mounts = {m["name"]: m["mountPath"] for m in main["volumeMounts"]}
        assert mounts["docker-socket"] == "/var/run/docker.sock"
        assert mounts["home"] == home
        prepare = container(worker, "prepare")
        assert prepare["securityContext"]["runAsUser"] == 0
        assert prepare["securityContext"]["capabilities"] == {
            "drop": ["ALL"],
            "add": ["CHOWN", "DAC_OVERRIDE", "FOWNER"],
        }
        assert "chown 10001:10001" in prepare["command"][-1]
        contexts = [c.get("securityContext", {}) for _, c in all_containers(docs)]
        assert not [c for c in contexts if "privileged" in c]
    # host: the GPU reserves the node's device for the worker container.
    assert gpu_limits(docs) == {"ww-wheelwright-worker-cuda/worker": 1}
    scaled = find(docs, "ScaledObject", "ww-wheelwright-worker-cuda")
    assert scaled["spec"]["triggers"][0]["metadata"]["address"] == "redis.example.com:6380"
    assert scaled["spec"]["triggers"][0]["metadata"]["enableTLS"] == "true"
    assert "Docker socket" in notes(chart, HOST)


def test_host_executor_needs_no_engine(chart: helm.Chart) -> None:
    docs = render(chart, {"executor": "host", "workers": {"cuda": {"enabled": True}}})
    validate(docs)
    worker = find(docs, "Deployment", "ww-wheelwright-worker-cuda")
    main = container(worker, "worker")
    assert env(main)["WHEELWRIGHT_EXECUTOR"] == "host"
    assert "DOCKER_HOST" not in env(main)
    assert [c["name"] for c in pod(worker)["initContainers"]] == ["prepare"]
    assert gpu_limits(docs) == {"ww-wheelwright-worker-cuda/worker": 1}


class _Queued:
    """A dispatcher that keeps what the API queued (the record is what the worker reads)."""

    def __init__(self) -> None:
        self.records: list[BuildRecord] = []

    def submit(self, record: BuildRecord) -> None:
        self.records.append(record)

    def submit_group(self, records: Sequence[BuildRecord]) -> None:
        self.records.extend(records)

    def queue_length(self, queue: str) -> int | None:
        return len(self.records)


def _settings_as_deployed(
    docs: list[dict[str, Any]], deployment: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """The settings a container of the rendered chart reads: its plain env and the config file."""
    name = "api" if deployment.endswith("-api") else "worker"
    item = container(find(docs, "Deployment", deployment), name)
    config = find(docs, "ConfigMap", f"{RELEASE}-wheelwright-config")["data"]["config.toml"]
    (home / "config.toml").write_text(config)
    with monkeypatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("WHEELWRIGHT_")]:
            patch.delenv(name)
        for name, value in env(item).items():
            if name.startswith("WHEELWRIGHT_") and isinstance(value, str):
                patch.setenv(name, value)
        patch.setenv("WHEELWRIGHT_CONFIG", str(home / "config.toml"))
        patch.setenv("WHEELWRIGHT_HOME", str(home))
        return load_settings()


@pytest.mark.parametrize("executor", ["docker", "host"])
def test_api_and_workers_agree_on_the_key_as_the_chart_configures_them(
    chart: helm.Chart, executor: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = render(chart, {"executor": executor, "workers": {"cuda": {"enabled": True}}})
    api = _settings_as_deployed(docs, f"{RELEASE}-wheelwright-api", tmp_path, monkeypatch)
    assert api.executor == executor
    for kind in ("cpu", "cuda"):
        worker = _settings_as_deployed(
            docs, f"{RELEASE}-wheelwright-worker-{kind}", tmp_path, monkeypatch
        )
        request = parse_request(
            {
                "source": {"kind": "requirement", "requirement": "torch-scatter==2.1.2"},
                "target": {"kind": kind},
                "runtime": ["torch==2.13.0"],
            }
        )
        queued = _Queued()
        store, jobs = LocalStore(tmp_path / "store"), MemoryJobs()
        submitted = submit(request, api, store, jobs, queued)
        assert submitted.record is not None
        record = queued.records[0]
        assert record.queue == kind
        assert record.image is not None
        assert record.image.startswith("host:" if executor == "host" else "wheelwright/build-")
        # the worker reads what the API prepared, after checking it names its own image ...
        svc = Services(worker, store, jobs, make_executor(worker))
        on_worker = prepared_for(record, record.request, svc)
        assert (on_worker.key, on_worker.environment) == (record.request_key, record.environment)
        # ... and the same request built by the worker itself keys the same
        own = prepare(request, worker, executor=svc.executor.name)
        assert (own.image, own.key, own.environment) == (
            record.image,
            record.request_key,
            record.environment,
        )


def test_a_worker_configured_apart_from_the_api_fails_the_build_clearly(
    chart: helm.Chart, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the chart used to do: the executor set on the workers only."""
    docs = render(chart, {"executor": "host"})
    worker = _settings_as_deployed(docs, f"{RELEASE}-wheelwright-worker-cpu", tmp_path, monkeypatch)
    api = worker.model_copy(update={"executor": "docker"})
    queued = _Queued()
    store, jobs = LocalStore(tmp_path / "store"), MemoryJobs()
    request = parse_request({"source": {"kind": "requirement", "requirement": "demo==1.0"}})
    submit(request, api, store, jobs, queued)
    record = queued.records[0]
    svc = Services(worker, store, jobs, make_executor(worker))
    with pytest.raises(ConfigError, match=r"executor host.*same `executor`"):
        prepared_for(record, record.request, svc)


# --- shapes that matter whatever the values ---------------------------------------------------


def test_config_checksum_rolls_the_pods(chart: helm.Chart) -> None:
    def checksums(values: dict[str, Any]) -> dict[str, str]:
        return {
            d["metadata"]["name"]: pod_annotations(d)["checksum/config"]
            for d in render(chart, values)
            if d["kind"] == "Deployment" and not d["metadata"]["name"].endswith("-redis")
        }

    before = checksums(FULL)
    assert set(before) == {
        "ww-wheelwright-api",
        "ww-wheelwright-worker-cpu",
        "ww-wheelwright-worker-cuda",
    }
    assert all(re.fullmatch(r"[0-9a-f]{64}", value) for value in before.values())
    assert len(set(before.values())) == 1
    after = checksums(_merge(FULL, {"config": "[projects]\nflash-attn = {}\n"}))
    assert all(after[name] != before[name] for name in before)


@pytest.mark.parametrize(("timeout", "margin"), [(3600, 300), (7200, 600), (60, 30)])
def test_worker_grace_period_covers_a_whole_build(
    chart: helm.Chart, timeout: int, margin: int
) -> None:
    values = _merge(
        FULL, {"build": {"timeoutSeconds": timeout, "terminationMarginSeconds": margin}}
    )
    docs = render(chart, values)
    for name in ("cpu", "cuda"):
        worker = find(docs, "Deployment", f"ww-wheelwright-worker-{name}")
        grace = pod(worker)["terminationGracePeriodSeconds"]
        assert grace == timeout + margin
        assert grace >= timeout
        assert env(container(worker, "worker"))["WHEELWRIGHT_BUILD_TIMEOUT_S"] == str(timeout)


def test_secrets_are_referenced_by_name_never_rendered(chart: helm.Chart) -> None:
    docs = render(chart, FULL)
    assert not [d for d in docs if d["kind"] == "Secret"]
    api_env = env(container(find(docs, "Deployment", "ww-wheelwright-api"), "api"))
    assert api_env["WHEELWRIGHT_AUTH__TOKENS"] == {"secret": "ww-tokens", "key": "tokens"}
    assert api_env["WHEELWRIGHT_WEBHOOKS__GITHUB_SECRET"] == {"secret": "ww-hooks", "key": "secret"}
    assert api_env["WHEELWRIGHT_WEBHOOKS__GITLAB_TOKEN"] == {"secret": "ww-hooks", "key": "gitlab"}
    for where, item in all_containers(docs):
        item_env = env(item)
        if "WHEELWRIGHT_STORE__S3_BUCKET" in item_env:
            assert item_env["WHEELWRIGHT_STORE__S3_ACCESS_KEY_ID"] == {
                "secret": "ww-s3",
                "key": "AWS_ACCESS_KEY_ID",
            }, where
            assert item_env["WHEELWRIGHT_STORE__S3_SECRET_ACCESS_KEY"] == {
                "secret": "ww-s3",
                "key": "AWS_SECRET_ACCESS_KEY",
            }, where
        # Anything that looks like a credential comes from a Secret, never a literal value.
        for name, value in item_env.items():
            if re.search(r"SECRET|TOKEN|PASSWORD|ACCESS_KEY", name):
                assert isinstance(value, dict), f"{where}: {name} is a literal"
    # The worker needs neither the API tokens nor the webhook secrets.
    worker_env = env(container(find(docs, "Deployment", "ww-wheelwright-worker-cpu"), "worker"))
    assert not [n for n in worker_env if n.startswith(("WHEELWRIGHT_AUTH", "WHEELWRIGHT_WEBHOOKS"))]


def test_the_api_and_every_worker_share_one_catalog_database(chart: helm.Chart) -> None:
    dsn = "postgresql+psycopg://wheelwright@postgresql:5432/wheelwright"
    in_secret = {"database": {"existingSecret": "ww-db", "existingSecretKey": "dsn"}}
    for values, expected in (({}, dsn), (in_secret, {"secret": "ww-db", "key": "dsn"})):
        docs = render(chart, _merge(values, {"workers": {"cuda": {"enabled": True}}}))
        validate(docs)
        names = ["api", "worker-cpu", "worker-cuda"]
        mains = [find(docs, "Deployment", f"ww-wheelwright-{n}") for n in names]
        for deployment, name in zip(mains, ["api", "worker", "worker"], strict=True):
            assert env(container(deployment, name))["WHEELWRIGHT_DATABASE__URL"] == expected
    with pytest.raises(helm.HelmRenderError, match=r"database\.url"):
        render(chart, {"database": {"url": ""}})
    assert ":" not in chart.values["database"]["url"].split("//", 1)[1].split("@")[0]  # no password


def test_default_values_hold_no_secret_values(chart: helm.Chart) -> None:
    def walk(node: Any, path: str) -> Iterator[tuple[str, Any]]:
        if isinstance(node, dict):
            for key, value in node.items():
                yield from walk(value, f"{path}.{key}" if path else str(key))
        else:
            yield path, node

    for path, value in walk(chart.values, ""):
        leaf = path.rsplit(".", 1)[-1]
        if leaf == "existingSecret":
            assert value == "", path
        elif re.search(r"password|token$|secretaccesskey$|accesskeyid$", leaf, re.IGNORECASE):
            raise AssertionError(f"{path} looks like a secret value in values.yaml")
    assert "@" not in chart.values["redis"]["url"]  # no credentials in the default broker URL


def test_notes_show_how_to_point_uv_at_the_index(chart: helm.Chart) -> None:
    text = notes(chart)
    assert "[[tool.uv.index]]" in text
    assert "/simple/ENV/" in text
    assert "explicit = true" in text
    assert "port-forward svc/ww-wheelwright-api" in text
    text = notes(chart, FULL)
    assert "https://wheels.example.com" in text
    assert "in-chart Redis keeps no data" in text


def test_an_added_worker_needs_only_the_required_fields(chart: helm.Chart) -> None:
    gpu = {"count": 0, "resource": "nvidia.com/gpu"}
    extra = {"enabled": True, "queues": ["cuda"], "gpus": "none", "gpu": gpu}
    docs = render(chart, {"keda": {"enabled": True}, "workers": {"cuda-small": extra}})
    validate(docs)
    worker = find(docs, "Deployment", "ww-wheelwright-worker-cuda-small")
    assert container(worker, "worker")["args"][:3] == ["worker", "--queues", "cuda"]
    scaled = find(docs, "ScaledObject", "ww-wheelwright-worker-cuda-small")
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (0, 1)
    docs = render(chart, {"workers": {"cuda-small": extra}})
    assert find(docs, "Deployment", "ww-wheelwright-worker-cuda-small")["spec"]["replicas"] == 1


def test_values_the_templates_cannot_guess_fail_the_render(chart: helm.Chart) -> None:
    # The broker URL in a Secret: KEDA cannot read it, so its address must be given.
    no_address = {"redis": {"existingSecret": "ww-redis"}, "keda": {"enabled": True}}
    with pytest.raises(helm.HelmRenderError, match=r"keda\.redisAddress"):
        chart.render(no_address, name=RELEASE, namespace=NAMESPACE)
    validate(render(chart, _merge(no_address, {"keda": {"redisAddress": "redis:6379"}})))


def test_chart_passes_helm_lint_strict() -> None:
    for values in ({}, FULL, HOST):
        report = helm.lint(CHART, values, strict=True, kube_version=f"v{KUBERNETES_VERSION}")
        assert report["errors"] == [], report
        # Severity 2 is a warning, 3 an error; 1 (info) is only "icon is recommended".
        assert [m for m in report["messages"] if m["severity"] >= 2] == [], report


# --- values.schema.json -----------------------------------------------------------------------

BAD_VALUES: list[tuple[str, dict[str, Any], str]] = [
    ("executor", {"executor": "podman"}, "/executor"),
    ("engine", {"docker": {"engine": "sysbox"}}, "/docker/engine"),
    ("gpus", {"workers": {"cpu": {"gpus": "some"}}}, "/workers/cpu/gpus"),
    ("host without group", {"docker": {"engine": "host"}}, "socketGroup"),
    ("timeout too short", {"build": {"timeoutSeconds": 5}}, "/build/timeoutSeconds"),
    ("timeout a string", {"build": {"timeoutSeconds": "3600"}}, "/build/timeoutSeconds"),
    ("replicas negative", {"workers": {"cpu": {"replicas": -1}}}, "/workers/cpu/replicas"),
    ("gpu count", {"workers": {"cuda": {"gpu": {"count": 99}}}}, "/workers/cuda/gpu/count"),
    ("api port", {"api": {"port": 80}}, "/api/port"),
    ("no image repo", {"image": {"api": {"repository": ""}}}, "/image/api/repository"),
    ("unknown queue", {"workers": {"cpu": {"queues": ["gpu"]}}}, "/workers/cpu/queues/0"),
    ("queue twice", {"workers": {"cpu": {"queues": ["cpu", "cpu"]}}}, "/workers/cpu/queues"),
    ("concurrency", {"workers": {"cpu": {"concurrency": 0}}}, "/workers/cpu/concurrency"),
    ("no queue", {"workers": {"cpu": {"queues": []}}}, "/workers/cpu/queues"),
    ("worker name", {"workers": {"GPU_Big": {"enabled": True}}}, "/workers"),
    ("typo", {"keda": {"enable": True}}, "/keda"),
    ("store backend", {"store": {"backend": "gcs"}}, "/store/backend"),
    ("broker scheme", {"redis": {"url": "amqp://rabbit:5672"}}, "/redis/url"),
    ("keda address", {"keda": {"redisAddress": "redis://x:6379"}}, "/keda/redisAddress"),
    ("unknown top-level", {"secrets": {"s3": "hunter2"}}, "secrets"),
]


def test_schema_is_draft7_and_accepts_the_values_under_test(
    chart: helm.Chart, schema: dict[str, Any]
) -> None:
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    for values in ({}, FULL, HOST):
        merged = chart.merge_values(values)
        assert not list(validator.iter_errors(merged)), values
        chart.validate_schema(values)


@pytest.mark.parametrize(("case", "values", "where"), BAD_VALUES, ids=[c[0] for c in BAD_VALUES])
def test_schema_rejects_bad_values(
    chart: helm.Chart, schema: dict[str, Any], case: str, values: dict[str, Any], where: str
) -> None:
    merged = chart.merge_values(values)
    errors = list(jsonschema.Draft7Validator(schema).iter_errors(merged))
    assert errors, f"{case}: jsonschema accepted {values}"
    # Helm enforces the chart's schema when it renders: the same values fail there too.
    with pytest.raises(helm.HelmValuesError) as failure:
        chart.render(values, name=RELEASE, namespace=NAMESPACE)
    assert where in str(failure.value), str(failure.value)
