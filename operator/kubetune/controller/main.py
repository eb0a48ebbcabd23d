"""``kubetune operator``: run the Kopf operator in this process."""

from __future__ import annotations

import argparse
import asyncio
import logging

import kopf

from kubetune.controller.reconciler import OperatorConfig, parse_gpu_prices


def run_operator(args: argparse.Namespace) -> int:
    from kubetune.controller import handlers

    try:
        gpu_prices = parse_gpu_prices(args.gpu_prices)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    handlers.RUNTIME.config = OperatorConfig(
        default_price=args.default_price,
        gpu_prices=gpu_prices,
        gpu_type_label=args.gpu_type_label,
        finished_jobs=args.finished_jobs,
    )
    try:
        from kubetune.metrics import Metrics
    except ImportError:  # metrics are optional while the module is absent
        Metrics = None  # type: ignore[assignment]
    if Metrics is not None:
        handlers.RUNTIME.metrics = Metrics()
        if args.metrics_port:
            handlers.RUNTIME.metrics.serve(args.metrics_port)
    kopf.configure(verbose=args.verbose)
    if not args.verbose:  # one line per handled Job/Pod event is noise at INFO
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    namespaces = args.namespace or []
    asyncio.run(kopf.operator(
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=f"http://0.0.0.0:{args.health_port}/healthz" if args.health_port else None,
        standalone=True,
    ))
    return 0
