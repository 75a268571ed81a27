"""Jobs belong to projects: who may read and change them, on every store (the domain, below gRPC)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from odin_scheduler.executor.instant import InstantExecutor
from odin_scheduler.identity import Caller
from odin_scheduler.inline import resolve
from odin_scheduler.jobs import RequestedOptions
from odin_scheduler.model import Event, Job, JobFilter, now_us
from odin_scheduler.service import Scheduler
from odin_scheduler.store import Store
from odin_scheduler.watch import Heartbeat

from odin.engine.stack import open_scheduler
from odin.runtime.errors import NotFound, PermissionDenied
from odin.runtime.tokens import Identity, Role

PIPELINE = "name: p\ntasks:\n  - name: t\n    image: x\n    command: [sleep, '3600']\n"


def caller(username: str, role: Role = Role.USER, **projects: Role) -> Caller:
    identity = Identity(username, role, projects=projects)
    return Caller(identity.name, identity.has(Role.ADMIN), identity)


ADMIN = caller("root", Role.ADMIN)
ALICE = caller("alice", Role.VIEWER, red=Role.USER)  # a user in red, a viewer elsewhere (default)
BOB = caller("bob", Role.VIEWER, red=Role.USER)
RED_ADMIN = caller("carol", Role.VIEWER, red=Role.ADMIN)
RED_VIEWER = caller("dave", Role.VIEWER, red=Role.VIEWER)
OUTSIDER = caller("eve", Role.USER, blue=Role.ADMIN)  # a user in default, an admin of blue, not in red


@pytest.fixture
async def scheduler(store: Store, tmp_path: object) -> AsyncIterator[Scheduler]:
    async with open_scheduler(InstantExecutor(), store, str(tmp_path), 8) as opened:
        yield opened


async def create(scheduler: Scheduler, owner: Caller, project: str) -> Job:
    return await scheduler.create_job(resolve(PIPELINE, {}, {}), owner=owner.name, options=RequestedOptions(),
                                      labels={}, parameters={}, request_id="", validate_only=False,
                                      now_us=now_us(), project=project)  # fmt: skip


async def test_a_non_member_cannot_tell_a_job_exists(scheduler: Scheduler) -> None:
    job = await create(scheduler, ALICE, "red")
    assert job.project == "red"
    reads = [
        lambda who, jid: scheduler.get_job(jid, who),
        lambda who, jid: scheduler.get_task(jid, "t", who),
        lambda who, jid: scheduler.list_tasks(jid, frozenset(), 10, "", who),
        lambda who, jid: scheduler.list_events(jid, 0, 10, "", who),
        lambda who, jid: scheduler.task_cluster_events(jid, "t", who),
        lambda who, jid: scheduler.cancel_job(jid, "", who),
        lambda who, jid: scheduler.retry_job(jid, who),
        lambda who, jid: scheduler.delete_job(jid, True, who),
    ]
    for read in reads:
        with pytest.raises(NotFound) as hidden:
            await read(OUTSIDER, job.id)
        with pytest.raises(NotFound) as missing:
            await read(OUTSIDER, "no-such-job")
        # The same answer as for a job that does not exist, up to its name.
        assert hidden.value.reason == missing.value.reason
        assert str(hidden.value).replace(job.id, "X") == str(missing.value).replace("no-such-job", "X")
    with pytest.raises(NotFound):
        async for _ in scheduler.watch_job(job.id, 0, OUTSIDER):
            break
    with pytest.raises(NotFound):
        async for _ in scheduler.task_logs(job.id, "t", follow=False, offset=0, attempt=0, caller=OUTSIDER):
            break
    assert (await scheduler.get_job(job.id, RED_VIEWER)).id == job.id
    assert (await scheduler.get_task(job.id, "t", RED_VIEWER)).name == "t"


async def test_changing_a_job_needs_user_for_ones_own_and_project_admin_for_others(scheduler: Scheduler) -> None:
    job = await create(scheduler, ALICE, "red")
    with pytest.raises(PermissionDenied) as viewer:
        await scheduler.cancel_job(job.id, "", RED_VIEWER)
    assert viewer.value.reason == "NOT_JOB_OWNER"
    with pytest.raises(PermissionDenied) as other_user:
        await scheduler.cancel_job(job.id, "", BOB)
    assert other_user.value.reason == "NOT_JOB_OWNER"
    assert (await scheduler.cancel_job(job.id, "mine", ALICE)).id == job.id
    await scheduler.retry_job(job.id, RED_ADMIN)  # a project admin changes anyone's job
    await scheduler.delete_job(job.id, True, RED_ADMIN)
    # Demoted to viewer in red, the owner may still see but no longer change their job.
    second = await create(scheduler, ALICE, "red")
    demoted = caller("alice", Role.VIEWER, red=Role.VIEWER)
    with pytest.raises(PermissionDenied) as low:
        await scheduler.cancel_job(second.id, "", demoted)
    assert low.value.reason == "PROJECT_ROLE_REQUIRED"


async def test_listing_counts_and_pages_only_visible_jobs(scheduler: Scheduler) -> None:
    red = [await create(scheduler, ALICE, "red") for _ in range(3)]
    default = [await create(scheduler, OUTSIDER, "default") for _ in range(2)]
    where = JobFilter(visible=OUTSIDER.visible_projects())
    first = await scheduler.list_jobs(where, 1, "", True)
    assert first.total_size == 2 and first.next_page_token
    second = await scheduler.list_jobs(where, 1, first.next_page_token, True)
    assert not second.next_page_token
    assert {j.id for j in [*first.items, *second.items]} == {j.id for j in default}  # type: ignore[union-attr]
    everything = await scheduler.list_jobs(JobFilter(visible=ADMIN.visible_projects()), 10, "", True)
    assert everything.total_size == 5
    only_red = await scheduler.list_jobs(JobFilter(project="red", visible=RED_VIEWER.visible_projects()), 10, "", True)
    assert {j.id for j in only_red.items} == {j.id for j in red}  # type: ignore[union-attr]


async def test_watch_jobs_never_delivers_events_of_invisible_jobs(scheduler: Scheduler) -> None:
    seen: list[Event] = []
    cursor = scheduler.hub.latest

    async def follow() -> None:
        async for item in scheduler.watch_jobs(JobFilter(visible=OUTSIDER.visible_projects()), cursor):
            if isinstance(item, Heartbeat):
                continue
            seen.extend(item)

    watching = asyncio.create_task(follow())
    try:
        hidden = await create(scheduler, ALICE, "red")
        await scheduler.cancel_job(hidden.id, "", ALICE)
        shown = await create(scheduler, OUTSIDER, "default")
        await scheduler.cancel_job(shown.id, "", OUTSIDER)
        async with asyncio.timeout(20):
            while not any(e.job_id == shown.id and e.ends_job for e in seen):  # noqa: ASYNC110 (polls a list)
                await asyncio.sleep(0.02)
        assert {e.job_id for e in seen} == {shown.id}  # the red job's events came first and were all left out
    finally:
        watching.cancel()
