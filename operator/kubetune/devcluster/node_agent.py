"""The local node agent: a kubelet stand-in that runs pods as local processes.

It registers a Node with GPU capacity, watches the pods the real scheduler binds
to it, runs each pod's first container `command + args` (no shell) as a process,
reports pod status through pods/status exactly as a kubelet does, finalizes
graceful deletions, serves `kubectl logs`, and keeps the Node's Ready heartbeat
fresh. Test and development infrastructure only: the operator never imports it.

Run standalone: python -m kubetune.devcluster.node_agent --kubeconfig K --node N
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import platform
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import podrun, procs
from .kubeapi import MERGE_PATCH, STRATEGIC_PATCH, ApiException, KubeAPI
from .logserver import LogServer

log = logging.getLogger("kubetune.devcluster.node_agent")

HEARTBEAT_S = 20.0
WATCH_TIMEOUT_S = 60
CONDITION_TYPES = {
    "Ready": ("True", "KubeletReady", "kubetune node agent is posting ready status"),
    "MemoryPressure": ("False", "KubeletHasSufficientMemory", "no memory pressure"),
    "DiskPressure": ("False", "KubeletHasNoDiskPressure", "no disk pressure"),
    "PIDPressure": ("False", "KubeletHasSufficientPID", "sufficient PIDs"),
}


@dataclass
class NodeResources:
    """What the Node advertises; the scheduler places pods against it."""

    gpus: int = 4
    cpu: str = "16"
    memory: str = "64Gi"
    pods: int = 110

    def as_quantities(self) -> dict[str, str]:
        return {"cpu": self.cpu, "memory": self.memory, "pods": str(self.pods),
                "nvidia.com/gpu": str(self.gpus), "ephemeral-storage": "100Gi"}


@dataclass
class PodRun:
    """One pod this agent started (tracked by uid: a uid is never run twice)."""

    uid: str
    namespace: str
    name: str
    container: str
    workdir: Path
    pod: dict[str, Any]
    proc: subprocess.Popen[bytes] | None = None
    started_at: str = ""
    deleting: bool = False
    deleted: bool = False
    done: bool = False
    finalized: bool = False
    kill_timer: threading.Timer | None = None
    supervisor: threading.Thread | None = field(default=None, repr=False)

    @property
    def log_path(self) -> Path:
        return self.workdir / "container.log"

    @property
    def term_path(self) -> Path:
        return self.workdir / "termination-log"

    @property
    def container_id(self) -> str:
        return f"kubetune-local://{self.proc.pid if self.proc else 0}"

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class NodeAgent:
    """Kubelet stand-in for one Node; `start()` runs it in threads, `stop()` ends it."""

    def __init__(
        self,
        kubeconfig: str | Path,
        node_name: str = "kubetune-local",
        *,
        resources: NodeResources | None = None,
        root_dir: Path | None = None,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        client_ca: Path | None = None,
    ) -> None:
        self.api = KubeAPI(kubeconfig, user_agent=f"kubetune-node-agent/{node_name}")
        self.node_name = node_name
        self.resources = resources or NodeResources()
        self._own_root = root_dir is None
        self.root = Path(root_dir or tempfile.mkdtemp(prefix="kubetune-node-"))
        self._tls = (tls_cert, tls_key, client_ca)
        self._runs: dict[str, PodRun] = {}
        self._by_name: dict[tuple[str, str], PodRun] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._log_server: LogServer | None = None
        self._ready_since = podrun.now()

    # ---- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        """Serve logs, register the Node, then watch pods in background threads."""
        try:
            self._start_log_server()
            self.register_node()
            self._spawn_thread(self._watch_loop, "kubetune-node-watch")
            self._spawn_thread(self._heartbeat_loop, "kubetune-node-heartbeat")
        except BaseException:
            self.stop()
            raise

    def run_forever(self) -> None:
        """Standalone mode: run until SIGINT/SIGTERM."""
        signal.signal(signal.SIGTERM, lambda *_: self._stop.set())
        self.start()
        try:
            while not self._stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def stop(self, grace: float = 5.0) -> None:
        """Kill every pod process (reporting it), then end all threads."""
        with self._lock:
            runs = [r for r in self._runs.values() if r.proc is not None]
        for run in runs:
            assert run.proc is not None
            procs.terminate(run.proc, grace)
        for run in runs:
            if run.supervisor is not None:
                run.supervisor.join(10)
        self._stop.set()
        self.api.close_streams()
        for t in self._threads:
            t.join(10)
        if self._log_server is not None:
            self._log_server.stop()
            self._log_server = None
        self.api.close()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def _spawn_thread(self, target: Any, name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    # ---- node ------------------------------------------------------------------

    def _start_log_server(self) -> None:
        cert, key, client_ca = self._tls
        if cert is None or key is None:
            from .pki import make_ca, make_signed  # standalone without the cluster's PKI

            pki_dir = self.root / "pki"
            pki_dir.mkdir(parents=True, exist_ok=True)
            cert, key = make_signed(pki_dir, "node-agent", make_ca(pki_dir), "node-agent",
                                    ips=("127.0.0.1",), dns=("localhost",))
        self._log_server = LogServer(self._resolve_log, cert, key, client_ca)
        self._log_server.start()

    def _node_status(self) -> dict[str, Any]:
        assert self._log_server is not None
        quantities = self.resources.as_quantities()
        arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
        return {
            "capacity": quantities,
            "allocatable": quantities,
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                          {"type": "Hostname", "address": self.node_name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self._log_server.port}},
            "nodeInfo": {
                "machineID": "", "systemUUID": "", "bootID": "", "kernelVersion":
                platform.release(), "osImage": "kubetune local node agent",
                "containerRuntimeVersion": "kubetune-local://0.1",
                "kubeletVersion": "v1.20.2", "kubeProxyVersion": "v1.20.2",
                "operatingSystem": "linux", "architecture": arch,
            },
            "conditions": self._conditions(),
        }

    def _conditions(self) -> list[dict[str, Any]]:
        beat = podrun.now()
        return [{"type": t, "status": s, "reason": r, "message": m,
                 "lastHeartbeatTime": beat, "lastTransitionTime": self._ready_since}
                for t, (s, r, m) in CONDITION_TYPES.items()]

    def register_node(self) -> None:
        """Create (or refresh) the Node, then drop the not-ready taint admission adds.

        TaintNodesByCondition taints every new Node `not-ready`; the node lifecycle
        controller that would lift it is disabled in the local cluster.
        """
        arch = self._node_status()["nodeInfo"]["architecture"]
        body = {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": self.node_name, "labels": {
                "kubernetes.io/hostname": self.node_name, "kubernetes.io/os": "linux",
                "kubernetes.io/arch": arch, "kubetune.io/local-node": "true"}},
        }
        try:
            self.api.request("POST", "/api/v1/nodes", body=body)
        except ApiException as e:
            if e.status != 409:
                raise
        path = f"/api/v1/nodes/{self.node_name}"
        self.api.request("PATCH", path + "/status", body={"status": self._node_status()},
                         content_type=STRATEGIC_PATCH)
        node = self.api.get(path)
        taints = node.get("spec", {}).get("taints") or []
        kept = [t for t in taints if not t.get("key", "").startswith("node.kubernetes.io/")]
        if len(kept) != len(taints):
            self.api.request("PATCH", path, body={"spec": {"taints": kept or None}},
                             content_type=MERGE_PATCH)

    def _heartbeat_loop(self) -> None:
        """Refresh the Ready condition and the node Lease, as a kubelet does."""
        path = f"/api/v1/nodes/{self.node_name}/status"
        self._renew_lease()
        while not self._stop.wait(HEARTBEAT_S):
            try:
                self.api.request("PATCH", path, body={"status": {"conditions": self._conditions()}},
                                 content_type=STRATEGIC_PATCH, timeout=10)
                self._renew_lease()
            except Exception as e:  # keep beating through API hiccups
                log.warning("node heartbeat failed: %s", e)

    def _renew_lease(self) -> None:
        leases = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
        renew = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        spec = {"holderIdentity": self.node_name, "leaseDurationSeconds": 40,
                "renewTime": renew}
        try:
            self.api.request("PATCH", f"{leases}/{self.node_name}", body={"spec": spec},
                             content_type=MERGE_PATCH, timeout=10)
        except ApiException as e:
            if e.status != 404:
                raise
            self.api.request("POST", leases, timeout=10, body={
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.node_name}, "spec": spec})

    # ---- pods ------------------------------------------------------------------

    def _watch_loop(self) -> None:
        """List, then watch from that version; on any error re-list and re-watch."""
        selector = f"spec.nodeName={self.node_name}"
        while not self._stop.is_set():
            try:
                listing = self.api.get("/api/v1/pods", fieldSelector=selector)
                for pod in listing.get("items", []):
                    self._on_pod("ADDED", pod)
                rv = listing["metadata"]["resourceVersion"]
                while not self._stop.is_set():
                    for event in self.api.watch(
                        "/api/v1/pods", read_timeout=WATCH_TIMEOUT_S + 15,
                        fieldSelector=selector, resourceVersion=rv,
                        timeoutSeconds=WATCH_TIMEOUT_S, allowWatchBookmarks="true",
                    ):
                        kind, obj = event.get("type"), event.get("object") or {}
                        if kind == "ERROR":
                            raise ApiException(status=obj.get("code", 500),
                                               reason=obj.get("message", "watch error"))
                        rv = obj.get("metadata", {}).get("resourceVersion", rv)
                        if kind != "BOOKMARK":
                            self._on_pod(kind, obj)
            except Exception as e:
                if self._stop.is_set():
                    return
                log.warning("pod watch interrupted (%s); re-listing", e)
                self._stop.wait(1.0)

    def _on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        deleting = meta.get("deletionTimestamp") is not None
        if kind == "DELETED":
            self._on_deleted(uid)
            return
        action = None
        with self._lock:
            run = self._runs.get(uid)
            if run is None:
                if deleting:
                    action = "finalize"  # never started here: nothing to stop
                elif self._owned_elsewhere(pod):
                    self._runs[uid] = PodRun(uid, meta["namespace"], meta["name"], "", Path(),
                                             pod, done=True)
                    action = "lost"
                else:
                    run = self._new_run(pod)
                    action = "start"
            elif deleting and not run.deleting:
                run.deleting = True
                if not run.done:
                    self._begin_kill(run, pod)  # the supervisor finalizes after the exit
                elif not run.finalized:
                    run.finalized = True
                    action = "finalize"
        if action == "finalize":
            self._finalize(meta["namespace"], meta["name"], uid)
        elif action == "lost":
            self._report_lost(pod)
        elif action == "start" and run is not None:
            self._start_pod(run)

    def _on_deleted(self, uid: str) -> None:
        """The pod object is gone: kill a process still running (force deletion), drop files."""
        with self._lock:
            run = self._runs.get(uid)
            if run is None or run.deleted:
                return
            run.deleting = run.finalized = run.deleted = True
            if self._by_name.get((run.namespace, run.name)) is run:
                del self._by_name[(run.namespace, run.name)]
            if run.proc is not None:
                procs.signal_group(run.proc, signal.SIGKILL)
            remove = run.done or run.proc is None
        if remove:
            self._remove_files(run)

    def _remove_files(self, run: PodRun) -> None:
        if run.workdir != Path() and run.workdir.is_relative_to(self.root):
            shutil.rmtree(run.workdir, ignore_errors=True)

    def _owned_elsewhere(self, pod: dict[str, Any]) -> bool:
        """Already terminal, or started by a previous agent whose process is gone."""
        status = pod.get("status") or {}
        return status.get("phase") in ("Succeeded", "Failed", "Running") or bool(
            status.get("containerStatuses"))

    def _new_run(self, pod: dict[str, Any]) -> PodRun:
        meta = pod["metadata"]
        workdir = self.root / "pods" / meta["uid"]
        workdir.mkdir(parents=True, exist_ok=True)
        run = PodRun(meta["uid"], meta["namespace"], meta["name"],
                     podrun.first_container(pod)["name"], workdir, pod)
        self._runs[run.uid] = run
        self._by_name[(run.namespace, run.name)] = run
        return run

    def _start_pod(self, run: PodRun) -> None:
        """Start the process and report Running; a supervisor thread reports the exit."""
        pod = run.pod
        env = podrun.container_env(pod, run.term_path)
        run.started_at = podrun.now()
        try:
            argv = podrun.container_argv(pod, env)
            cwd = Path(podrun.first_container(pod).get("workingDir") or run.workdir)
            run.proc = procs.spawn(argv, run.log_path, env=env,
                                   cwd=cwd if cwd.is_dir() else run.workdir)
        except (OSError, ValueError) as e:
            run.log_path.write_text(f"{e}\n")
            self._patch_status(run, podrun.terminated_status(
                pod, 128, str(e), run.started_at, podrun.now(), run.container_id,
                reason="ContainerCannotRun"))
            self._finish(run)
            return
        log.info("started pod %s/%s as pid %d", run.namespace, run.name, run.proc.pid)
        self._patch_status(run, podrun.running_status(pod, run.started_at, run.container_id))
        run.supervisor = threading.Thread(target=self._supervise, args=(run,),
                                          name=f"pod-{run.name}", daemon=True)
        run.supervisor.start()

    def _supervise(self, run: PodRun) -> None:
        assert run.proc is not None
        code = podrun.exit_code(run.proc.wait())
        if run.kill_timer is not None:
            run.kill_timer.cancel()
        finished = podrun.now()
        message = podrun.termination_message(run.pod, run.term_path, run.log_path, code)
        log.info("pod %s/%s exited with %d", run.namespace, run.name, code)
        self._patch_status(run, podrun.terminated_status(
            run.pod, code, message, run.started_at, finished, run.container_id))
        self._finish(run)

    def _finish(self, run: PodRun) -> None:
        with self._lock:
            run.done = True
            finalize = run.deleting and not run.finalized
            run.finalized = run.finalized or finalize
            remove = run.deleted
        if finalize:
            self._finalize(run.namespace, run.name, run.uid)
        if remove:
            self._remove_files(run)

    def _begin_kill(self, run: PodRun, pod: dict[str, Any]) -> None:
        """Graceful deletion: SIGTERM now, SIGKILL when the grace period is over."""
        meta, spec = pod["metadata"], pod["spec"]
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", 30)
        if run.proc is None:
            return
        procs.signal_group(run.proc, signal.SIGTERM)
        run.kill_timer = threading.Timer(max(float(grace), 1.0), procs.signal_group,
                                         args=(run.proc, signal.SIGKILL))
        run.kill_timer.daemon = True
        run.kill_timer.start()

    def _finalize(self, namespace: str, name: str, uid: str) -> None:
        """Remove the pod object, as a kubelet does once its containers are gone."""
        try:
            self.api.request(
                "DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}",
                body={"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
                      "preconditions": {"uid": uid}})
        except ApiException as e:
            if e.status not in (404, 409):
                log.warning("finalizing pod %s/%s failed: %s", namespace, name, e)
        except Exception as e:
            log.warning("finalizing pod %s/%s failed: %s", namespace, name, e)

    def _report_lost(self, pod: dict[str, Any]) -> None:
        """A pod marked Running by a previous agent: its process is gone, so it failed."""
        if (pod.get("status") or {}).get("phase") != "Running":
            return
        at = podrun.now()
        started = (pod.get("status") or {}).get("startTime") or at
        body = podrun.terminated_status(pod, 137, "the node agent restarted; process lost",
                                        started, at, "kubetune-local://0")
        run = PodRun(pod["metadata"]["uid"], pod["metadata"]["namespace"],
                     pod["metadata"]["name"], "", Path(), pod)
        self._patch_status(run, body)

    def _patch_status(self, run: PodRun, body: dict[str, Any]) -> None:
        path = f"/api/v1/namespaces/{run.namespace}/pods/{run.name}/status"
        for attempt in range(5):
            try:
                self.api.request("PATCH", path, body=body, content_type=STRATEGIC_PATCH)
                return
            except ApiException as e:
                if e.status == 404:
                    return  # already gone
                log.warning("pod status update for %s/%s failed: %s", run.namespace,
                            run.name, e)
            except Exception as e:
                log.warning("pod status update for %s/%s failed: %s", run.namespace,
                            run.name, e)
            time.sleep(0.5 * (attempt + 1))

    def _resolve_log(self, namespace: str, pod: str, container: str) -> Any:
        with self._lock:
            run = self._by_name.get((namespace, pod))
        if run is None or run.container != container or not run.workdir.is_dir():
            return None
        return run.log_path, run.running

    @property
    def pod_processes(self) -> dict[str, subprocess.Popen[bytes]]:
        """uid -> process of every pod started (for tests)."""
        with self._lock:
            return {uid: r.proc for uid, r in self._runs.items() if r.proc is not None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubetune.devcluster.node_agent",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--node", default="kubetune-local")
    parser.add_argument("--gpus", type=int, default=4)
    parser.add_argument("--cpu", default="16")
    parser.add_argument("--memory", default="64Gi")
    parser.add_argument("--root-dir", type=Path, help="pod logs and files (default: a temp dir)")
    parser.add_argument("--tls-cert", type=Path, help="log server cert (default: self-signed)")
    parser.add_argument("--tls-key", type=Path)
    parser.add_argument("--client-ca", type=Path, help="require API server client certs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    agent = NodeAgent(
        args.kubeconfig, args.node,
        resources=NodeResources(gpus=args.gpus, cpu=args.cpu, memory=args.memory),
        root_dir=args.root_dir, tls_cert=args.tls_cert, tls_key=args.tls_key,
        client_ca=args.client_ca,
    )
    with contextlib.suppress(KeyboardInterrupt):
        agent.run_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
