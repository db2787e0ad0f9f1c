"""Quotas on what devices nobody approved may make a hub keep (``hub.protocol.quota``)."""

from __future__ import annotations

import pytest

from hub.protocol.quota import QUOTA, Ledger, QuotaError, Quotas, Usage

A, B = b"a" * 32, b"b" * 32


def test_defaults_are_the_documented_ones() -> None:
    q = Quotas()
    got = (q.pending_devices, q.held_records_per_device, q.held_bytes_per_device,
           q.held_records, q.held_bytes)  # fmt: skip
    assert got == (1000, 5000, 32 * 2**20, 200_000, 512 * 2**20)


def test_pending_devices_quota() -> None:
    ledger = Ledger(Quotas(pending_devices=3), pending=1)
    ledger.check_new_device()
    assert ledger.room_for_device() is None
    ledger.add_device()
    assert ledger.new_pending == 2
    why = ledger.room_for_device()
    assert why is not None and "3 devices are waiting" in why and "max_pending_devices" in why
    with pytest.raises(QuotaError) as exc:
        ledger.check_new_device()
    assert exc.value.code == QUOTA
    assert ledger.new_pending == 2  # a refusal counts nothing


def test_per_device_quotas_count_committed_plus_added() -> None:
    ledger = Ledger(Quotas(held_records_per_device=3, held_bytes_per_device=1000),
                    {A: Usage(2, 500)}, Usage(2, 500))  # fmt: skip
    assert ledger.room_for(A, 500) is None
    assert ledger.room_for(A, 501) is not None  # bytes
    ledger.add(A, 400)
    assert ledger.usage(A) == Usage(3, 900)
    why = ledger.room_for(A, 1)
    assert why is not None and "max_held_records_per_device" in why
    assert ledger.room_for(B, 1000) is None  # another device has its own room
    assert ledger.held_total == Usage(3, 900) and ledger.added == {A: Usage(1, 400)}


def test_total_quotas() -> None:
    ledger = Ledger(Quotas(held_records=5, held_bytes=10_000), {A: Usage(4, 100)}, Usage(4, 100))
    assert ledger.room_for(B, 100) is None
    ledger.add(B, 100)
    why = ledger.room_for(B, 1)
    assert why is not None and "max_held_records" in why and "not stored" in why
    ledger = Ledger(Quotas(held_bytes=1000), {}, Usage(1, 900))
    why = ledger.room_for(A, 101)
    assert why is not None and "max_held_bytes" in why
    assert ledger.room_for(A, 100) is None
