"""``boson run <service>`` and ``boson run all``: the services as processes.

One service runs in this process (``boson run scheduler``). ``boson run all``
starts every service plus ``--executors N`` local executors as child
processes — the same processes a container fleet runs, on one machine — and
supervises them:

* a child that dies is restarted after a pause (1 s, doubling up to 30 s)
  while the others carry on; work its executor held is redelivered;
* a child that crashes 5 times within 60 s stops everything, with a message;
* SIGTERM or Ctrl-C drains every child and exits once they have.

Executors are named ``<host>-1`` … ``<host>-N`` (``--node-id`` sets the
prefix), so two machines running ``run all`` against one broker never share
a node id. With ``--health-port P`` (or ``BOSON_HEALTH_PORT``) each child
serves GET /health on its own port: P monitor, P+1 scheduler, P+2 balancer,
P+3 transfer, P+4 … the executors in order. Without it no child serves one.

Configured GPU devices (``--gpu-device``, repeatable) are the machine's: ``run
all`` splits them among its executors in order, as evenly as they go (eight
devices and two executors: the first four to ``<host>-1``, the rest to
``<host>-2``), so no two executors bind one device. Fewer devices than
executors is refused: an executor given none would discover every GPU of the
machine through NVML. A GPU count (``--gpu N``) with several executors is
split the same way: the machine's devices ``0`` … ``N-1``, by index, handed
out as configured devices (so each executor binds only its own, and NVML
discovery is off, as with ``--gpu-device``); a count that is not whole cannot
be split and is refused. One executor takes ``--gpu N`` as it is.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import sys
from collections.abc import Callable
from typing import Any

from boson.commands.supervise import Supervisor
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
    parser.add_argument(
        "--health-port",
        type=int,
        help="serve GET /health on this port (run all: one port per child from this one up)",
    )
    monitor = parser.add_argument_group("monitor")
    monitor.add_argument(
        "--dashboard-port",
        type=int,
        help=f"serve the web dashboard on this port (run all: {DEFAULT_DASHBOARD_PORT}; 0: any)",
    )
    executor = parser.add_argument_group("executor")
    executor.add_argument("--node-id", help="node id (run all: prefix, default the host name)")
    executor.add_argument("--slots", type=int)
    executor.add_argument("--cpu", type=float, help="capacity in demand units")
    executor.add_argument("--memory", type=float, help="capacity in demand units")
    executor.add_argument(
        "--gpu", type=float, help="GPUs, when neither --gpu-device nor NVML says (by index)"
    )
    executor.add_argument(
        "--gpu-device",
        action="append",
        dest="gpu_devices",
        metavar="ID[:MODEL[:MIB]]",
        help="a GPU device of this node, as CUDA_VISIBLE_DEVICES names it (repeatable; "
        "overrides NVML discovery)",
    )
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
        "gpu_devices": "gpu_devices",
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


def local_node_prefix() -> str:
    """This host's name as a node-id prefix: two hosts running ``run all`` never collide."""
    host = socket.gethostname().split(".")[0]
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "-", host).strip("-")[:48]
    return cleaned or "local"


class DeviceSplitError(ValueError):
    """``run all`` was given fewer GPU devices than executors."""


def split_devices(devices: list[str], executors: int, given: str | None = None) -> list[list[str]]:
    """``devices`` in order, as evenly as they go, one list per executor (earlier ones get more).

    ``given``: how the user named them, for the refusal (default: as ``--gpu-device``).
    """
    if devices and len(devices) < executors:
        named = given or f"{len(devices)} --gpu-device"
        raise DeviceSplitError(
            f"{named} for {executors} executors: give each at least one, or run fewer executors"
        )
    share, more = divmod(len(devices), max(executors, 1))
    out: list[list[str]] = []
    start = 0
    for k in range(executors):
        size = share + (1 if k < more else 0)
        out.append(devices[start : start + size])
        start += size
    return out


def executor_devices(args: argparse.Namespace) -> tuple[list[list[str]], tuple[str, ...]]:
    """Each executor's configured devices, and the capacity flags passed to all of them.

    ``--gpu N`` with several executors and no ``--gpu-device`` becomes devices
    ``0`` … ``N-1`` split among them (module docstring), and is not passed on.
    """
    flags = ("slots", "cpu", "memory", "gpu")
    devices = list(args.gpu_devices or ())
    gpu = args.gpu
    if devices or gpu is None or gpu <= 0 or args.executors <= 1:
        return split_devices(devices, args.executors), flags
    if gpu != int(gpu):
        raise DeviceSplitError(
            f"--gpu {gpu:g} for {args.executors} executors: only a whole number of GPUs "
            "can be split among them (or give --gpu-device)"
        )
    count = int(gpu)
    split = split_devices([str(k) for k in range(count)], args.executors, f"--gpu {count}")
    return split, flags[:-1]


def run_plan(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """The children ``run all`` starts: every service but the executor, then the executors."""
    plan: list[tuple[str, list[str]]] = [
        (name, child_command(name, args, [])) for name in SERVICES if name != "executor"
    ]
    prefix = args.node_id or local_node_prefix()
    devices, flags = executor_devices(args)
    for number in range(1, args.executors + 1):
        node_id = f"{prefix}-{number}"
        extra = ["--node-id", node_id]
        for flag in flags:
            value = getattr(args, flag, None)
            if value is not None:
                extra += [f"--{flag}", str(value)]
        for module in args.handler_modules or ():
            extra += ["--handler-module", module]
        for device in devices[number - 1]:
            extra += ["--gpu-device", device]
        plan.append((f"executor {node_id}", child_command("executor", args, extra)))
    return plan


def run_all(args: argparse.Namespace) -> int:
    """Every service plus N executors as supervised child processes."""
    try:
        plan = run_plan(args)
    except DeviceSplitError as exc:
        print(f"boson run all: {exc}", file=sys.stderr)
        return 2
    base_port = args.health_port if args.health_port is not None else BosonSettings().health_port
    env = {k: v for k, v in os.environ.items() if k != "BOSON_HEALTH_PORT"}
    if base_port is not None:
        # One port each, in the order of ``plan``: children of one machine
        # cannot share a port.
        for offset, (_name, command) in enumerate(plan):
            command += ["--health-port", str(base_port + offset)]
    dashboard = MonitorSettings()
    port = args.dashboard_port
    if port is None:
        port = dashboard.dashboard_port
    if port is None:
        port = DEFAULT_DASHBOARD_PORT
    for name, command in plan:
        if name == "monitor":
            command += ["--dashboard-port", str(port)]
    env.pop("BOSON_DASHBOARD_PORT", None)
    host = dashboard.dashboard_host
    where = f"http://{f'[{host}]' if ':' in host else host}:{port}/" if port else "(see its log)"
    print(f"boson run all: dashboard at {where}", flush=True)
    return Supervisor(plan, env=env).run()


__all__ = [
    "SERVICES",
    "DeviceSplitError",
    "executor_devices",
    "overrides",
    "register",
    "register_service",
    "run",
    "run_plan",
    "split_devices",
]
