"""Offline checks of deploy/kubernetes: Kubernetes schemas, cross-references, CLI options.

Every YAML document under deploy/kubernetes is either an API object, validated strictly against
the schemas kubernetes-validate ships, or one of the few files that are not API objects (the
audit Policy, the webhook kubeconfig, the kustomization), whose structure is checked here.
"""

from __future__ import annotations

import functools
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner

from keelwatch.auth import TOKENS_FILE, TokenStore
from keelwatch.cli import main
from keelwatch.errors import AuthError
from keelwatch.parsers.registry import AUTO
from keelwatch.sources.base import source_for

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy" / "kubernetes"
BASE = DEPLOY / "base" / "kustomization.yaml"
# The oldest release still widely run and the newest the package knows.
K8S_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
KEELWATCH_IMAGE = "ghcr.io/keelwatch/keelwatch"
NOT_API_OBJECTS = {
    ("audit.k8s.io/v1", "Policy"),
    ("v1", "Config"),
    ("kustomize.config.k8s.io/v1beta1", "Kustomization"),
}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}
# Each protocol port option of `keelwatch serve` and the protocol it listens with.
LISTENING = {
    "port": "TCP",
    "forward_port": "TCP",
    "syslog_tcp_port": "TCP",
    "syslog_udp_port": "UDP",
    "syslog_tls_port": "TCP",
    "lumberjack_port": "TCP",
}

Doc = dict[str, Any]


def manifest_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))


def load(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def kustomizations() -> dict[Path, Doc]:
    return {p: load(p)[0] for p in manifest_files() if p.name == "kustomization.yaml"}


def patch_files() -> set[Path]:
    return {
        (path.parent / patch["path"]).resolve()
        for path, kustomization in kustomizations().items()
        for patch in kustomization.get("patches", [])
    }


def api_objects(paths: list[Path]) -> list[Doc]:
    docs = [d for p in paths for d in load(p)]
    return [d for d in docs if (d["apiVersion"], d["kind"]) not in NOT_API_OBJECTS]


def outside_kustomize() -> list[Path]:
    """What is applied with kubectl apply -f: the example Secrets and the demo application."""
    return [DEPLOY / "secrets.example.yaml", *sorted((DEPLOY / "examples").glob("*.yaml"))]


@functools.cache
def kustomize(directory: str) -> tuple[str, ...]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed: kustomizations are not built")
    built = subprocess.run(
        ["kubectl", "kustomize", str(DEPLOY / directory)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stderr
    return (built.stdout,)


class Manifests:
    """One installation: its API objects, with look-ups across them."""

    def __init__(self, docs: list[Doc]) -> None:
        self.docs = docs

    def only(self, kind: str, name: str | None = None) -> Doc:
        found = [
            d for d in self.docs if d["kind"] == kind and name in (None, d["metadata"]["name"])
        ]
        assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
        return found[0]

    def objects(self, kind: str, namespace: str) -> dict[str, Doc]:
        return {
            d["metadata"]["name"]: d
            for d in self.docs
            if d["kind"] == kind and d["metadata"].get("namespace") == namespace
        }

    def pod_templates(self) -> Iterator[tuple[Doc, Doc]]:
        for doc in self.docs:
            if doc["kind"] in WORKLOADS:
                spec = doc["spec"]
                if doc["kind"] == "CronJob":
                    spec = spec["jobTemplate"]["spec"]
                yield doc, spec["template"]

    def keelwatch_server(self) -> tuple[Doc, Doc]:
        found = [
            (pod, c)
            for _, pod in self.pod_templates()
            for c in pod["spec"]["containers"]
            if c["image"].startswith(KEELWATCH_IMAGE) and c.get("args", [None])[0] == "serve"
        ]
        assert len(found) == 1, "expected one container running `keelwatch serve`"
        return found[0]

    def serve_params(self, scratch: Path) -> dict[str, Any]:
        """The server's arguments as click parses them; files must come from mounted Secrets."""
        pod, container = self.keelwatch_server()
        args = list(container["args"][1:])
        volumes = {v["name"]: v for v in pod["spec"].get("volumes", [])}
        for param in serve_command().params:
            if not (isinstance(param.type, click.Path) and param.type.exists):
                continue
            for i, word in enumerate(args[:-1]):
                if word in param.opts:
                    args[i + 1] = str(self._secret_file(container, volumes, args[i + 1], scratch))
        return serve_command().make_context("serve", args).params

    def _secret_file(
        self, container: Doc, volumes: dict[str, Doc], path: str, scratch: Path
    ) -> Path:
        for mount in container["volumeMounts"]:
            prefix = mount["mountPath"].rstrip("/") + "/"
            secret = volumes.get(mount["name"], {}).get("secret")
            if secret and path.startswith(prefix):
                namespace = self.keelwatch_namespace()
                keys = secret_keys(self.objects("Secret", namespace)[secret["secretName"]])
                assert path[len(prefix) :] in keys, f"{path} is not a key of the mounted Secret"
                stand_in = scratch / path[len(prefix) :]
                stand_in.write_text("stand-in")
                return stand_in
        raise AssertionError(f"{path} is not in a mounted Secret")

    def keelwatch_namespace(self) -> str:
        return str(self.only("StatefulSet", "keelwatch")["metadata"]["namespace"])


def installation(name: str) -> Manifests:
    extra = api_objects(outside_kustomize())
    if name == "base":
        paths = [DEPLOY / "base" / r for r in kustomizations()[BASE]["resources"]]
        return Manifests(api_objects(paths) + extra)
    (text,) = kustomize(name)
    return Manifests([d for d in yaml.safe_load_all(text) if d] + extra)


@pytest.fixture(params=["base", "tls"])
def manifests(request: pytest.FixtureRequest) -> Manifests:
    return installation(request.param)


def containers(pod: Doc) -> list[Doc]:
    spec = pod["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def secret_keys(doc: Doc) -> set[str]:
    return set(doc.get("data") or {}) | set(doc.get("stringData") or {})


def fluent_bit_sections(text: str) -> list[tuple[str, dict[str, str]]]:
    """A classic-format Fluent Bit file as (SECTION, {lower-case key: value}) pairs."""
    sections: list[tuple[str, dict[str, str]]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            sections.append((line[1:-1].upper(), {}))
            continue
        assert sections, f"a key before any section: {line!r}"
        key, _, value = line.partition(" ")
        sections[-1][1][key.lower()] = value.strip()
    return sections


def env_reference(value: str) -> str:
    match = re.fullmatch(r"\$\{([A-Z0-9_]+)\}", value)
    assert match, f"{value!r} should come from an environment variable"
    return match.group(1)


def serve_command() -> click.Command:
    command = main.get_command(click.Context(main), "serve")
    assert command is not None
    return command


# -- schemas and kustomizations --------------------------------------------------------------


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_api_object_matches_the_kubernetes_schema(path: Path, version: str) -> None:
    docs = load(path)
    assert docs, f"{path} holds no document"
    if path.resolve() in patch_files():
        for operation in (op for patch in docs for op in patch):  # RFC 6902, YAML form
            assert operation["op"] in ("add", "replace", "remove") and operation["path"]
        return
    for doc in docs:
        assert isinstance(doc, dict) and doc.get("apiVersion") and doc.get("kind"), path
        if (doc["apiVersion"], doc["kind"]) in NOT_API_OBJECTS:
            continue
        # strict: unknown fields are errors; an unknown kind raises SchemaNotFoundError.
        kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_built_tls_overlay_matches_the_kubernetes_schema(version: str) -> None:
    for doc in installation("tls").docs:
        kubernetes_validate.validate(doc, version, strict=True)


def test_kustomizations_list_every_manifest() -> None:
    listed: set[Path] = set()
    for path, kustomization in kustomizations().items():
        assert kustomization["kind"] == "Kustomization"
        for resource in kustomization["resources"]:
            target = (path.parent / resource).resolve()
            assert target.is_file() or (target / "kustomization.yaml").is_file(), resource
            listed.add(target)
    not_api = {
        DEPLOY / "audit" / "audit-policy.yaml",
        DEPLOY / "audit" / "audit-webhook-kubeconfig.yaml",
    }
    unlisted = set(manifest_files()) - listed - set(kustomizations()) - patch_files()
    assert unlisted == set(outside_kustomize()) | not_api


def test_kustomize_builds_the_default_install() -> None:
    (text,) = kustomize(".")
    built = [d for d in yaml.safe_load_all(text) if d]
    base = api_objects([DEPLOY / "base" / r for r in kustomizations()[BASE]["resources"]])

    def key(doc: Doc) -> tuple[str, str, str]:
        return (doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"])

    # kustomize orders by kind; the objects are the files' own, unchanged.
    assert sorted(built, key=key) == sorted(base, key=key)
    assert all(d["kind"] != "Secret" for d in built)


def test_every_namespace_used_is_defined(manifests: Manifests) -> None:
    defined = {d["metadata"]["name"] for d in manifests.docs if d["kind"] == "Namespace"}
    for doc in manifests.docs:
        if doc["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
            assert doc["metadata"].get("namespace") in defined, doc["metadata"]["name"]


# -- references ------------------------------------------------------------------------------


def test_pod_references_resolve(manifests: Manifests) -> None:
    for workload, pod in manifests.pod_templates():
        namespace = workload["metadata"]["namespace"]
        where = f"{workload['kind']}/{workload['metadata']['name']}"
        spec = pod["spec"]
        secrets = manifests.objects("Secret", namespace)
        config_maps = manifests.objects("ConfigMap", namespace)
        if "serviceAccountName" in spec:
            assert spec["serviceAccountName"] in manifests.objects("ServiceAccount", namespace)
        selector = workload["spec"]["selector"]["matchLabels"]
        assert selector.items() <= pod["metadata"]["labels"].items(), where
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        claims = {c["metadata"]["name"] for c in workload["spec"].get("volumeClaimTemplates", [])}
        for volume in volumes.values():
            if "secret" in volume:
                secret = secrets[volume["secret"]["secretName"]]
                wanted = {i["key"] for i in volume["secret"].get("items", [])}
                assert wanted <= secret_keys(secret), where
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps, where
        for container in containers(pod):
            port_names = {p["name"] for p in container.get("ports", [])}
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes or mount["name"] in claims, where
            for variable in container.get("env", []):
                source = variable.get("valueFrom", {})
                if "secretKeyRef" in source:
                    ref = source["secretKeyRef"]
                    assert ref["key"] in secret_keys(secrets[ref["name"]]), where
                if "configMapKeyRef" in source:
                    ref = source["configMapKeyRef"]
                    assert ref["key"] in config_maps[ref["name"]]["data"], where
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                port = container.get(probe, {}).get("httpGet", {}).get("port")
                if isinstance(port, str):
                    assert port in port_names, f"{where}: {probe} port {port}"


def test_services_select_pods_and_their_ports(manifests: Manifests) -> None:
    for service in (d for d in manifests.docs if d["kind"] == "Service"):
        namespace = service["metadata"]["namespace"]
        selected = [
            pod
            for workload, pod in manifests.pod_templates()
            if workload["metadata"]["namespace"] == namespace
            and service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
        ]
        assert selected, f"Service {service['metadata']['name']} selects no pod"
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            for pod in selected:
                matches = [
                    p
                    for c in pod["spec"]["containers"]
                    for p in c.get("ports", [])
                    if target in (p.get("name"), p["containerPort"])
                    and p.get("protocol", "TCP") == port.get("protocol", "TCP")
                ]
                assert matches, f"Service port {port['name']} has no container port"
    statefulset = manifests.only("StatefulSet", "keelwatch")
    namespace = statefulset["metadata"]["namespace"]
    headless = manifests.objects("Service", namespace)[statefulset["spec"]["serviceName"]]
    assert headless["spec"]["clusterIP"] == "None"


def test_cluster_role_binding_resolves(manifests: Manifests) -> None:
    for binding in (d for d in manifests.docs if d["kind"] == "ClusterRoleBinding"):
        manifests.only("ClusterRole", binding["roleRef"]["name"])
        for subject in binding["subjects"]:
            assert subject["name"] in manifests.objects("ServiceAccount", subject["namespace"])


def readme_secrets() -> dict[tuple[str, str], set[str]]:
    """(namespace, name) → keys of every `kubectl create secret generic` in the README."""
    text = (DEPLOY / "README.md").read_text().replace("\\\n", " ")
    found: dict[tuple[str, str], set[str]] = {}
    for line in text.splitlines():
        if "kubectl create secret generic" not in line:
            continue
        words = shlex.split(line[line.index("kubectl") :], comments=True)
        name, namespace, keys = words[4], "default", set()
        for i, word in enumerate(words):
            if word in ("--namespace", "-n"):
                namespace = words[i + 1]
            if word.startswith(("--from-file=", "--from-literal=")):
                keys.add(word.partition("=")[2].partition("=")[0])
        found[(namespace, name)] = keys
    return found


def test_readme_commands_create_the_secrets_the_manifests_read() -> None:
    examples = {
        (d["metadata"]["namespace"], d["metadata"]["name"]): secret_keys(d)
        for d in load(DEPLOY / "secrets.example.yaml")
    }
    assert readme_secrets() == examples
    # Placeholder Secrets live only in the example file.
    for path in manifest_files():
        if path.name != "secrets.example.yaml" and path.resolve() not in patch_files():
            assert all(d["kind"] != "Secret" for d in load(path)), path


def test_example_token_file_has_the_token_store_format(tmp_path: Path) -> None:
    secret = installation("base").only("Secret", "keelwatch-tokens")
    (tmp_path / TOKENS_FILE).write_text(secret["stringData"][TOKENS_FILE])
    store = TokenStore(tmp_path)
    assert [r.role for r in store.records()] == ["ingest"]
    with pytest.raises(AuthError):  # the placeholder hash belongs to no token
        store.authenticate("kw_anything")


# -- the keelwatch container -----------------------------------------------------------------


def serve_help_options() -> set[str]:
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert result.exit_code == 0, result.output
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", result.output))


def test_keelwatch_args_are_options_serve_accepts(manifests: Manifests, tmp_path: Path) -> None:
    _, container = manifests.keelwatch_server()
    known = serve_help_options()
    assert "--forward-port" in known  # the help was read
    used = {a.partition("=")[0] for a in container["args"][1:] if a.startswith("--")}
    assert used <= known, f"not `keelwatch serve` options: {used - known}"
    # click parses them as the real command would (types, ranges, flags, files).
    params = manifests.serve_params(tmp_path)
    assert str(params["data"]) == "/data" and params["host"] == "0.0.0.0"
    environment = {p.envvar for p in serve_command().params if isinstance(p.envvar, str)}
    for variable in container.get("env", []):
        if variable["name"].startswith("KEELWATCH_"):
            assert variable["name"] in environment, variable["name"]
    ports = {(p["containerPort"], p.get("protocol", "TCP")) for p in container["ports"]}
    for option, protocol in LISTENING.items():
        if params.get(option) is not None:
            assert (params[option], protocol) in ports, option
    assert {port for port, _ in ports} <= {params[o] for o in LISTENING if params.get(o)}
    # What `keelwatch serve` refuses at start with tokens required (sources/*.listeners).
    if params["forward_port"]:
        assert any(e["name"] == "KEELWATCH_FORWARD_SHARED_KEY" for e in container["env"])
    if params["lumberjack_port"]:
        assert params["lumberjack_tls"] and params["tls_client_ca"]
    if params["forward_tls"] or params["syslog_tls_port"] or params["lumberjack_tls"]:
        assert params["tls_cert"] and params["tls_key"]


def test_init_container_installs_the_token_file_privately(
    manifests: Manifests, tmp_path: Path
) -> None:
    pod, server = manifests.keelwatch_server()
    data = str(manifests.serve_params(tmp_path)["data"])
    (init,) = pod["spec"]["initContainers"]
    command = init["command"]
    assert command[:3] == ["install", "-m", "0600"]
    mounts = {m["name"]: m["mountPath"] for m in init["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    (secret_volume,) = [n for n in mounts if "secret" in volumes.get(n, {})]
    assert command[3] == f"{mounts[secret_volume]}/{TOKENS_FILE}"
    assert command[4] == f"{data}/{TOKENS_FILE}"
    data_mounts = {m["name"] for m in server["volumeMounts"] if m["mountPath"] == data}
    assert data_mounts == {n for n, path in mounts.items() if path == data}


def test_keelwatch_pod_meets_the_restricted_pod_security_standard(manifests: Manifests) -> None:
    pod, _ = manifests.keelwatch_server()
    spec = pod["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert spec["automountServiceAccountToken"] is False
    for container in containers(pod):
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"]["drop"] == ["ALL"]
        assert "add" not in context["capabilities"]
        assert container["resources"]["limits"]["memory"]
    namespace = manifests.only("Namespace", manifests.keelwatch_namespace())
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_dockerfile_matches_the_pod(manifests: Manifests) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    pod, container = manifests.keelwatch_server()
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.M)
    assert re.search(r'^ENTRYPOINT \["keelwatch"\]', dockerfile, re.M)
    (user,) = re.findall(r"^USER (\d+)", dockerfile, re.M)
    assert int(user) == pod["spec"]["securityContext"]["runAsUser"]
    exposed = {
        (int(port), (protocol or "tcp").upper())
        for line in re.findall(r"^EXPOSE (.+)$", dockerfile, re.M)
        for port, protocol in re.findall(r"(\d+)(?:/(tcp|udp))?", line)
    }
    assert {(p["containerPort"], p["protocol"]) for p in container["ports"]} <= exposed


# -- collectors point at the Service ---------------------------------------------------------


def service_port(manifests: Manifests, host: str, port: int) -> Doc:
    name, namespace, svc = [*host.split("."), "", "", ""][:3]
    assert svc == "svc", f"{host} is not a <service>.<namespace>.svc name"
    service = manifests.objects("Service", namespace)[name]
    (match,) = [p for p in service["spec"]["ports"] if p["port"] == port]
    return match


def container_port(manifests: Manifests, target: str | int) -> int:
    _, container = manifests.keelwatch_server()
    (port,) = [p for p in container["ports"] if target in (p["name"], p["containerPort"])]
    return int(port["containerPort"])


def fluent_bit_config(
    manifests: Manifests, config_map: str
) -> tuple[Doc, Doc, list[tuple[str, dict[str, str]]]]:
    """The workload and container that run a Fluent Bit ConfigMap, and its sections."""
    config = manifests.only("ConfigMap", config_map)
    for workload, pod in manifests.pod_templates():
        volumes = {
            v["name"]
            for v in pod["spec"].get("volumes", [])
            if v.get("configMap", {}).get("name") == config_map
        }
        for container in pod["spec"]["containers"]:
            for mount in container.get("volumeMounts", []):
                if mount["name"] in volumes and "fluent-bit" in container["image"]:
                    assert f"--config={mount['mountPath']}/fluent-bit.conf" in container["args"]
                    text = config["data"]["fluent-bit.conf"]
                    return workload, container, fluent_bit_sections(text)
    raise AssertionError(f"no Fluent Bit container mounts ConfigMap {config_map}")


def env_from_secret(manifests: Manifests, workload: Doc, container: Doc, variable: str) -> Doc:
    (entry,) = [e for e in container["env"] if e["name"] == variable]
    ref: Doc = entry["valueFrom"]["secretKeyRef"]
    secret = manifests.objects("Secret", workload["metadata"]["namespace"])[ref["name"]]
    assert ref["key"] in secret_keys(secret)
    return ref


def test_daemonset_fluent_bit_ships_to_the_keelwatch_bulk_endpoint(
    manifests: Manifests, tmp_path: Path
) -> None:
    workload, container, sections = fluent_bit_config(manifests, "fluent-bit")
    assert workload["kind"] == "DaemonSet"
    (output,) = [s for name, s in sections if name == "OUTPUT"]
    assert output["name"] == "es" and output["suppress_type_name"].lower() == "on"
    port = service_port(manifests, output["host"], int(output["port"]))
    assert container_port(manifests, port["targetPort"]) == manifests.serve_params(tmp_path)["port"]
    assert source_for(output["index"]) == output["index"] != AUTO
    assert output["http_user"]
    env_from_secret(manifests, workload, container, env_reference(output["http_passwd"]))
    (tail,) = [s for name, s in sections if name == "INPUT"]
    assert tail["name"] == "tail" and tail["multiline.parser"].split(",")[0] == "cri"
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert tail["path"].startswith("/var/log/") and "/var/log" in mounts
    writable = [p for p, m in mounts.items() if not m.get("readOnly")]
    assert any(tail["db"].startswith(p + "/") for p in writable)
    (kube,) = [s for name, s in sections if name == "FILTER"]
    assert kube["name"] == "kubernetes" and tail["tag"].rstrip("*") in kube["kube_tag_prefix"]


def test_sidecar_forwards_to_the_keelwatch_forward_listener(
    manifests: Manifests, tmp_path: Path
) -> None:
    workload, container, sections = fluent_bit_config(manifests, "demo-app-fluent-bit")
    (output,) = [s for name, s in sections if name == "OUTPUT"]
    assert output["name"] == "forward"
    assert output["require_ack_response"].lower() in ("true", "on")
    port = service_port(manifests, output["host"], int(output["port"]))
    forward_port = manifests.serve_params(tmp_path)["forward_port"]
    assert container_port(manifests, port["targetPort"]) == forward_port
    client = env_from_secret(manifests, workload, container, env_reference(output["shared_key"]))
    _, server = manifests.keelwatch_server()
    statefulset = manifests.only("StatefulSet", "keelwatch")
    server_ref = env_from_secret(manifests, statefulset, server, "KEELWATCH_FORWARD_SHARED_KEY")
    assert (client["name"], client["key"]) == (server_ref["name"], server_ref["key"])
    (tail,) = [s for name, s in sections if name == "INPUT"]
    assert source_for(tail["tag"]) == tail["tag"] != AUTO
    shared = {m["name"] for m in container["volumeMounts"]}
    app = [c for c in workload["spec"]["template"]["spec"]["containers"] if c is not container]
    assert any(m["name"] in shared for c in app for m in c.get("volumeMounts", []))


# -- audit policy and webhook kubeconfig -----------------------------------------------------

AUDIT_LEVELS = ("None", "Metadata", "Request", "RequestResponse")
RULE_KEYS = {"level", "users", "userGroups", "verbs", "resources", "namespaces"}
RULE_KEYS |= {"nonResourceURLs", "omitStages", "omitManagedFields"}


def audit_policy() -> Doc:
    (policy,) = load(DEPLOY / "audit" / "audit-policy.yaml")
    assert isinstance(policy, dict)
    return policy


def test_audit_policy_structure() -> None:
    policy = audit_policy()
    assert (policy["apiVersion"], policy["kind"]) == ("audit.k8s.io/v1", "Policy")
    assert set(policy) <= {"apiVersion", "kind", "metadata", "rules", "omitStages"}
    stages = {"RequestReceived", "ResponseStarted", "ResponseComplete", "Panic"}
    assert set(policy.get("omitStages", [])) <= stages
    for rule in policy["rules"]:
        assert set(rule) <= RULE_KEYS and rule["level"] in AUDIT_LEVELS, rule
        assert not (rule.get("resources") and rule.get("nonResourceURLs")), rule
        for group in rule.get("resources", []):
            assert set(group) <= {"group", "resources", "resourceNames"}, group
            assert isinstance(group.get("group", ""), str)
    assert policy["rules"][-1] == {"level": "Metadata"}  # nothing falls through silently


def _listed(values: list[str] | None, value: str) -> bool:
    return not values or value in values


def _resource_matches(rule: Doc, group: str, resource: str) -> bool:
    if not rule.get("resources"):
        return True
    for entry in rule["resources"]:
        names = entry.get("resources", [])
        wildcard = any(
            n == "*" or (n.endswith("/*") and resource.startswith(n[:-1])) for n in names
        )
        if entry.get("group", "") == group and (not names or resource in names or wildcard):
            return True
    return False


def audit_level(
    policy: Doc,
    user: str,
    groups: list[str],
    verb: str,
    resource: str = "",
    group: str = "",
    url: str = "",
) -> str:
    """The level the API server gives a request: the first matching rule's (checker.go)."""
    for rule in policy["rules"]:
        if not _listed(rule.get("users"), user) or not _listed(rule.get("verbs"), verb):
            continue
        if rule.get("userGroups") and not set(rule["userGroups"]) & set(groups):
            continue
        if url:
            if rule.get("resources") or rule.get("namespaces"):
                continue
            urls = rule.get("nonResourceURLs", [])
            if urls and not any(
                url == u or (u.endswith("*") and url.startswith(u[:-1])) for u in urls
            ):
                continue
        elif rule.get("nonResourceURLs") or not _resource_matches(rule, group, resource):
            continue
        return str(rule["level"])
    return "None"


ALICE = ("alice@example.com", ["system:authenticated"])
CONTROLLER = (
    "system:serviceaccount:kube-system:generic-garbage-collector",
    ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"],
)
KUBELET = ("system:node:worker-1", ["system:nodes", "system:authenticated"])
VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")


@pytest.mark.parametrize("who", [ALICE, CONTROLLER, KUBELET], ids=lambda w: w[0])
@pytest.mark.parametrize("verb", VERBS)
@pytest.mark.parametrize(
    "group_resource",
    [("", "secrets"), ("", "configmaps"), ("authentication.k8s.io", "tokenreviews")],
)
def test_audit_secrets_are_logged_without_their_values(
    who: tuple[str, list[str]], verb: str, group_resource: tuple[str, str]
) -> None:
    group, resource = group_resource
    assert audit_level(audit_policy(), *who, verb, resource, group) == "Metadata"


@pytest.mark.parametrize(
    ("who", "verb", "resource", "group", "url", "level"),
    [
        (ALICE, "create", "pods/exec", "", "", "RequestResponse"),
        (CONTROLLER, "get", "pods/exec", "", "", "RequestResponse"),
        (ALICE, "create", "pods/portforward", "", "", "RequestResponse"),
        (
            ALICE,
            "create",
            "clusterrolebindings",
            "rbac.authorization.k8s.io",
            "",
            "RequestResponse",
        ),
        (ALICE, "patch", "roles", "rbac.authorization.k8s.io", "", "RequestResponse"),
        (ALICE, "create", "pods", "", "", "Request"),
        (ALICE, "patch", "deployments", "apps", "", "Request"),
        (ALICE, "delete", "namespaces", "", "", "Request"),
        (ALICE, "list", "pods", "", "", "Metadata"),
        (ALICE, "get", "", "", "/apis", "Metadata"),
        (ALICE, "impersonate", "users", "", "", "Metadata"),
        (CONTROLLER, "watch", "pods", "", "", "None"),
        (CONTROLLER, "create", "pods", "", "", "Request"),
        (
            ("system:kube-controller-manager", []),
            "update",
            "leases",
            "coordination.k8s.io",
            "",
            "None",
        ),
        (("system:kube-proxy", []), "watch", "endpointslices", "discovery.k8s.io", "", "None"),
        (KUBELET, "create", "events", "", "", "None"),
        (KUBELET, "get", "nodes", "", "", "None"),
        (KUBELET, "get", "", "", "/healthz/etcd", "None"),
    ],
)
def test_audit_levels(
    who: tuple[str, list[str]], verb: str, resource: str, group: str, url: str, level: str
) -> None:
    assert audit_level(audit_policy(), *who, verb, resource, group, url) == level


def test_audit_webhook_kubeconfig() -> None:
    (config,) = load(DEPLOY / "audit" / "audit-webhook-kubeconfig.yaml")
    assert (config["apiVersion"], config["kind"]) == ("v1", "Config")
    contexts = {c["name"]: c["context"] for c in config["contexts"]}
    context = contexts[config["current-context"]]
    clusters = {c["name"]: c["cluster"] for c in config["clusters"]}
    users = {u["name"]: u["user"] for u in config["users"]}
    server = clusters[context["cluster"]]["server"]
    assert re.fullmatch(r"https://[^/\s]+/ingest/k8s-audit", server), server
    assert users[context["user"]]["token"].startswith("kw_")
    assert set(users[context["user"]]) == {"token"}
