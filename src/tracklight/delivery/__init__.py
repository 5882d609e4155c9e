"""Background delivery for remote backends: bounded memory, batching, retry with backoff, spill to disk.

The training thread hands items to a :class:`Delivery` and returns; one worker thread per delivery
sends them in batches to the backend's :class:`Sink`, retries while it fails, and keeps on disk what
it could not send, for ``python -m tracklight.delivery replay <spill file>``.

| module | job |
|---|---|
| ``worker`` | :class:`Delivery`: the queue, spill, ``drain``/``close`` |
| ``thread`` | the worker side: what to do next, retry with backoff, the thread (ends when idle), inline delivery |
| ``batch`` | what delivery needs from a backend (:class:`Sink`), batch cutting, :class:`DeliveryReport` |
| ``send`` | handing a batch to the sink; items it refuses or fails on kept with the reason, said once |
| ``spill`` | :class:`~tracklight.delivery.spill.SpillFile`: JSON lines on disk, with a replay offset |
| ``shutdown`` | every live delivery closed at exit, and before an SDK's own exit hook |
| ``replay`` | the ``python -m tracklight.delivery replay`` command |
"""

from __future__ import annotations

from tracklight.delivery.batch import DeliveryReport, ItemFailed, Sink, batch_size
from tracklight.delivery.worker import Delivery

__all__ = ["Delivery", "DeliveryReport", "ItemFailed", "Sink", "batch_size"]
