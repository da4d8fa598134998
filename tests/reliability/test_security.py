"""Keys rotate under load without loss; keys and passwords never leak.

* Rotation in the three steps of ``docs/wire-format.md`` §7 (add, activate,
  retire), each rolled through every service process one at a time — and
  through the client — while tasks keep flowing. Every task completes once;
  nothing is dead-lettered; afterwards an envelope under the retired key is
  refused as ``unknown-key``.
* A run with a failed broker login and a wrong-key decode, everything it
  leaves behind captured (every process log at DEBUG, the CLI's stdout and
  stderr including ``boson status``, exception texts, this process's log
  records, the dead-letter headers) and scanned for the keys and the broker
  passwords in raw, hex and base64 forms.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import secrets
import subprocess
import sys
import traceback
import urllib.parse
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import aio_pika
import pytest
from yarl import URL

from boson.client import Client
from boson_shared.bus.amqp import AmqpTransport
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import Keyring, generate_key_spec
from boson_shared.contract.messages import TaskResult, TaskSubmitted
from boson_shared.contract.topology import DEFAULT_EXCHANGE, HEADER_ERROR, HEADER_REASON
from boson_shared.errors import ConfigError
from boson_shared.settings import BosonSettings
from tests.conftest import AmqpBroker
from tests.support.cluster import ROOT, ProcessCluster
from tests.support.waiting import health, wait_for_nodes, wait_until

SUBMIT_INTERVAL_S = 0.025
"""40 tasks a second keep flowing through every step of the rotation."""
ANSWERED_WITHIN_S = 120.0
"""For the backlog that five service restarts build up to drain on a loaded machine."""


# -- key rotation under load ------------------------------------------------------

ROLL_ORDER = ("monitor", "scheduler", "balancer", "transfer", "rot-1")


def _start(cluster: ProcessCluster, name: str) -> None:
    if name == "rot-1":
        cluster.start("executor", "--node-id", "rot-1", name="rot-1")
    else:
        cluster.start(name)


async def _roll(cluster: ProcessCluster, keys: str, active: str) -> None:
    """Restart every service, one at a time, with the new key settings."""
    cluster.keys = keys
    cluster.extra_env["BOSON_ACTIVE_KEY_ID"] = active
    for name in ROLL_ORDER:
        code = await asyncio.to_thread(cluster.terminate, name)
        assert code == 0, cluster.log(name)[-2000:]
        _start(cluster, name)
        await cluster.wait_healthy(name)


@pytest.mark.broker
@pytest.mark.timeout(360)
async def test_key_rotation_in_three_steps_under_load(cluster: ProcessCluster) -> None:
    k1 = generate_key_spec("k1")
    k2 = generate_key_spec("k2")
    cluster.keys = k1
    for name in ROLL_ORDER:
        _start(cluster, name)
    await cluster.wait_healthy()
    names = cluster.settings().names()
    client_id = f"rot-{secrets.token_hex(4)}"

    async def connect(keys: str, active: str) -> Client:
        settings = cluster.settings(keys=keys, active_key_id=active)
        return await Client.connect(settings=settings, client_id=client_id)

    clients = [await connect(k1, "k1")]
    submitted: list[tuple[str, str]] = []  # (task id, active key at submission)
    active_key = "k1"
    flowing = True

    async def submit() -> None:
        number = 0
        while flowing:
            handle = await clients[-1].submit("noop", params={"echo": number})
            submitted.append((handle.task_id, active_key))
            number += 1
            await asyncio.sleep(SUBMIT_INTERVAL_S)

    def shown() -> dict[str, list[TaskResult]]:
        seen: dict[str, list[TaskResult]] = {}
        for client in clients:
            for task_id, result in client._results.items():
                seen.setdefault(task_id, []).append(result)
        return seen

    async def all_shown(wanted: set[str], what: str) -> None:
        """Every task of ``wanted`` shown; if not in time, what the broker holds says why."""
        try:
            await wait_until(lambda: wanted <= shown().keys(), timeout=ANSWERED_WITHIN_S)
        except TimeoutError:
            reply = names.client_queue(client_id)
            missing = sorted(wanted - shown().keys())
            raise AssertionError(
                f"{len(missing)} of {len(wanted)} {what} not answered within "
                f"{ANSWERED_WITHIN_S} s (e.g. {missing[:5]}); reply queue: "
                f"{await transport.queue_depth(reply)} ready, "
                f"{await transport.queue_consumers(reply)} consumers; dead letters: "
                f"{await transport.queue_depth(names.dead_letter_queue)}"
            ) from None

    submitter: asyncio.Task[None] | None = None
    transport = AmqpTransport(cluster.amqp_url, connection_name="boson-test-rotation")
    await transport.connect()
    try:
        await wait_for_nodes(clients[0], 1)
        submitter = asyncio.create_task(submit())
        await asyncio.sleep(2)
        steps = [(f"{k1},{k2}", "k1"), (f"{k1},{k2}", "k2"), (k2, "k2")]
        for step, (keys, active) in enumerate(steps, start=1):
            if step == 3:
                # Retire only once nothing under k1 can be in flight: every
                # task submitted under k1 has its result.
                under_k1 = {task_id for task_id, key in submitted if key == "k1"}
                await all_shown(under_k1, "tasks submitted under k1")
            await _roll(cluster, keys, active)
            clients.append(await connect(keys, active))
            active_key = active
            await clients[-2].close()
            await asyncio.sleep(1)
        await asyncio.sleep(2)
        flowing = False
        await submitter
        ids = {task_id for task_id, _ in submitted}
        await all_shown(ids, "tasks")
        results = shown()
        assert {key for _, key in submitted} == {"k1", "k2"}
        lost = ids - results.keys()
        duplicated = {task_id for task_id, got in results.items() if len(got) > 1}
        assert not lost
        assert not duplicated
        assert all(got[0].status == "succeeded" for got in results.values())
        # Nothing was refused along the way.
        assert await transport.queue_depth(names.dead_letter_queue) == 0

        # Afterwards, an envelope under the retired key is refused, clearly.
        old = EnvelopeCodec(Keyring.parse(k1))
        stale = TaskSubmitted(task_id="under-k1", handler="noop", reply_to=client_id)
        await transport.publish(DEFAULT_EXCHANGE, names.submit_queue, old.encode([stale]))

        async def refused() -> bool:
            return await transport.queue_depth(names.dead_letter_queue) == 1

        await wait_until(refused, timeout=20)
        headers = await _take_dead_letter(cluster.amqp_url, names.dead_letter_queue)
        assert headers[HEADER_REASON] == "unknown-key"
        assert "UnknownKeyError" in str(headers[HEADER_ERROR])
        assert "'k1'" in str(headers[HEADER_ERROR])
        print(
            f"\nROTATION tasks={len(ids)} "
            f"under_k1={sum(1 for _, k in submitted if k == 'k1')} "
            f"under_k2={sum(1 for _, k in submitted if k == 'k2')} lost=0 duplicated=0"
        )
    finally:
        flowing = False
        if submitter is not None and not submitter.done():
            submitter.cancel()
        await transport.close()
        await clients[-1].close()
    await asyncio.to_thread(cluster.stop_all)
    for name, process in cluster.processes.items():
        assert process.process.returncode == 0, cluster.log(name)[-2000:]


async def _take_dead_letter(url: str, queue: str) -> dict[str, object]:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        dlq = await channel.declare_queue(queue, passive=True)
        message = await dlq.get(no_ack=True, fail=True, timeout=10)
        assert message is not None
        return dict(message.headers)
    finally:
        await connection.close()


# -- secrets never leak -----------------------------------------------------------


def forms(secret: bytes) -> list[str]:
    """Every way a secret could show up in text."""
    standard = base64.b64encode(secret).decode()
    urlsafe = base64.urlsafe_b64encode(secret).decode()
    found = [
        repr(secret)[2:-1],
        secret.hex(),
        secret.hex().upper(),
        standard,
        standard.rstrip("="),
        urlsafe.rstrip("="),
    ]
    try:
        text = secret.decode()
    except UnicodeDecodeError:
        pass
    else:
        found += [text, urllib.parse.quote(text, safe="")]
    return found


def leaks(secrets_: dict[str, bytes], texts: Iterable[str]) -> list[str]:
    """Which secrets (by label) appear, in any form, in any of the texts."""
    haystack = "\n".join(texts)
    return sorted(
        label for label, secret in secrets_.items() if any(f in haystack for f in forms(secret))
    )


@pytest.fixture
async def broker_user(amqp_broker: AmqpBroker) -> AsyncIterator[tuple[str, str]]:
    """A broker user with a long random password (guest's password is its name)."""
    ctl = amqp_broker.rabbitmqctl
    if ctl is None:
        pytest.skip("needs rabbitmqctl to make a user with a secret password")
    user = f"boson-secret-{secrets.token_hex(3)}"
    # A leading letter: rabbitmqctl would read a password starting with '-' as a flag.
    password = "p" + secrets.token_urlsafe(24)
    vhost = urllib.parse.unquote(URL(amqp_broker.url).path.lstrip("/")) or "/"
    await ctl("add_user", user, password)
    try:
        await ctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        yield user, password
    finally:
        await ctl("delete_user", user)


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "boson", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.broker
@pytest.mark.timeout(180)
async def test_keys_and_passwords_never_leak(
    amqp_url: str,
    namespace: str,
    tmp_path: Path,
    broker_user: tuple[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    user, password = broker_user
    wrong_password = secrets.token_urlsafe(24)
    plain = URL(amqp_url)
    good_url = str(plain.with_user(user).with_password(password))
    bad_url = str(plain.with_user(user).with_password(wrong_password))
    key_spec = generate_key_spec("k1")
    intruder_spec = generate_key_spec("k1")  # same id, another key: the wrong-key case
    ring, intruder = Keyring.parse(key_spec), Keyring.parse(intruder_spec)
    secret_values = {
        "key": ring.key("k1"),
        "intruder key": intruder.key("k1"),
        "password": password.encode(),
        "wrong password": wrong_password.encode(),
    }
    captured: list[str] = []
    caplog.set_level(logging.DEBUG)

    cluster = ProcessCluster(good_url, namespace, tmp_path, keys=key_spec)
    cluster.extra_env["BOSON_LOG_LEVEL"] = "DEBUG"
    try:
        for service in ("monitor", "scheduler", "balancer", "transfer"):
            cluster.start(service)
        cluster.start("executor", "--node-id", "sec-1", name="sec-1")
        # A service whose broker login fails: it must exit, saying why, without the password.
        failing = ProcessCluster(bad_url, namespace, tmp_path, keys=key_spec)
        failing.extra_env["BOSON_CONNECT_TIMEOUT_S"] = "3"
        failed_service = failing.start("scheduler", name="scheduler-bad-login")
        assert await asyncio.to_thread(failed_service.process.wait, 60) != 0
        captured.append(failing.log("scheduler-bad-login"))
        assert "ACCESS_REFUSED" in captured[-1] or "refused" in captured[-1].lower()
        await cluster.wait_healthy()

        client = await Client.connect(settings=cluster.settings())
        try:
            await wait_for_nodes(client, 1)
            captured.append(repr(client.settings))
            captured.append(repr(client._codec))
            results = [
                await (await client.submit("forecast", params={"values": [1, 2, 3]})).result(30),
                await (await client.submit("no_such_handler", max_retries=0)).result(30),
            ]
            captured += [r.model_dump_json() for r in results]
            # The wrong-key decode, at a service: dead-lettered, logged at DEBUG.
            names = cluster.settings().names()
            forged = EnvelopeCodec(intruder).encode(
                [TaskSubmitted(task_id="forged", handler="noop", reply_to=client.client_id)]
            )
            transport = AmqpTransport(good_url, connection_name="boson-test-secrets")
            await transport.connect()
            try:
                captured.append(repr(transport))
                await transport.publish(DEFAULT_EXCHANGE, names.submit_queue, forged)

                async def scheduler_refused() -> bool:
                    return int((await health(cluster, "scheduler"))["dead_lettered"]) >= 1

                await wait_until(scheduler_refused, timeout=20)
            finally:
                await transport.close()
            # ... and in this process, with the traceback and its causes.
            try:
                EnvelopeCodec(ring).decode(forged)
            except Exception as error:
                captured += [str(error), repr(error), "".join(traceback.format_exception(error))]
            else:
                pytest.fail("the wrong key decoded")
            # The failed login in this process.
            with pytest.raises(ConfigError) as login:
                await AmqpTransport(bad_url, connection_name="boson-test-bad-login").connect()
            text = "".join(traceback.format_exception(login.value))
            captured += [str(login.value), repr(login.value), text]
            assert "refused the credentials" in text
            dead = await _all_dead_letters(good_url, names.dead_letter_queue)
            assert any(h.get(HEADER_REASON) == "authentication" for h in dead)
            captured += [repr(h) for h in dead]
        finally:
            await client.close()

        # The CLI: status with the good and the bad login, keys from the environment.
        env = {k: v for k, v in os.environ.items() if not k.startswith("BOSON_")}
        env |= {"BOSON_NAMESPACE": namespace, "BOSON_KEYS": key_spec, "PYTHONPATH": str(ROOT)}
        runs = [
            _cli(env | {"BOSON_BROKER_URL": good_url}, "-vv", "status", "--timeout", "5"),
            _cli(env | {"BOSON_BROKER_URL": good_url}, "status", "--json", "--timeout", "5"),
            _cli(env, "-vv", "status", "--broker", bad_url, "--timeout", "5"),
            _cli(env | {"BOSON_BROKER_URL": bad_url}, "-vv", "submit", "noop", "--wait"),
            _cli(env | {"BOSON_BROKER_URL": good_url}, "health"),
        ]
        assert runs[0].returncode == 0, runs[0].stderr
        assert runs[2].returncode != 0
        assert runs[3].returncode != 0
        assert user in runs[2].stderr + runs[2].stdout  # it says who could not log in …
        for run in runs:
            captured += [run.stdout, run.stderr]
    finally:
        await asyncio.to_thread(cluster.stop_all)
    captured += [cluster.log(name) for name in cluster.processes]
    captured += [record.getMessage() for record in caplog.records]
    captured += [repr(record.args) for record in caplog.records]
    assert sum(len(text) for text in captured) > 10_000  # the scan saw real output
    assert leaks(secret_values, captured) == []


async def _all_dead_letters(url: str, queue: str) -> list[dict[str, object]]:
    connection = await aio_pika.connect(url)
    found: list[dict[str, object]] = []
    try:
        channel = await connection.channel()
        dlq = await channel.declare_queue(queue, passive=True)
        while (message := await dlq.get(no_ack=True, fail=False, timeout=5)) is not None:
            found.append(dict(message.headers))
    finally:
        await connection.close()
    return found


@pytest.mark.broker
@pytest.mark.timeout(60)
async def test_client_connect_with_a_url_and_keys_keeps_them_secret(
    amqp_broker: AmqpBroker, broker_user: tuple[str, str], namespace: str
) -> None:
    user, password = broker_user
    url = str(URL(amqp_broker.url).with_user(user).with_password(password))
    key_spec = generate_key_spec("k1")
    client = await Client.connect(
        url, keys=key_spec, settings=BosonSettings(namespace=namespace, broker_url=None)
    )
    try:
        assert isinstance(client._codec, EnvelopeCodec)
        assert client._codec.keyring.active_key_id == "k1"
        texts = [repr(client.settings), str(client.settings), repr(client._transport)]
    finally:
        await client.close()
    secret_values = {"key": Keyring.parse(key_spec).key("k1"), "password": password.encode()}
    assert leaks(secret_values, texts) == []
