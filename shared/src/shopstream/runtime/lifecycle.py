"""What starts and stops with a service, beside its consumer group.

A service's model is loaded first; then its components start in order (a product table read to
its end, a catalogue followed, an activity replay), and only then does the consumer group join.
On the way out the consumer group stops first, then the components in reverse order, and the
model unloads last, so nothing a component runs (an embedding, a follower's apply) meets an
unloaded model.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from shopstream.runtime.partitions import PartitionListener


class ModelLifecycle(Protocol):
    # `load` may return a report (timings, where the weights came from); the runtime ignores it.
    def load(self) -> object: ...
    def unload(self) -> None: ...


class Component(Protocol):
    async def start(self) -> None:
        """Called after the model loads and before the first batch is fetched."""
        ...

    async def stop(self) -> None:
        """Called after the consumer group stopped, before the model unloads; only for a
        component whose `start` returned."""
        ...


@runtime_checkable
class AssignmentListener(PartitionListener, Protocol):
    """A component with `on_assigned` also hears of every partition assignment (see
    `PartitionTracker`); the runtime registers it, the service need not."""
