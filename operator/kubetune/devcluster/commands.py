"""`dev-cluster up`: run the local cluster in the foreground until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from .cluster import LocalCluster, default_bin_dir

DEFAULT_DIR = Path(".kubetune") / "dev-cluster"


def _up(args: argparse.Namespace) -> int:
    kubeconfig = (args.dir / "kubeconfig").resolve()
    cluster = LocalCluster(
        gpus=args.gpus, node_name=args.node, cpu=args.cpu, memory=args.memory,
        kubeconfig_path=kubeconfig, bin_dir=args.bin_dir,
        keep_state=args.keep_state,
    )
    done = threading.Event()
    # SIGTERM/SIGHUP stop the cluster as Ctrl-C does, so nothing is left behind.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: done.set())
    print("starting the local control plane (etcd, kube-apiserver, controller-manager, "
          "scheduler, node agent)...", flush=True)
    try:
        cluster.start()
    except (FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", flush=True)
        return 1
    try:
        print(f"local cluster up: {cluster.server}, node {cluster.node_name} "
              f"with {args.gpus} nvidia.com/gpu", flush=True)
        print(f"state and component logs: {cluster.state_dir}", flush=True)
        print(f"export KUBECONFIG={kubeconfig}", flush=True)
        print("press Ctrl-C to stop", flush=True)
        while not done.wait(1.0):
            pass
    finally:
        print("stopping the local cluster...", flush=True)
        cluster.stop()
        kubeconfig.unlink(missing_ok=True)
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="kubetune dev-cluster",
                                     description="A local Kubernetes control plane for kubetune.")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start it, print `export KUBECONFIG=...`, run until Ctrl-C")
    up.add_argument("--dir", type=Path, default=DEFAULT_DIR,
                    help=f"where the kubeconfig is written (default: {DEFAULT_DIR})")
    up.add_argument("--gpus", type=int, default=4, help="nvidia.com/gpu on the node (default 4)")
    up.add_argument("--node", default="kubetune-local", help="node name")
    up.add_argument("--cpu", default="16")
    up.add_argument("--memory", default="64Gi")
    up.add_argument("--bin-dir", type=Path, default=None,
                    help=f"control-plane binaries (default: {default_bin_dir()})")
    up.add_argument("--keep-state", action="store_true",
                    help="keep etcd data and component logs after stopping")
    args = parser.parse_args(argv)
    return _up(args)
