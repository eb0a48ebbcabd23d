"""The chart through the real Helm engine: every scenario renders, validates against
the Kubernetes schemas, is hardened and labelled, and grants least-privilege RBAC."""

from __future__ import annotations

import contextlib
import http.server
import inspect
import json
import re
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.helm.chart import (
    CHART_DIR,
    RELEASE,
    RELEASE_NAMESPACE,
    ROOT,
    SCENARIOS,
    Rendered,
    load_chart,
    pod_specs,
    render,
    scenario_values,
)

pytestmark = pytest.mark.helm

# The oldest and a recent Kubernetes whose schemas kubernetes-validate ships; strict:
# unknown fields are errors (a misspelt key in a template would otherwise vanish).
K8S_VERSIONS = ("1.25", "1.30")
STANDARD_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/instance",
                   "app.kubernetes.io/version", "app.kubernetes.io/component",
                   "app.kubernetes.io/part-of", "app.kubernetes.io/managed-by", "helm.sh/chart")
CRD_FILE = ROOT / "crds" / "tuningexperiments.kubetune.io.yaml"
CHART_CRD_FILE = CHART_DIR / "files" / "crds" / "tuningexperiments.kubetune.io.yaml"
DASHBOARD = CHART_DIR / "dashboards" / "kubetune.json"


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with load_chart() as loaded:
        yield loaded


@pytest.fixture(scope="module")
def rendered(chart: helm.Chart) -> dict[str, Rendered]:
    """Every scenario of helm/kubetune/ci, by file stem."""
    return {path.stem: render(scenario_values(path), chart=chart) for path in SCENARIOS}


SCENARIO_IDS = [p.stem for p in SCENARIOS]


def test_scenarios_exist() -> None:
    assert {"default-values", "watch-namespaces-values", "monitoring-values",
            "gpu-prices-values", "no-crds-values"} <= set(SCENARIO_IDS)


# --------------------------------------------------------------------- the chart itself

def test_chart_metadata(chart: helm.Chart) -> None:
    meta = chart.metadata
    assert meta["apiVersion"] == "v2"
    assert meta["appVersion"] == "0.1.0"
    operator_version = re.search(r'^version = "(.+)"$',
                                 (ROOT / "operator" / "pyproject.toml").read_text(), re.M)
    assert operator_version and operator_version.group(1) == meta["appVersion"]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=SCENARIO_IDS)
def test_helm_lint_strict(scenario: Path) -> None:
    report = helm.lint(CHART_DIR, scenario_values(scenario), strict=True,
                       namespace=RELEASE_NAMESPACE, kube_version="v1.30.0")
    problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    assert not problems, problems


def test_chart_crd_is_the_generated_one() -> None:
    """The chart's copy (Helm cannot read outside the chart) equals `kubetune crd`'s output."""
    assert CHART_CRD_FILE.read_text() == CRD_FILE.read_text(), (
        f"{CHART_CRD_FILE.relative_to(ROOT)} differs from {CRD_FILE.relative_to(ROOT)}: "
        f"cp {CRD_FILE.relative_to(ROOT)} {CHART_CRD_FILE.relative_to(ROOT)}")


def test_rendered_crd_equals_generated_except_metadata(rendered: dict[str, Rendered]) -> None:
    crd = rendered["default-values"].one("CustomResourceDefinition")
    generated = yaml.safe_load(CRD_FILE.read_text())
    assert crd["spec"] == generated["spec"]
    assert crd["metadata"]["name"] == generated["metadata"]["name"]
    # the generated labels survive; the chart's are added
    assert generated["metadata"]["labels"].items() <= crd["metadata"]["labels"].items()
    assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}


def test_crd_options(chart: helm.Chart) -> None:
    assert not render({"crds": {"install": False, "keep": True}}, chart=chart) \
        .of_kind("CustomResourceDefinition")
    unkept = render({"crds": {"install": True, "keep": False}}, chart=chart) \
        .one("CustomResourceDefinition")
    assert "helm.sh/resource-policy" not in (unkept["metadata"].get("annotations") or {})


# ------------------------------------------------------------- schemas of every object

@pytest.mark.parametrize("scenario", SCENARIO_IDS)
def test_every_object_validates_against_kubernetes_schemas(rendered: dict[str, Rendered],
                                                           scenario: str) -> None:
    out = rendered[scenario]
    assert out.objects
    unknown = []
    for obj in out.objects:
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.SchemaNotFoundError:
                unknown.append(obj)
                break
            except kubernetes_validate.ValidationError as error:
                pytest.fail(f"{out.source(obj)}: {obj['kind']} {obj['metadata']['name']} is not "
                            f"a valid Kubernetes {version} object: {error.message} at "
                            f"{'/'.join(map(str, error.path))}")
    # Only the prometheus-operator's CR has no built-in schema; checked structurally below.
    assert {o["kind"] for o in unknown} <= {"ServiceMonitor"}


def test_servicemonitor_selects_the_metrics_service(rendered: dict[str, Rendered]) -> None:
    out = rendered["monitoring-values"]
    monitor = out.one("ServiceMonitor")
    service = out.one("Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["namespace"] == RELEASE_NAMESPACE
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    spec = monitor["spec"]
    assert set(spec) == {"namespaceSelector", "selector", "endpoints"}
    assert spec["namespaceSelector"] == {"matchNames": [service["metadata"]["namespace"]]}
    assert spec["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    port_names = {p["name"] for p in service["spec"]["ports"]}
    (endpoint,) = spec["endpoints"]
    assert endpoint["port"] in port_names
    assert endpoint["path"] == "/metrics"
    assert endpoint["interval"] == "15s" and endpoint["scrapeTimeout"] == "10s"
    # series carry the experiment's namespace label: keep it
    assert endpoint["honorLabels"] is True
    # ...and the Service reaches the operator's metrics port
    deployment = out.one("Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert service["spec"]["ports"][0]["targetPort"] in {p["name"] for p in container["ports"]}


def test_servicemonitor_off_by_default(rendered: dict[str, Rendered], chart: helm.Chart) -> None:
    assert not rendered["default-values"].of_kind("ServiceMonitor")
    with pytest.raises(helm.HelmError, match=r"needs metrics\.service\.enabled"):
        render({"metrics": {"service": {"enabled": False}, "serviceMonitor": {"enabled": True}}},
               chart=chart)


def test_grafana_dashboard_configmap(rendered: dict[str, Rendered], chart: helm.Chart) -> None:
    assert not [c for c in rendered["default-values"].of_kind("ConfigMap")
                if c["metadata"]["name"].endswith("-dashboard")]
    cm = rendered["monitoring-values"].one("ConfigMap", f"{RELEASE}-kubetune-dashboard")
    assert cm["metadata"]["namespace"] == "monitoring"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "kubetune"}
    assert json.loads(cm["data"]["kubetune.json"]) == json.loads(DASHBOARD.read_text())
    custom = render({"grafana": {"dashboard": {"enabled": True, "label": "example.com/dashboard",
                                               "labelValue": "kubetune"}}}, chart=chart)
    labels = custom.one("ConfigMap", f"{RELEASE}-kubetune-dashboard")["metadata"]["labels"]
    assert labels["example.com/dashboard"] == "kubetune" and "grafana_dashboard" not in labels


# -------------------------------------------------------------------- labels, hardening

@pytest.mark.parametrize("scenario", SCENARIO_IDS)
def test_standard_labels_on_every_object(rendered: dict[str, Rendered], scenario: str) -> None:
    for obj in rendered[scenario].objects:
        labels = obj["metadata"].get("labels") or {}
        missing = [k for k in STANDARD_LABELS if not labels.get(k)]
        assert not missing, f"{obj['kind']} {obj['metadata']['name']} lacks {missing}"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/part-of"] == "kubetune"
        assert labels["app.kubernetes.io/version"] == "0.1.0"
        assert labels["helm.sh/chart"] == "kubetune-0.1.0"


@pytest.mark.parametrize("scenario", SCENARIO_IDS)
def test_every_container_is_hardened(rendered: dict[str, Rendered], scenario: str) -> None:
    workloads = list(pod_specs(rendered[scenario].objects))
    assert [o["kind"] for o, _ in workloads] == ["Deployment"]
    for _, pod in workloads:
        pod_sc = pod.get("securityContext") or {}
        assert pod_sc.get("runAsNonRoot") is True
        assert pod_sc.get("runAsUser", 0) != 0
        assert pod_sc.get("seccompProfile") == {"type": "RuntimeDefault"}
        assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
        for container in pod["containers"] + pod.get("initContainers", []):
            sc = container["securityContext"]
            assert sc["runAsNonRoot"] is True
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc.get("privileged", False) is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"])
            assert "memory" in resources["limits"]
            # probes on the operator's (Kopf's) health endpoint, by the named port
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            for probe in ("livenessProbe", "readinessProbe"):
                assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
            args = container["args"]
            assert f"--health-port={ports['health']}" in args
            assert f"--metrics-port={ports['metrics']}" in args
            # the read-only root filesystem needs a writable /tmp (HOME, matplotlib cache)
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert "/tmp" in mounts
            assert {"name": mounts["/tmp"], "emptyDir": {"sizeLimit": "64Mi"}} in pod["volumes"]


def test_deployment_basics(rendered: dict[str, Rendered]) -> None:
    deployment = rendered["default-values"].one("Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}  # never two operators at once
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == rendered["default-values"].one(
        "ServiceAccount")["metadata"]["name"]
    (container,) = pod["containers"]
    assert container["image"] == "ghcr.io/kubetune/operator:0.1.0"
    pinned = rendered["pinned-image-values"].one("Deployment")["spec"]["template"]
    (container,) = pinned["spec"]["containers"]
    assert container["image"] == ("registry.example.com/ml/kubetune-operator@sha256:"
                                  "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
    assert container["imagePullPolicy"] == "Always"
    assert pinned["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    assert pinned["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true", "prometheus.io/port": "8080",
        "prometheus.io/path": "/metrics"}
    assert pinned["metadata"]["labels"]["team"] == "ml-platform"
    assert pinned["spec"]["priorityClassName"] == "system-cluster-critical"


# ------------------------------------------------------------------ operator arguments

def operator_args(out: Rendered) -> list[str]:
    (container,) = out.one("Deployment")["spec"]["template"]["spec"]["containers"]
    return list(container["args"])


def test_args_parse_with_the_real_cli(rendered: dict[str, Rendered]) -> None:
    """The Deployment's args are accepted by `kubetune`'s own parser, with the values' meaning."""
    from kubetune.cli import build_parser
    from kubetune.controller.reconciler import parse_gpu_prices

    parser = build_parser()
    default = parser.parse_args(operator_args(rendered["default-values"]))
    assert (default.command, default.namespace, default.default_price, default.gpu_prices,
            default.finished_jobs, default.metrics_port, default.health_port,
            default.gpu_type_label, default.verbose) == \
        ("operator", None, None, None, "keep", 8080, 8081, "nvidia.com/gpu.product", False)

    prices = parser.parse_args(operator_args(rendered["gpu-prices-values"]))
    assert prices.default_price == 1.2
    assert parse_gpu_prices(prices.gpu_prices) == {
        "Tesla-T4": 0.35, "NVIDIA-A100-SXM4-40GB": 2.93, "NVIDIA-H100-80GB-HBM3": 4.0}

    scoped = parser.parse_args(operator_args(rendered["watch-namespaces-values"]))
    assert scoped.namespace == ["team-a", "team-b"]
    assert scoped.finished_jobs == "delete"


def test_small_and_large_prices_render_as_numbers(chart: helm.Chart) -> None:
    from kubetune.cli import build_parser
    from kubetune.controller.reconciler import parse_gpu_prices

    out = render({"operator": {"defaultPrice": 0, "gpuPrices": {"a": 1000000, "b": 0.0001}}},
                 chart=chart)
    args = build_parser().parse_args(operator_args(out))
    assert args.default_price == 0.0  # 0 is a price, not "unset"
    assert parse_gpu_prices(args.gpu_prices) == {"a": 1e6, "b": 1e-4}


# ------------------------------------------------------------------------------ RBAC

Rule = tuple[str, str, str]  # (apiGroup, resource, verb)


def granted(objects: list[dict[str, Any]], kind: str) -> dict[str | None, set[Rule]]:
    """{namespace (None for ClusterRoles): {(group, resource, verb)}} of the given kind."""
    out: dict[str | None, set[Rule]] = {}
    for role in (o for o in objects if o["kind"] == kind):
        rules = out.setdefault(role["metadata"].get("namespace"), set())
        for rule in role["rules"]:
            assert set(rule) == {"apiGroups", "resources", "verbs"}, rule  # no resourceNames tricks
            rules.update((g, r, v) for g in rule["apiGroups"] for r in rule["resources"]
                         for v in rule["verbs"])
    return out


# What each method of kubetune.controller.kube.Kube sends to the API server.
CLIENT_CALLS: dict[str, Rule] = {
    "get_experiment": ("kubetune.io", "tuningexperiments", "get"),
    "patch_status": ("kubetune.io", "tuningexperiments/status", "patch"),
    "list_jobs": ("batch", "jobs", "list"),
    "create_job": ("batch", "jobs", "create"),
    "get_job": ("batch", "jobs", "get"),
    "delete_job": ("batch", "jobs", "delete"),
    "list_pods": ("", "pods", "list"),
    "read_log": ("", "pods/log", "get"),
    "event": ("", "events", "create"),
    "node_labels": ("", "nodes", "get"),
}
# What Kopf does for the handlers in kubetune/controller/handlers.py.
KOPF_CALLS: set[Rule] = {
    ("kubetune.io", "tuningexperiments", "list"),    # the daemon's resource
    ("kubetune.io", "tuningexperiments", "watch"),
    ("kubetune.io", "tuningexperiments", "patch"),   # progress annotations, finalizer
    ("batch", "jobs", "list"), ("batch", "jobs", "watch"),  # @kopf.on.event jobs
    ("", "pods", "list"), ("", "pods", "watch"),             # @kopf.on.event pods
    ("", "events", "create"),                                 # Kopf's own k8s events
    ("apiextensions.k8s.io", "customresourcedefinitions", "list"),  # resource observer
    ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
}
KOPF_NAMESPACED_MODE: set[Rule] = {("", "namespaces", "list"), ("", "namespaces", "watch")}
# Only checked by the OwnerReferencesPermissionEnforcement admission plugin, for the
# blockOwnerDeletion ownerReference on trial Jobs.
ADMISSION: set[Rule] = {("kubetune.io", "tuningexperiments/finalizers", "update")}
CLUSTER_SCOPED = {"customresourcedefinitions", "namespaces", "nodes"}


def rule_of(method: str, url: str) -> Rule:
    """The RBAC (group, resource, verb) that authorizes one API request."""
    parsed = urllib.parse.urlsplit(url)
    parts = parsed.path.strip("/").split("/")
    group, rest = ("", parts[2:]) if parts[0] == "api" else (parts[1], parts[3:])
    if rest[0] == "namespaces" and len(rest) > 2:
        rest = rest[2:]
    resource = "/".join([rest[0], *rest[2:3]])
    named = len(rest) > 1
    if method == "GET":
        watch = "watch=true" in parsed.query or "watch=1" in parsed.query
        verb = "watch" if watch else "get" if named else "list"
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[method]
    return group, resource, verb


@contextlib.contextmanager
def recording_api_server() -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """A loopback HTTP server answering every request with an empty object; records them."""
    seen: list[tuple[str, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append((self.command, self.path))
            body = json.dumps({"items": [], "metadata": {"labels": {}}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

        def log_message(self, *_: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_client_calls_table_matches_the_operator_code(tmp_path: Path) -> None:
    """Each Kube method is called against a recording server: the requests it sends need
    exactly the rule in CLIENT_CALLS. A new method must be added there, and so to the
    chart's RBAC."""
    from kubetune.controller.kube import Kube, load_config

    methods = {name for name, member in inspect.getmembers(Kube, inspect.isfunction)
               if not name.startswith("_") and name not in ("request", "request_bytes")}
    assert methods == set(CLIENT_CALLS), (
        f"Kube has methods {sorted(methods - set(CLIENT_CALLS))} the chart's RBAC does not "
        f"cover yet, or lost {sorted(set(CLIENT_CALLS) - methods)}")
    experiment = {"apiVersion": "kubetune.io/v1alpha1", "kind": "TuningExperiment",
                  "metadata": {"name": "e", "namespace": "ns", "uid": "u", "resourceVersion": "1"}}
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "e-0"}, "spec": {}}
    calls: dict[str, tuple[Any, ...]] = {
        "get_experiment": ("ns", "e"), "patch_status": ("ns", "e", "1", {"phase": "Running"}),
        "list_jobs": ("ns", "kubetune.io/experiment=e"), "create_job": ("ns", job),
        "get_job": ("ns", "e-0"), "delete_job": ("ns", "e-0"),
        "list_pods": ("ns", "kubetune.io/experiment=e"), "read_log": ("ns", "e-0-abc", "trainer"),
        "event": (experiment, "Normal", "TrialCreated", "trial 0 created"),
        "node_labels": ("node-1",),
    }
    with recording_api_server() as (url, seen):
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "c",
            "clusters": [{"name": "c", "cluster": {"server": url}}],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
        kube = Kube(load_config(str(kubeconfig)))
        for name, rule in CLIENT_CALLS.items():
            seen.clear()
            getattr(kube, name)(*calls[name])
            assert seen, f"Kube.{name} sent no request"
            assert {rule_of(m, u) for m, u in seen} == {rule}, (name, seen)


@pytest.mark.parametrize("scenario", SCENARIO_IDS)
def test_rbac_is_least_privilege(rendered: dict[str, Rendered], scenario: str) -> None:
    out = rendered[scenario]
    values = scenario_values(CHART_DIR / "ci" / f"{scenario}.yaml")
    if values.get("rbac", {}).get("create") is False:
        assert not [o for o in out.objects if o["apiVersion"].startswith("rbac.")]
        return
    watch = values.get("watchNamespaces") or []
    gpu_prices = bool(values.get("operator", {}).get("gpuPrices"))
    cluster = granted(out.objects, "ClusterRole")[None]
    namespaced = granted(out.objects, "Role")
    every = cluster.union(*namespaced.values())
    for group, resource, verb in every:
        assert "*" not in (group, resource, verb)
        assert resource not in ("secrets", "pods/exec", "pods/attach", "pods/portforward",
                                "serviceaccounts/token", "roles", "clusterroles",
                                "rolebindings", "clusterrolebindings")
        assert verb not in ("escalate", "bind", "impersonate", "deletecollection")
    assert not any(r == "tuningexperiments" and v in ("create", "update", "delete")
                   for _, r, v in every)

    needed = {rule for name, rule in CLIENT_CALLS.items()
              if name != "node_labels" or gpu_prices} | KOPF_CALLS | ADMISSION
    if watch:
        needed |= KOPF_NAMESPACED_MODE
    expected_cluster = {r for r in needed if r[1] in CLUSTER_SCOPED}
    expected_namespaced = needed - expected_cluster
    if watch:
        # cluster-wide: only reads of cluster-scoped metadata; everything else per namespace
        assert cluster == expected_cluster
        assert set(namespaced) == set(watch)
        for ns in watch:
            assert namespaced[ns] == expected_namespaced
    else:
        assert cluster == expected_cluster | expected_namespaced
        assert not namespaced
    # nodes only when GPU prices need their labels
    assert (("", "nodes", "get") in cluster) == gpu_prices


@pytest.mark.parametrize("scenario", SCENARIO_IDS)
def test_bindings_name_the_chart_service_account(rendered: dict[str, Rendered],
                                                 scenario: str) -> None:
    out = rendered[scenario]
    (container_sa,) = {o["spec"]["template"]["spec"]["serviceAccountName"]
                       for o in out.of_kind("Deployment")}
    roles = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
             for o in out.objects if o["kind"] in ("Role", "ClusterRole")}
    for binding in out.of_kind("RoleBinding") + out.of_kind("ClusterRoleBinding"):
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": container_sa,
                                        "namespace": RELEASE_NAMESPACE}]
        ref = binding["roleRef"]
        namespace = binding["metadata"].get("namespace") if ref["kind"] == "Role" else None
        assert (ref["kind"], namespace, ref["name"]) in roles


def test_no_service_account_without_name_fails(chart: helm.Chart) -> None:
    with pytest.raises(helm.HelmError, match=r"serviceAccount\.name is required"):
        render({"serviceAccount": {"create": False}}, chart=chart)
    out = render({"serviceAccount": {"create": False, "name": "existing"}}, chart=chart)
    assert not out.of_kind("ServiceAccount")
    assert out.one("Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "existing"


# -------------------------------------------------------------------- values and schema

@pytest.mark.parametrize("values, complaint", [
    ({"replicaCount": "two"}, "/replicaCount"),
    ({"replicaCount": 2}, "/replicaCount"),
    ({"replicaCounts": 1}, "replicaCounts"),
    ({"operator": {"finishedJob": "delete"}}, "finishedJob"),
    ({"operator": {"finishedJobs": "remove"}}, "/operator/finishedJobs"),
    ({"operator": {"defaultPrice": -1}}, "/operator/defaultPrice"),
    ({"operator": {"defaultPrice": "2.6"}}, "/operator/defaultPrice"),
    ({"operator": {"gpuPrices": {"Tesla-T4": "cheap"}}}, "/operator/gpuPrices"),
    ({"operator": {"gpuPrices": {"a,b=c": 1}}}, "invalid propertyName 'a,b=c'"),
    ({"watchNamespaces": "team-a"}, "/watchNamespaces"),
    ({"watchNamespaces": ["Team_A"]}, "/watchNamespaces"),
    ({"image": {"digest": "latest"}}, "/image/digest"),
    ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    ({"metrics": {"port": 0}}, "/metrics/port"),
    ({"metrics": {"serviceMonitor": {"interval": "30"}}}, "/metrics/serviceMonitor/interval"),
    ({"resources": {"limits": {"memory": "lots"}}}, "/resources/limits"),
    ({"livenessProbe": {"periodSecond": 5}}, "periodSecond"),
    ({"trainer": {"data": {"mountPath": "data"}}}, "/trainer/data/mountPath"),
    ({"trainer": {"gpus": 0.5}}, "/trainer/gpus"),
    ({"grafana": {"dashboard": {"labelValue": 1}}}, "/grafana/dashboard/labelValue"),
])
def test_schema_rejects_mistyped_values(chart: helm.Chart, values: dict[str, Any],
                                        complaint: str) -> None:
    with pytest.raises(helm.HelmError) as caught:
        render(values, chart=chart)
    assert complaint in str(caught.value), str(caught.value)


def test_schema_accepts_defaults_and_scenarios(chart: helm.Chart) -> None:
    chart.validate_schema(chart.values)
    for path in SCENARIOS:
        chart.validate_schema(chart.merge_values(scenario_values(path)))


def _schema_keys(schema: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for key, sub in schema.get("properties", {}).items():
        yield prefix + key
        yield from _schema_keys(sub, f"{prefix}{key}.")


def _value_keys(values: dict[str, Any], schema: dict[str, Any],
                prefix: str = "") -> Iterator[str]:
    for key, value in values.items():
        yield prefix + key
        sub = schema.get("properties", {}).get(key, {})
        if isinstance(value, dict) and "properties" in sub:
            yield from _value_keys(value, sub, f"{prefix}{key}.")


def test_values_and_schema_describe_the_same_keys(chart: helm.Chart) -> None:
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    in_values = set(_value_keys(chart.values, schema))
    in_schema = set(_schema_keys(schema)) - {"global"}
    assert in_values == in_schema
    # additionalProperties: false wherever the chart defines the keys
    def closed(node: dict[str, Any], path: str) -> None:
        if "properties" in node:
            assert node.get("additionalProperties") is False, path or "(root)"
        for key, sub in node.get("properties", {}).items():
            closed(sub, f"{path}.{key}")
    closed(schema, "")


def test_every_values_key_is_commented(chart: helm.Chart) -> None:
    """Each chart-defined key in values.yaml has a comment above it or on its line."""
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    wanted = set(_schema_keys(schema)) - {"global"}
    lines = (CHART_DIR / "values.yaml").read_text().splitlines()
    stack: list[tuple[int, str]] = []
    seen: set[str] = set()
    for i, line in enumerate(lines):
        match = re.match(r"^( *)([A-Za-z][\w.-]*):(.*)$", line)
        if not match:
            continue
        indent, key, rest = len(match.group(1)), match.group(2), match.group(3)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([k for _, k in stack] + [key])
        stack.append((indent, key))
        if path not in wanted:
            continue
        seen.add(path)
        above = lines[i - 1].strip() if i else ""
        assert above.startswith("#") or "#" in rest, f"values.yaml:{i + 1}: {path} has no comment"
    assert seen == wanted


# ------------------------------------------------------------------- trainer defaults

def test_example_experiments_are_valid(rendered: dict[str, Rendered]) -> None:
    """The examples ConfigMap holds TuningExperiments that kubetune and the CRD accept."""
    from kubetune.api.manifest import load_experiment

    crd = yaml.safe_load(CRD_FILE.read_text())
    (version,) = crd["spec"]["versions"]
    validator = jsonschema.Draft7Validator(version["schema"]["openAPIV3Schema"])
    for scenario, claim, gpus, download in (("default-values", "svhn-data", 1, "true"),
                                            ("gpu-prices-values", "svhn-cache", 2, "false")):
        cm = rendered[scenario].one("ConfigMap", f"{RELEASE}-kubetune-examples")
        assert set(cm["data"]) == {"svhn-gp.yaml", "digits-cpu.yaml"}
        docs = {key: yaml.safe_load(text) for key, text in cm["data"].items()}
        for key, doc in docs.items():
            errors = [f"{'/'.join(map(str, e.path))}: {e.message}"
                      for e in validator.iter_errors(doc)]
            assert not errors, (key, errors)
            experiment = load_experiment(doc)
            (container,) = experiment.spec.trial_template.spec["template"]["spec"]["containers"]
            assert container["image"] == "ghcr.io/kubetune/trainer:0.1.0"
        svhn = docs["svhn-gp.yaml"]["spec"]["trialTemplate"]["spec"]["template"]["spec"]
        (container,) = svhn["containers"]
        assert container["resources"]["limits"] == {"nvidia.com/gpu": gpus}
        assert f"--download={download}" in container["args"]
        assert "--data_dir=/data/svhn" in container["args"]
        assert svhn["volumes"] == [{"name": "svhn",
                                    "persistentVolumeClaim": {"claimName": claim}}]
        digits = docs["digits-cpu.yaml"]["spec"]["trialTemplate"]["spec"]["template"]["spec"]
        assert "nvidia.com/gpu" not in str(digits)  # the smoke test runs anywhere
    assert not [c for c in rendered["no-crds-values"].of_kind("ConfigMap")
                if c["metadata"]["name"].endswith("-examples")]


def test_svhn_cache_claim(rendered: dict[str, Rendered]) -> None:
    assert not rendered["default-values"].of_kind("PersistentVolumeClaim")
    pvc = rendered["gpu-prices-values"].one("PersistentVolumeClaim")
    assert pvc["metadata"]["name"] == "svhn-cache"
    assert pvc["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert pvc["spec"] == {"accessModes": ["ReadWriteMany"], "storageClassName": "nfs-client",
                           "resources": {"requests": {"storage": "4Gi"}}}


def test_notes(rendered: dict[str, Rendered]) -> None:
    default = rendered["default-values"].notes
    assert "every namespace" in default
    assert f"kubectl -n {RELEASE_NAMESPACE} rollout status deployment/{RELEASE}-kubetune" in default
    assert "digits-cpu" in default and "svhn-data" in default
    assert "downloaded into it" in default
    assert "http://kt-kubetune-metrics.kubetune-system.svc:8080/metrics" in default
    assert "team-a, team-b" in rendered["watch-namespaces-values"].notes
    no_crds = rendered["no-crds-values"].notes
    assert "kubectl apply -f crds/" in no_crds and "/metrics" not in no_crds
    assert "must already hold" in rendered["gpu-prices-values"].notes
    assert "ConfigMap kt-kubetune-dashboard" in rendered["monitoring-values"].notes
