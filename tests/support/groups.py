"""Watching a consumer group from outside, through the admin API.

The replicas under test are separate processes, so the tests learn who holds which partition
the way an operator would (`kafka-consumer-groups --describe`): DescribeGroups, polled.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.errors import KafkaError

from shopstream.runtime.security import aiokafka_options
from shopstream.settings import KafkaSettings

STABLE = "Stable"
REBALANCING = frozenset({"PreparingRebalance", "CompletingRebalance"})


@dataclass(frozen=True)
class GroupView:
    """One DescribeGroups answer: the group's state and each member's partitions."""

    at: float
    state: str
    assignments: dict[str, frozenset[tuple[str, int]]]
    """Member id to the (topic, partition) pairs it holds, over every topic it subscribes."""

    def held(self, topic: str) -> dict[str, list[int]]:
        """Each member's partitions of `topic`."""
        return {
            member: sorted(p for t, p in parts if t == topic)
            for member, parts in self.assignments.items()
        }

    def settled(self, members: int, topic: str, partitions: int) -> bool:
        """Stable with exactly `members` members, together holding every partition of `topic`."""
        held = [p for parts in self.held(topic).values() for p in parts]
        return (
            self.state == STABLE
            and len(self.assignments) == members
            and sorted(held) == list(range(partitions))
        )


async def describe(admin: AIOKafkaAdminClient, group: str) -> GroupView:
    (response,) = await admin.describe_consumer_groups([group])
    _error, _group, state, _protocol_type, _protocol, members = response.groups[0]
    # The assignment is the last field of a member in every DescribeGroups version.
    assignments = {
        member[0]: frozenset(
            (topic, partition)
            for topic, partitions in ConsumerProtocolMemberAssignment.decode(member[-1]).assignment
            for partition in partitions
        )
        for member in members
        if member[-1]
    }
    return GroupView(time.monotonic(), state, assignments)


@dataclass
class GroupWatcher:
    """Polls the group every `period` seconds and keeps the timeline of what it saw."""

    admin: AIOKafkaAdminClient
    group: str
    period: float = 0.1
    timeline: list[GroupView] = field(default_factory=list)

    async def poll(self) -> None:
        while True:
            # The coordinator is briefly unknown before the group's first join and while the
            # broker recovers; a missed sample is harmless.
            with contextlib.suppress(KafkaError):
                self.timeline.append(await describe(self.admin, self.group))
            await asyncio.sleep(self.period)

    async def settled(self, members: int, topic: str, partitions: int, within: float) -> GroupView:
        """The first view, from now on, where the group has settled on `members` members that
        hold all `partitions` of `topic` (a service may subscribe to more topics)."""
        start = len(self.timeline)
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for view in self.timeline[start:]:
                if view.settled(members, topic, partitions):
                    return view
            await asyncio.sleep(self.period)
        last = self.timeline[-1] if self.timeline else None
        raise TimeoutError(f"group {self.group} did not settle on {members} members: {last}")

    def rebalances(self, since: float, until: float) -> int:
        """Rebalances seen in (since, until]: each time the group left Stable, plus each
        assignment change between two Stable samples (a rebalance shorter than the period)."""
        views = [view for view in self.timeline if since < view.at <= until]
        before = [view for view in self.timeline if view.at <= since and view.state == STABLE]
        count = 0
        previous_stable: GroupView | None = before[-1] if before else None
        left_stable = False
        for view in views:
            if view.state != STABLE:
                left_stable = True
                continue
            if left_stable or (
                previous_stable is not None and previous_stable.assignments != view.assignments
            ):
                count += 1
            left_stable = False
            previous_stable = view
        return count


@contextlib.asynccontextmanager
async def watching(kafka: KafkaSettings, group: str) -> AsyncIterator[GroupWatcher]:
    admin = AIOKafkaAdminClient(**aiokafka_options(kafka))
    await admin.start()
    watcher = GroupWatcher(admin, group)
    task = asyncio.create_task(watcher.poll())
    try:
        yield watcher
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await admin.close()
