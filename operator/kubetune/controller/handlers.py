"""Kopf handlers: one daemon per TuningExperiment, woken by its Jobs and Pods.

The handlers only schedule work: each pass of :class:`Reconciler` runs in a
worker thread (suggestions fit a GP, which must never block Kopf's event
loop and with it every other experiment).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

import kopf

from kubetune.api.spec import GROUP, PLURAL, VERSION
from kubetune.controller.jobs import LABEL_EXPERIMENT
from kubetune.controller.kube import Kube, load_config
from kubetune.controller.reconciler import OperatorConfig, Reconciler

ACTIVE_INTERVAL = 2.0  # seconds between passes while trials run (events wake it sooner)
IDLE_INTERVAL = 30.0

log = logging.getLogger("kubetune.operator")


@dataclass
class Runtime:
    """What the handlers share; set up by :func:`kubetune.controller.main.run_operator`."""

    config: OperatorConfig = field(default_factory=OperatorConfig)
    metrics: Any = None
    kubeconfig: str | None = None
    reconciler: Reconciler | None = None
    wakeups: dict[tuple[str, str], asyncio.Event] = field(default_factory=dict)

    def get_reconciler(self) -> Reconciler:
        if self.reconciler is None:
            self.reconciler = Reconciler(Kube(load_config(self.kubeconfig)), self.config,
                                         self.metrics)
        return self.reconciler

    def wake(self, namespace: str | None, name: str | None) -> None:
        if namespace and name and (event := self.wakeups.get((namespace, name))) is not None:
            event.set()


RUNTIME = Runtime()


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Kopf's own bookkeeping goes to annotations: the status belongs to kubetune's schema.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="kubetune.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="kubetune.io", key="last-handled-configuration")
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 120
    settings.watching.client_timeout = 150


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=30.0)
async def experiment_daemon(name: str, namespace: str, stopped: kopf.DaemonStopped,
                            **_: Any) -> None:
    """Reconcile one experiment until it is deleted or the operator stops."""
    key = (namespace, name)
    wake = RUNTIME.wakeups.setdefault(key, asyncio.Event())
    try:
        while not stopped:
            wake.clear()
            interval = IDLE_INTERVAL
            try:
                result = await asyncio.to_thread(RUNTIME.get_reconciler().reconcile, namespace, name)
                interval = ACTIVE_INTERVAL if result.active else IDLE_INTERVAL
            except Exception:
                log.exception("%s/%s: reconcile failed; retrying", namespace, name)
                if RUNTIME.metrics is not None:
                    RUNTIME.metrics.reconcile_error(namespace, name)
                interval = ACTIVE_INTERVAL
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=interval)
    finally:
        RUNTIME.wakeups.pop(key, None)


@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
def spec_changed(name: str, namespace: str, **_: Any) -> None:
    RUNTIME.wake(namespace, name)


@kopf.on.event("batch", "v1", "jobs", labels={LABEL_EXPERIMENT: kopf.PRESENT})
def job_event(labels: dict[str, str], namespace: str, **_: Any) -> None:
    RUNTIME.wake(namespace, labels.get(LABEL_EXPERIMENT))


@kopf.on.event("", "v1", "pods", labels={LABEL_EXPERIMENT: kopf.PRESENT})
def pod_event(labels: dict[str, str], namespace: str, **_: Any) -> None:
    RUNTIME.wake(namespace, labels.get(LABEL_EXPERIMENT))
