"""``--tenant`` and ``--priority`` at submit, and the SDK's ``tenant=`` and ``priority=``."""

from __future__ import annotations

import pytest

from boson.cli import build_parser, main
from boson.client import Client, TaskRequest
from boson.commands.submit import build_requests
from boson_shared.bus.memory import MemoryBroker, MemoryTransport
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import Keyring
from boson_shared.errors import InvalidTaskError
from boson_shared.settings import BosonSettings


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["--priority", "1001"],
            "boson: InvalidTaskError: --priority 1001 is outside -1000..1000; nothing submitted",
        ),
        (
            ["--priority", "-1001"],
            "boson: InvalidTaskError: --priority -1001 is outside -1000..1000; nothing submitted",
        ),
        (
            ["--tenant", "two words"],
            "boson: InvalidTaskError: --tenant 'two words': a tenant name is 1 to 64 letters, "
            "digits, '_', '.' or '-'; nothing submitted",
        ),
    ],
)
def test_a_bad_priority_or_tenant_is_one_line_before_anything_starts(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    expected: str,
) -> None:
    # No broker: a submit would start the whole pipeline in-process first.
    monkeypatch.delenv("BOSON_BROKER_URL", raising=False)
    status = main(["submit", "noop", "--wait", *argv])
    captured = capsys.readouterr()
    assert status == 2
    assert captured.err.strip().splitlines() == [expected]


def test_the_options_reach_every_request() -> None:
    args = build_parser().parse_args(
        ["submit", "noop", "--count", "2", "--tenant", "research", "--priority", "-1000"]
    )
    requests = build_requests(args)
    assert [(r.tenant, r.priority) for r in requests] == [("research", -1000)] * 2
    plain = build_requests(build_parser().parse_args(["submit", "noop"]))
    assert [(r.tenant, r.priority) for r in plain] == [("default", 0)]


def client() -> Client:
    return Client(
        BosonSettings(namespace="sdk-tenant"),
        MemoryTransport(MemoryBroker()),
        EnvelopeCodec(Keyring.ephemeral()),
        client_id="c1",
    )


def test_the_sdk_puts_them_on_the_task_and_refuses_a_priority_out_of_range() -> None:
    sdk = client()
    task = sdk.build_task(TaskRequest("noop", tenant="batch", priority=1000))
    assert (task.tenant, task.priority) == ("batch", 1000)
    assert (sdk.build_task(TaskRequest("noop")).tenant, task.schema_version) == ("default", 4)
    with pytest.raises(InvalidTaskError, match=r"^task refused before publishing: priority: "):
        sdk.build_task(TaskRequest("noop", priority=1001))
    with pytest.raises(InvalidTaskError, match=r"^task refused before publishing: tenant: "):
        sdk.build_task(TaskRequest("noop", tenant=""))


async def test_submit_many_and_submit_take_them() -> None:
    sdk = client()
    await sdk.start()
    try:
        many = await sdk.submit_many(
            [TaskRequest("noop", tenant="a", priority=5), TaskRequest("noop")]
        )
        one = await sdk.submit("noop", tenant="b", priority=-3)
    finally:
        await sdk.close()
    assert [(h.task.tenant, h.task.priority) for h in [*many, one]] == [
        ("a", 5),
        ("default", 0),
        ("b", -3),
    ]
