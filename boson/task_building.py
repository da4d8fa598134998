"""What a :class:`~boson.task_handles.TaskRequest` becomes: the ``TaskSubmitted`` to publish.

Part of :class:`~boson.client.Client`: the defaults a request leaves to the
client filled in, a task the contract refuses stopped before publishing
(:class:`~boson_shared.errors.InvalidTaskError`), data above the inline
threshold uploaded through the transfer service first.
"""

from __future__ import annotations

from pydantic import ValidationError

from boson.task_handles import TaskRequest
from boson_shared.contract.messages import TaskSubmitted, new_id
from boson_shared.errors import InvalidTaskError
from boson_shared.transfer.chunks import TransferOptions
from boson_shared.transfer.uploader import Uploader

DEFAULT_MAX_RETRIES = 3
DEFAULT_COMPLEXITY = 1.0
"""A task that states no complexity still holds one unit, so it is counted."""


class TaskBuilding:
    """:meth:`build_task` of :class:`~boson.client.Client`, and the upload before a submit."""

    client_id: str
    transfer: TransferOptions
    uploader: Uploader

    def build_task(self, request: TaskRequest) -> TaskSubmitted:
        data_size = request.data_size
        if data_size is None:
            data_size = len(request.data) / 1024 if request.data else 0.0
        try:
            return TaskSubmitted(
                task_id=request.task_id or new_id(),
                handler=request.handler,
                params=dict(request.params),
                data=request.data,
                complexity=DEFAULT_COMPLEXITY if request.complexity is None else request.complexity,
                data_size=data_size,
                requests=request.requests,
                timeout_s=request.timeout_s,
                max_retries=(
                    DEFAULT_MAX_RETRIES if request.max_retries is None else request.max_retries
                ),
                retry_errors=request.max_retries is not None,
                reply_to=self.client_id,
                explain=request.explain,
                tenant=request.tenant,
                priority=request.priority,
            )
        except ValidationError as e:
            # One typed line (no input values: params may be large or private).
            problems = e.errors(include_input=False, include_url=False, include_context=False)
            text = "; ".join(f"{'.'.join(map(str, p['loc']))}: {p['msg']}" for p in problems[:5])
            raise InvalidTaskError(f"task refused before publishing: {text}") from e

    async def _prepare(self, request: TaskRequest) -> TaskSubmitted:
        """The task to publish; data above the inline threshold is uploaded first."""
        task = self.build_task(request)
        if request.data is None or len(request.data) <= self.transfer.inline_max_bytes:
            return task
        ref = await self.uploader.upload(request.data)
        return task.model_copy(update={"data": None, "data_ref": ref})


__all__ = ["DEFAULT_COMPLEXITY", "DEFAULT_MAX_RETRIES", "TaskBuilding"]
