"""``boson run <service>`` and ``boson run all``: the services as processes.

One service runs in this process (``boson run scheduler``). ``boson run all``
starts every service plus ``--executors N`` local executors as child
processes (``python -m boson_services.<name>``), forwards SIGTERM/SIGINT to them so
they drain, and exits when they have — the same processes a container
fleet runs, on one machine.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from boson_services.balancer.app import create as create_balancer
from boson_services.balancer.settings import BalancerSettings
from boson_services.executor.app import create as create_executor
from boson_services.executor.settings import ExecutorSettings
from boson_services.monitor.app import create as create_monitor
from boson_services.monitor.settings import MonitorSettings
from boson_services.scheduler.app import create as create_scheduler
from boson_services.scheduler.settings import SchedulerSettings
from boson_services.transfer.app import create as create_transfer
from boson_services.transfer.settings import TransferSettings
from boson_shared.runtime.main import main as serve_main
from boson_shared.scheduling.scores import STRATEGIES
from boson_shared.settings import BosonSettings

SERVICES: dict[str, tuple[type[BosonSettings], Callable[..., Any]]] = {
    "monitor": (MonitorSettings, create_monitor),
    "scheduler": (SchedulerSettings, create_scheduler),
    "balancer": (BalancerSettings, create_balancer),
    "executor": (ExecutorSettings, create_executor),
    "transfer": (TransferSettings, create_transfer),
}
"""Every service ``boson run`` knows, with its settings class and factory."""

_STOP_GRACE_S = 60.0
DEFAULT_DASHBOARD_PORT = 8470
"""Where ``boson run all`` serves the dashboard unless told otherwise."""


def register_service(
    name: str, settings_cls: type[BosonSettings], factory: Callable[..., Any]
) -> None:
    SERVICES[name] = (settings_cls, factory)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a service (or all of them) against a broker",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("service", choices=[*SERVICES, "all"])
    parser.add_argument("--broker", help="amqp://user:pass@host:5672/ (default BOSON_BROKER_URL)")
    parser.add_argument("--namespace", help="prefix of every exchange and queue")
    parser.add_argument("--health-port", type=int, help="serve GET /health on this port")
    monitor = parser.add_argument_group("monitor")
    monitor.add_argument(
        "--dashboard-port",
        type=int,
        help=f"serve the web dashboard on this port (run all: {DEFAULT_DASHBOARD_PORT}; 0: any)",
    )
    executor = parser.add_argument_group("executor")
    executor.add_argument("--node-id")
    executor.add_argument("--slots", type=int)
    executor.add_argument("--cpu", type=float, help="capacity in demand units")
    executor.add_argument("--memory", type=float, help="capacity in demand units")
    executor.add_argument("--gpu", type=float, help="capacity in demand units")
    executor.add_argument(
        "--handler-module",
        action="append",
        dest="handler_modules",
        help="module with @handler functions (repeatable)",
    )
    scheduler = parser.add_argument_group("scheduler")
    scheduler.add_argument("--strategy", choices=STRATEGIES)
    everything = parser.add_argument_group("run all")
    everything.add_argument("--executors", type=int, default=2, help="local executors (all)")
    parser.set_defaults(func=run)


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Settings given as flags (they win over ``BOSON_`` variables)."""
    mapping = {
        "broker": "broker_url",
        "namespace": "namespace",
        "health_port": "health_port",
        "dashboard_port": "dashboard_port",
        "node_id": "node_id",
        "slots": "slots",
        "cpu": "cpu",
        "memory": "memory",
        "gpu": "gpu",
        "handler_modules": "handler_modules",
        "strategy": "strategy",
    }
    return {
        field: getattr(args, flag)
        for flag, field in mapping.items()
        if getattr(args, flag, None) is not None
    }


def run(args: argparse.Namespace) -> int:
    if args.service == "all":
        return run_all(args)
    settings_cls, factory = SERVICES[args.service]
    values = {
        key: value for key, value in overrides(args).items() if key in settings_cls.model_fields
    }
    settings = settings_cls(**values)
    return serve_main(factory, settings, args.service)


def child_command(service: str, args: argparse.Namespace, extra: list[str]) -> list[str]:
    command = [sys.executable, "-m", "boson", "run", service]
    for flag in ("broker", "namespace", "strategy"):
        value = getattr(args, flag, None)
        if value is not None and not (flag == "strategy" and service != "scheduler"):
            command += [f"--{flag.replace('_', '-')}", str(value)]
    return command + extra


def run_all(args: argparse.Namespace) -> int:
    """Every service plus N executors as child processes; drain them on SIGTERM."""
    plan: list[list[str]] = [
        child_command(name, args, []) for name in SERVICES if name != "executor"
    ]
    for number in range(1, args.executors + 1):
        extra = ["--node-id", f"{args.node_id or 'local'}-{number}"]
        for flag in ("slots", "cpu", "memory", "gpu"):
            value = getattr(args, flag, None)
            if value is not None:
                extra += [f"--{flag}", str(value)]
        for module in args.handler_modules or ():
            extra += ["--handler-module", module]
        plan.append(child_command("executor", args, extra))
    base_port = args.health_port if args.health_port is not None else BosonSettings().health_port
    env = {k: v for k, v in os.environ.items() if k != "BOSON_HEALTH_PORT"}
    if base_port is not None:
        # One port each: children of one machine cannot share the given port.
        for offset, command in enumerate(plan):
            command += ["--health-port", str(base_port + offset)]
    dashboard = MonitorSettings()
    port = args.dashboard_port
    if port is None:
        port = dashboard.dashboard_port
    if port is None:
        port = DEFAULT_DASHBOARD_PORT
    for command in plan:
        if command[4] == "monitor":
            command += ["--dashboard-port", str(port)]
    env.pop("BOSON_DASHBOARD_PORT", None)
    children = [subprocess.Popen(command, env=env) for command in plan]
    host = dashboard.dashboard_host
    where = f"http://{f'[{host}]' if ':' in host else host}:{port}/" if port else "(see its log)"
    print(f"boson run all: dashboard at {where}", flush=True)
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    status = 0
    while any(child.poll() is None for child in children):
        for command, child in zip(plan, children, strict=True):
            code = child.poll()
            if code not in (None, 0) and not stopping:
                print(f"boson run all: {' '.join(command[3:5])} exited with {code}; stopping")
                stop(signal.SIGTERM, None)
                status = code or 1
        time.sleep(0.2)
    deadline = time.monotonic() + _STOP_GRACE_S
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
    return status


__all__ = ["SERVICES", "overrides", "register", "register_service", "run"]
