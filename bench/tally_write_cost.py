"""What the tallies' triggers (``apps.core.tallies``) add to a write: one record created, its size
changed, and deleted through the ORM, each in its own transaction as the storage services write,
with the triggers on and off in alternating rounds, same process, same user.

    .venv/bin/python -m adiuva.embedded run -- .venv/bin/python bench/tally_write_cost.py [--rounds 6] [--writes 300]

Off is ``ALTER TABLE ... DISABLE TRIGGER`` on the records' three tally triggers for that round (the
tally is then not kept: the bench's user is deleted at the end). Printed: the median wall time of
each write per mode and on / off.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

from device_common import make_users, setup_django

TRIGGERS = [f"storage_storagerecord_tally_on_{event}" for event in ("insert", "update", "delete")]


def _set_triggers(on: bool) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for trigger in TRIGGERS:
            cursor.execute(f'ALTER TABLE storage_storagerecord {"ENABLE" if on else "DISABLE"} TRIGGER "{trigger}"')


def _round(user_id: str, writes: int) -> dict[str, float]:
    from django.db import transaction

    from apps.storage.models import StorageRecord

    times: dict[str, list[float]] = {"create": [], "update": [], "delete": []}
    for _ in range(writes):
        started = time.perf_counter()
        with transaction.atomic():
            record = StorageRecord.objects.create(
                user_id=user_id, table="notes", blob_key=f"tally/{uuid.uuid4()}", checksum="0" * 64, size_bytes=10
            )
        created = time.perf_counter()
        with transaction.atomic():
            StorageRecord.objects.filter(pk=record.pk).update(size_bytes=20)
        updated = time.perf_counter()
        with transaction.atomic():
            StorageRecord.objects.filter(pk=record.pk).delete()
        deleted = time.perf_counter()
        times["create"].append(created - started)
        times["update"].append(updated - created)
        times["delete"].append(deleted - updated)
    return {name: statistics.median(values) * 1e6 for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--writes", type=int, default=300)
    args = parser.parse_args()
    setup_django(migrate=True)
    from apps.accounts.models import User

    ((user_id, _),) = make_users(1, prefix=f"tallycost-{uuid.uuid4().hex[:6]}")
    results: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    try:
        for index in range(args.rounds):
            for on in (True, False) if index % 2 == 0 else (False, True):
                _set_triggers(on)
                results[on].append(_round(user_id, args.writes))
    finally:
        _set_triggers(True)
        User.objects.filter(pk=user_id).delete()
    print(
        f"{args.rounds} rounds of {args.writes} writes, each in its own transaction (median µs of the rounds' medians)"
    )
    for name in ("create", "update", "delete"):
        with_triggers = statistics.median(r[name] for r in results[True])
        off = statistics.median(r[name] for r in results[False])
        print(
            f"  {name:7} triggers on {with_triggers:7.0f} µs   off {off:7.0f} µs"
            f"   on / off {with_triggers / off:5.2f}x   (+{with_triggers - off:4.0f} µs)"
        )


if __name__ == "__main__":
    main()
