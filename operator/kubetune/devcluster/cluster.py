"""A real Kubernetes 1.20 control plane on loopback, plus the local node agent.

Why: there is no Docker or kind on the machines that test kubetune, but a real
etcd + kube-apiserver + kube-controller-manager + kube-scheduler run fine as
plain processes. With the node agent standing in for a kubelet, Jobs, the
scheduler's GPU accounting, garbage collection, RBAC and `kubectl logs` all
behave as on a real cluster.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from . import procs
from .kubeapi import KubeAPI
from .node_agent import NodeAgent, NodeResources
from .pki import ClusterPKI

K8S_VERSION = "1.20.2"
SERVICE_CIDR = "10.96.0.0/24"
SERVICE_IP = "10.96.0.1"


def cache_dir() -> Path:
    """Where built binaries live, outside any checkout: $KUBETUNE_CACHE or ~/.cache/kubetune."""
    return Path(os.environ.get("KUBETUNE_CACHE") or Path.home() / ".cache" / "kubetune")


def _cache_bin_dir() -> Path:
    return cache_dir() / f"k8s-{K8S_VERSION}" / "bin"


def default_bin_dir() -> Path:
    """$KUBETUNE_K8S_BIN, else the cache that hack/build-control-plane.sh fills."""
    return Path(os.environ.get("KUBETUNE_K8S_BIN") or _cache_bin_dir())


@dataclass(frozen=True)
class Binaries:
    """Paths of the programs the cluster runs."""

    etcd: Path
    apiserver: Path
    controller_manager: Path
    scheduler: Path
    kubectl: Path | None

    @classmethod
    def find(cls, bin_dir: Path | None = None) -> Binaries:
        """Locate the binaries; FileNotFoundError says what is missing and how to get it."""
        bin_dir = bin_dir or default_bin_dir()
        found = {n: bin_dir / n for n in
                 ("kube-apiserver", "kube-controller-manager", "kube-scheduler")}
        etcd = os.environ.get("KUBETUNE_ETCD") or shutil.which("etcd") or "/usr/bin/etcd"
        found["etcd"] = Path(etcd)
        missing = [str(p) for p in found.values() if not os.access(p, os.X_OK)]
        if not missing and bin_dir == _cache_bin_dir() and not (bin_dir / ".build-id").exists():
            # Built before the reflect2 fix: that apiserver crashes on custom resources.
            missing.append(f"{bin_dir}/.build-id (stale build)")
        if missing:
            raise FileNotFoundError(
                "local control plane binaries missing: " + ", ".join(missing)
                + " (run `make control-plane`, i.e. hack/install-system-deps.sh and "
                "hack/build-control-plane.sh)")
        kubectl = bin_dir / "kubectl"
        which = shutil.which("kubectl")
        return cls(found["etcd"], found["kube-apiserver"], found["kube-controller-manager"],
                   found["kube-scheduler"],
                   kubectl if os.access(kubectl, os.X_OK) else Path(which) if which else None)


class KubectlError(subprocess.CalledProcessError):
    """A failed kubectl run whose message includes kubectl's stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstderr: {(self.stderr or '').strip()}"


def _ephemeral_range() -> tuple[int, int]:
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A free loopback port *outside* the ephemeral range.

    Why: a port found by binding to 0 comes from the ephemeral range, where any
    outgoing connection (the apiserver's to etcd, say) may take it before the
    component binds it. Random choice also keeps concurrent clusters apart.
    """
    lo, hi = _ephemeral_range()
    pool = [*range(10000, min(lo, 65536)), *range(max(hi + 1, 10000), 65536)]
    for _ in range(200):
        port = random.choice(pool)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_kubeconfig(path: Path, server: str, ca_cert: Path, user: str, token: str) -> Path:
    """A self-contained kubeconfig (CA embedded, token auth) for kubectl, clients and Kopf."""
    import base64

    ca_data = base64.b64encode(ca_cert.read_bytes()).decode()
    doc = {
        "apiVersion": "v1", "kind": "Config", "current-context": "kubetune-local",
        "clusters": [{"name": "kubetune-local", "cluster": {
            "server": server, "certificate-authority-data": ca_data}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "kubetune-local", "context": {
            "cluster": "kubetune-local", "user": user, "namespace": "default"}}],
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    path.chmod(0o600)
    return path


class LocalCluster:
    """etcd, kube-apiserver, kube-controller-manager, kube-scheduler and a node agent.

    Use as a context manager, or call start() and stop(). stop() ends every
    process start() began, also after a failure half-way.
    """

    def __init__(
        self,
        *,
        gpus: int = 4,
        node_name: str = "kubetune-local",
        cpu: str = "16",
        memory: str = "64Gi",
        state_dir: str | Path | None = None,
        kubeconfig_path: str | Path | None = None,
        bin_dir: str | Path | None = None,
        node_agent: bool = True,
        keep_state: bool | None = None,
        start_timeout: float = 90.0,
    ) -> None:
        self.node_name = node_name
        self.resources = NodeResources(gpus=gpus, cpu=cpu, memory=memory)
        self._state_arg = Path(state_dir) if state_dir else None
        self._kubeconfig_arg = Path(kubeconfig_path) if kubeconfig_path else None
        self._bin_dir = Path(bin_dir) if bin_dir else None
        self._run_agent = node_agent
        if keep_state is None:
            keep_state = os.environ.get("KUBETUNE_KEEP_CLUSTER_STATE", "") not in ("", "0")
        self.keep_state = keep_state
        self.start_timeout = start_timeout
        self.state_dir: Path = Path()
        self.kubeconfig: Path = Path()
        self.server = ""
        self.binaries: Binaries | None = None
        self.agent: NodeAgent | None = None
        self.pki: ClusterPKI | None = None
        self.logs: dict[str, Path] = {}
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._tokens: dict[str, str] = {}
        self._started = False

    # ---- public API ------------------------------------------------------------

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> LocalCluster:
        """Bring everything up; on failure stop what started and raise with log paths."""
        if self._started:
            return self
        self._started = True
        self.binaries = Binaries.find(self._bin_dir)
        if self._state_arg:
            self._state_arg.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, 4):
            self.state_dir = self._state_arg or Path(tempfile.mkdtemp(prefix="kubetune-cluster-"))
            try:
                self._start_all()
                return self
            except BaseException as e:
                retry = isinstance(e, Exception) and attempt < 3 and self._port_clash()
                self.stop(keep_state=not retry)  # keep the logs of a real failure
                if retry:
                    self._started = True
                    self.logs = {}
                    if self._state_arg:  # ours to reuse: start over in it
                        shutil.rmtree(self._state_arg, ignore_errors=True)
                        self._state_arg.mkdir(parents=True)
                    continue
                raise RuntimeError(
                    f"local cluster failed to start: {e}\n{self.describe_logs()}") from e
        raise AssertionError("unreachable")

    def stop(self, *, keep_state: bool | None = None) -> None:
        """Stop the agent, then every component in reverse start order."""
        if self.agent is not None:
            with contextlib.suppress(Exception):
                self.agent.stop()
            self.agent = None
        while self._procs:
            _, proc = self._procs.pop()
            procs.terminate(proc, 10.0)
        keep = self.keep_state if keep_state is None else keep_state
        if self._started and not keep and self._state_arg is None and self.state_dir != Path():
            shutil.rmtree(self.state_dir, ignore_errors=True)
        self._started = False

    def api_client(self) -> Any:
        """A `kubernetes.client.ApiClient` authenticated as the cluster admin."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def kube(self) -> KubeAPI:
        """A plain-JSON client (see kubeapi) authenticated as the cluster admin."""
        return KubeAPI(self.kubeconfig)

    def env(self) -> dict[str, str]:
        """os.environ with KUBECONFIG pointing at this cluster (for subprocesses)."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def kubectl(self, *args: str, check: bool = True,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run kubectl (the cached 1.20 one if built, else PATH's) against this cluster."""
        assert self.binaries is not None
        if self.binaries.kubectl is None:
            raise FileNotFoundError("kubectl not found (build it or put one on PATH)")
        proc = subprocess.run(
            [str(self.binaries.kubectl), "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True, text=True, check=False, timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise KubectlError(proc.returncode, proc.args, proc.stdout, proc.stderr)
        return proc

    def check_alive(self) -> None:
        """Raise (with log tails) if a component died after start, e.g. an apiserver crash."""
        dead = [f"{n} (exit {p.returncode})" for n, p in self._procs if p.poll() is not None]
        if dead:
            raise RuntimeError(f"local cluster component died: {', '.join(dead)}\n"
                               + self.describe_logs())

    def token(self, user: str = "admin") -> str:
        return self._tokens[user]

    def describe_logs(self) -> str:
        lines = ["component logs:"]
        for name, path in self.logs.items():
            lines.append(f"  {name}: {path}")
            with contextlib.suppress(OSError):
                tail = path.read_text(errors="replace").splitlines()[-15:]
                lines.extend(f"    | {t}" for t in tail)
        return "\n".join(lines)

    # ---- start-up --------------------------------------------------------------

    def _start_all(self) -> None:
        assert self.binaries is not None
        state = self.state_dir
        self.pki = pki = ClusterPKI.create(state / "pki", SERVICE_IP)
        ports = {n: free_port() for n in ("etcd", "peer", "apiserver", "cm", "sched")}
        self.server = f"https://127.0.0.1:{ports['apiserver']}"
        self._write_auth(state, pki)

        etcd_url = f"http://127.0.0.1:{ports['etcd']}"
        peer_url = f"http://127.0.0.1:{ports['peer']}"
        self._spawn("etcd", [
            self.binaries.etcd, "--name", "kubetune", "--data-dir", state / "etcd",
            "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
            "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
            "--initial-cluster", f"kubetune={peer_url}", "--log-level", "warn",
        ])
        self._wait("etcd", lambda: b"true" in _http_get(etcd_url + "/health"))

        self._spawn("kube-apiserver", [
            self.binaries.apiserver,
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--secure-port={ports['apiserver']}", "--insecure-port=0",
            f"--etcd-servers={etcd_url}",
            f"--tls-cert-file={pki.apiserver_cert}", f"--tls-private-key-file={pki.apiserver_key}",
            f"--client-ca-file={pki.ca_cert}", f"--token-auth-file={state / 'tokens.csv'}",
            "--authorization-mode=Node,RBAC", "--anonymous-auth=false",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki.sa_public}",
            f"--service-account-signing-key-file={pki.sa_private}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--kubelet-preferred-address-types=InternalIP",
            f"--kubelet-certificate-authority={pki.ca_cert}",
            f"--kubelet-client-certificate={pki.kubelet_client_cert}",
            f"--kubelet-client-key={pki.kubelet_client_key}",
            # The `kubernetes` Service cannot point at a loopback address.
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true", "--profiling=false", "--v=1",
        ])
        self._wait("kube-apiserver", lambda: _http_get(
            self.server + "/readyz", token=self._tokens["admin"], ca=pki.ca_cert) == b"ok")

        common = ["--bind-address=127.0.0.1", "--port=0", "--leader-elect=false",
                  "--profiling=false", "--v=1"]
        self._spawn("kube-controller-manager", [
            self.binaries.controller_manager, *common,
            f"--kubeconfig={state / 'controller-manager.kubeconfig'}",
            f"--secure-port={ports['cm']}", f"--cert-dir={state / 'cm-certs'}",
            f"--service-account-private-key-file={pki.sa_private}",
            f"--root-ca-file={pki.ca_cert}", "--use-service-account-credentials=true",
            "--controllers=*,-nodeipam,-nodelifecycle",
            f"--cluster-signing-cert-file={pki.ca_cert}",
            f"--cluster-signing-key-file={pki.ca_key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
        ])
        self._spawn("kube-scheduler", [
            self.binaries.scheduler, *common,
            f"--kubeconfig={state / 'scheduler.kubeconfig'}",
            f"--secure-port={ports['sched']}", f"--cert-dir={state / 'sched-certs'}",
        ])
        for name in ("kube-controller-manager", "kube-scheduler"):
            port = ports["cm" if name == "kube-controller-manager" else "sched"]
            self._wait(name, lambda p=port: _http_get(f"https://127.0.0.1:{p}/healthz") == b"ok")

        if self._run_agent:
            self.agent = NodeAgent(
                state / "node-agent.kubeconfig", self.node_name, resources=self.resources,
                root_dir=state / "node", tls_cert=pki.node_cert, tls_key=pki.node_key,
                client_ca=pki.ca_cert)
            self.agent.start()
        self._wait("default service account token", self._default_sa_ready)
        if self._kubeconfig_arg:
            self._kubeconfig_arg.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.kubeconfig, self._kubeconfig_arg)
            self._kubeconfig_arg.chmod(0o600)
            self.kubeconfig = self._kubeconfig_arg

    def _write_auth(self, state: Path, pki: ClusterPKI) -> None:
        """Static tokens: admin (system:masters), each component, the node agent."""
        users = {
            "admin": ("kubetune-admin", "system:masters"),
            "controller-manager": ("system:kube-controller-manager", ""),
            "scheduler": ("system:kube-scheduler", ""),
            "node-agent": (f"system:node:{self.node_name}", "system:nodes"),
        }
        rows = []
        for i, (key, (user, groups)) in enumerate(users.items()):
            token = self._tokens[key] = secrets.token_hex(24)
            rows.append(f'{token},{user},uid-{i},"{groups}"' if groups else f"{token},{user},uid-{i}")
        tokens = state / "tokens.csv"
        tokens.write_text("\n".join(rows) + "\n")
        tokens.chmod(0o600)
        for key, (user, _) in users.items():
            write_kubeconfig(state / f"{key}.kubeconfig", self.server, pki.ca_cert, user,
                             self._tokens[key])
        self.kubeconfig = state / "admin.kubeconfig"

    def _port_clash(self) -> bool:
        """Did a component fail because another process took its port?"""
        for path in self.logs.values():
            with contextlib.suppress(OSError):
                if "address already in use" in path.read_text(errors="replace"):
                    return True
        return False

    def _spawn(self, name: str, argv: list[Any]) -> None:
        log = self.state_dir / "logs" / f"{name}.log"
        self.logs[name] = log
        self._procs.append((name, procs.spawn(argv, log, cwd=self.state_dir)))

    def _wait(self, what: str, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self.start_timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            for name, proc in self._procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode} "
                                       f"(log: {self.logs[name]})")
            try:
                if ready():
                    return
            except Exception as e:  # not up yet
                last = e
            time.sleep(0.25)
        raise TimeoutError(f"{what} not ready after {self.start_timeout:.0f}s (last: {last})")

    def _default_sa_ready(self) -> bool:
        """Pods are refused until the default ServiceAccount has its token secret."""
        api = self.kube()
        try:
            sa = api.get("/api/v1/namespaces/default/serviceaccounts/default")
            return bool(sa.get("secrets"))
        finally:
            api.close()


def _http_get(url: str, *, token: str | None = None, ca: Path | None = None) -> bytes:
    if url.startswith("https"):
        ctx = ssl.create_default_context(cafile=str(ca)) if ca else ssl._create_unverified_context()
    else:
        ctx = None
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(req, timeout=5, context=ctx) as resp:
        return resp.read().strip()
