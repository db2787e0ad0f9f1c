"""Enrollment as an attacker on the room's LAN tries it: become a hub (finding 1), forge
terminal rows and log lines with a name (8), forge the comparison code (11), flood the hub
with pending devices, held records and fake forks (4).

Every test talks to a real ``c1hub serve`` over HTTP or runs the CLI, as the coordinator
would. Names the fixes must provide (error codes, flags, JSON keys) are in CONTRACT.md.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from hub.protocol import entry, receipt, record
from hub.protocol.identity import Identity, fingerprint
from tests.helpers import ENTERED_AT
from tests.integration.procs import (
    C1CLIENT,
    C1HUB,
    HubProc,
    Procs,
    get_json,
    run,
    run_json,
    wait_for,
)
from tests.security import forge
from tests.security.forge import Log
from tests.security.wire import MSGPACK, Reply, call, hello, push


def enroll(hub: HubProc, ident: Identity, name: str, role: str = "laptop") -> Reply:
    public = hello(hub.url)["public"]
    return call(hub.port, "POST", "/v1/enroll", forge.enrollment(ident, public, name, role),
                {"Content-Type": MSGPACK})  # fmt: skip


def pushed(hub: HubProc, raws: list[bytes], **extra: object) -> dict[str, object]:
    r = push(hub.port, raws, **extra)
    assert r.status == 200, r
    out: dict[str, object] = r.decoded()
    return out


def row(hub: HubProc, public: bytes) -> dict[str, object] | None:
    """This device's row in ``c1hub devices --json`` (read live from the running hub)."""
    return next((d for d in hub.devices() if d["public"] == public.hex()), None)


# -- finding 1: a pending device can make itself a hub ------------------------------------


def test_pending_laptop_cannot_turn_itself_into_a_hub(procs: Procs) -> None:
    hub = procs.hub("hub").start()
    mole = Identity.generate()
    first = enroll(hub, mole, "Meja 7")
    assert first.status == 200 and first.decoded()["state"] == "pending", first
    offset = len(hub.log_text())

    again = enroll(hub, mole, "Meja 7", role="hub")
    assert again.status == 409 and again.error["code"] == "role_change", again
    assert row(hub, mole.public)["role"] == "laptop"  # type: ignore[index]
    # ... and the coordinator can see someone tried.
    hub.wait_log(fingerprint(mole.public), timeout=10, after=offset)
    logged = hub.log_text()[offset:]
    assert "role" in logged and "hub" in logged, logged


def test_laptop_turned_hub_cannot_vouch_for_strangers(procs: Procs) -> None:
    """The attack end to end: enroll as a laptop, switch to hub while pending, get approved
    by a coordinator who compares the code of "Meja 7" and runs ``c1hub approve ID`` as for
    any laptop, then vouch for keys of one's own making and push their entries."""
    hub = procs.hub("hub").start()
    mole = Identity.generate()
    enroll(hub, mole, "Meja 7")
    enroll(hub, mole, "Meja 7", role="hub")  # refused by the fix; today it switches
    run(C1HUB, "approve", "--data", hub.data, fingerprint(mole.public), check=False)

    puppets = [Log(i) for i in (1, 2, 3)]
    raws = [r for p in puppets for r in p.extend(10)]
    vouch = [forge.endorsement(mole, p.public, f"Meja {i}") for i, p in enumerate(puppets, 8)]
    assert pushed(hub, raws, endorsements=vouch)["accepted"] == 30  # held, receipted
    states = {p.public.hex(): (row(hub, p.public) or {}).get("state") for p in puppets}
    assert "approved" not in states.values(), states
    wait_for(lambda: hub.status()["entries"]["total"] == 30, 30, "status to show 30 entries")
    assert hub.status()["entries"]["accepted"] == 0


def test_device_list_and_approval_show_the_role(procs: Procs) -> None:
    hub = procs.hub("hub").start()
    laptop, other_hub = Identity.generate(), Identity.generate()
    enroll(hub, laptop, "Meja 3")
    enroll(hub, other_hub, "Lantai 2", role="hub")
    table = run(C1HUB, "devices", "--data", hub.data).stdout.splitlines()
    assert "ROLE" in table[0].split(), table[0]
    rows = {line.split()[0]: line.split() for line in table[1:] if line.strip()}
    assert "laptop" in rows[fingerprint(laptop.public)], table
    assert "hub" in rows[fingerprint(other_hub.public)], table
    out = run(C1HUB, "approve", "--data", hub.data, fingerprint(laptop.public)).stdout
    assert "laptop" in out, out


def test_approving_a_hub_needs_its_role_confirmed(procs: Procs) -> None:
    hub = procs.hub("hub").start()
    token = (hub.data / "admin.token").read_text().strip()
    other_hub, laptop = Identity.generate(), Identity.generate()
    enroll(hub, other_hub, "Lantai 2", role="hub")
    enroll(hub, laptop, "Meja 4")
    hub_id, laptop_id = fingerprint(other_hub.public), fingerprint(laptop.public)

    # Over HTTP (from the hub machine, with the token): the role must be named.
    r = call(hub.port, "POST", f"/v1/devices/{hub_id}/approve", b"",
             {"Authorization": f"Bearer {token}", "Accept": "application/json"})  # fmt: skip
    assert r.status == 409 and r.error["code"] == "role_not_confirmed", r
    # On the command line: refused without --as hub, and the message says what to do.
    p = run(C1HUB, "approve", "--data", hub.data, hub_id, check=False)
    assert p.returncode != 0 and "--as hub" in p.stderr, (p.stdout, p.stderr)
    assert row(hub, other_hub.public)["state"] == "pending"  # type: ignore[index]
    # --as naming the wrong role is refused too.
    p = run(C1HUB, "approve", "--data", hub.data, "--as", "hub", laptop_id, check=False)
    assert p.returncode != 0, p.stdout
    assert row(hub, laptop.public)["state"] == "pending"  # type: ignore[index]

    out = run(C1HUB, "approve", "--data", hub.data, "--as", "hub", hub_id).stdout
    assert "hub" in out, out
    assert row(hub, other_hub.public)["state"] == "approved"  # type: ignore[index]


# -- finding 8: names that forge terminal rows and log lines ------------------------------

HOSTILE_NAMES = [
    pytest.param("\rMeja 1      approved", id="carriage-return"),
    pytest.param("Meja 7\n2026-02-14 08:00:00 WARNING hub.node: approved", id="line-feed"),
    pytest.param("\x1b[2J\x1b[HMeja 1", id="escape"),
    pytest.param("Meja\x00 7", id="nul"),
    pytest.param("Meja\x7f7", id="delete"),
    pytest.param("Meja\x857", id="c1-next-line"),
    pytest.param("Meja\u20287", id="line-separator"),
    pytest.param("Meja \u202e7 ajeM", id="bidi-override"),
]


@pytest.fixture(scope="module")
def names_hub(module_procs: Procs) -> HubProc:
    return module_procs.hub("names").start()


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_enrollment_refuses_control_characters_in_the_name(names_hub: HubProc, name: str) -> None:
    ident = Identity.generate()
    r = enroll(names_hub, ident, name)
    assert r.status == 400, r
    assert (r.error["code"], r.error.get("field")) == ("bad_entry", "name"), r
    assert row(names_hub, ident.public) is None


def test_a_name_cannot_forge_a_log_line(names_hub: HubProc) -> None:
    forged = "2026-02-14 08:00:00,000 WARNING hub.node: approved device AAAA-AAAA-AAAA"
    offset = len(names_hub.log_text())
    enroll(names_hub, Identity.generate(), "Meja 7\n" + forged)
    hello(names_hub.url)
    lines = names_hub.log_text()[offset:].splitlines()
    assert not any(line.startswith(forged) for line in lines), lines


@pytest.mark.parametrize(
    ("program", "name"),
    [
        pytest.param(C1HUB, "Meja\x1b[31m 7", id="c1hub-escape"),
        pytest.param(C1HUB, "Meja \u202e7 ajeM", id="c1hub-bidi-override"),
        pytest.param(C1CLIENT, "Meja \u202e7 ajeM", id="c1client-bidi-override"),
        pytest.param(C1CLIENT, "Meja\x857", id="c1client-c1-next-line"),
    ],
)
def test_init_refuses_control_characters_in_the_name(
    tmp_path: Path, program: str, name: str
) -> None:
    data = tmp_path / "data"
    p = run(program, "init", "--data", data, "--name", name, check=False)
    assert p.returncode != 0, p.stdout
    assert "name" in (p.stdout + p.stderr).lower()
    assert not (data / "node.key").exists(), "a refused init must create nothing"


def test_dashboard_escapes_names(names_hub: HubProc) -> None:
    """Guard (holds today): a name that is HTML reaches the coordinator's page as text."""
    enroll(names_hub, Identity.generate(), "<script>alert(1)</script>")
    from urllib.request import urlopen

    with urlopen(names_hub.url + "/?lang=en", timeout=30) as r:
        html = r.read().decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


# -- finding 11: the comparison code ------------------------------------------------------

CODE = re.compile(r"\d{4} \d{4} \d{4} \d{4}")


def test_comparison_code_is_too_long_to_forge(procs: Procs) -> None:
    hub = procs.hub("hub").start()
    lap = procs.laptop("laptop")
    report = run_json(C1CLIENT, "sync", "--data", lap, "--hub", hub.url, "--once")
    code = report["code"]
    assert CODE.fullmatch(code), code
    # Both screens show the very same text: the hub's list, the laptop's status.
    (dev,) = hub.devices()
    assert dev["code"] == code
    assert run_json(C1CLIENT, "status", "--data", lap)["hub"]["code"] == code


# -- finding 4: unapproved hosts fill the disk and raise alarms ---------------------------


def test_enrollment_flood_stops_at_the_pending_quota(procs: Procs) -> None:
    """Default ``max_pending_devices`` (1000): the 1001st new device is refused, 429 quota."""
    hub = procs.hub("hub").start()
    public = hello(hub.url)["public"]

    def one(i: int) -> int | None:
        ident = Identity.generate()
        r = call(hub.port, "POST", "/v1/enroll", forge.enrollment(ident, public, f"flood {i}"),
                 {"Content-Type": MSGPACK})  # fmt: skip
        return r.status

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(one, range(1000)))
    assert statuses == [200] * 1000
    r = enroll(hub, Identity.generate(), "one too many")
    assert r.status == 429 and r.error["code"] == "quota", r
    assert len(get_json(hub.url + "/v1/devices")) == 1000


def test_held_records_beyond_the_device_quota_are_refused_and_not_receipted(procs: Procs) -> None:
    """Default ``max_held_records_per_device`` (5000)."""
    hub = procs.hub("hub").start()
    stranger = Log(6)
    raws = stranger.extend(5001)
    assert pushed(hub, raws[:5000])["accepted"] == 5000
    out = pushed(hub, raws[5000:])
    assert out["accepted"] == 0, out
    assert [r["code"] for r in out["rejected"]] == ["quota"], out  # type: ignore[union-attr]
    seqs = [receipt.decode(r).seq for r in out["receipts"]]  # type: ignore[union-attr]
    assert all(s <= 5000 for s in seqs), seqs  # nothing beyond the quota is acknowledged
    assert hub.head(stranger.public)["seq"] == 5000
    # Approval lifts the quota: the record is taken on the next push.
    run(C1HUB, "approve", "--data", hub.data, fingerprint(stranger.public))
    assert pushed(hub, raws[5000:])["accepted"] == 1


def test_forks_of_unapproved_keys_are_reported_apart(procs: Procs) -> None:
    hub = procs.hub("hub").start()

    def fork(log: Log) -> None:
        seq, _ = log.head
        other = forge.signed(
            log.ident,
            seq,
            log.records[-2].hash if seq > 1 else record.GENESIS,
            entry.encode_body(forge.form(19_000_000 + seq), ENTERED_AT),
        )
        assert len(pushed(hub, [other])["forks"]) == 1  # type: ignore[arg-type]

    def forks_shown() -> int:
        s = hub.status()
        return int(s["forks"]) + int(s.get("forks_unapproved", 0))

    stranger = Log(7)
    pushed(hub, stranger.extend(2))
    fork(stranger)
    wait_for(lambda: forks_shown() == 1, 30, "the status to show the fork")
    s = hub.status()
    assert (s["forks"], s.get("forks_unapproved")) == (0, 1), s

    ours = Log(8)
    pushed(hub, ours.extend(2))
    run(C1HUB, "approve", "--data", hub.data, fingerprint(ours.public))
    fork(ours)
    wait_for(lambda: forks_shown() == 2, 30, "the status to show both forks")
    s = hub.status()
    assert (s["forks"], s["forks_unapproved"]) == (1, 1), s
    listed = {f["device"]: f["unapproved"] for f in get_json(hub.url + "/v1/forks")}
    assert listed == {fingerprint(stranger.public): True, fingerprint(ours.public): False}


HELD_QUOTAS = ["--max-pending-devices", "--max-held-records-per-device",
               "--max-held-bytes-per-device", "--max-held-records", "--max-held-bytes"]  # fmt: skip


def test_held_quotas_are_settings() -> None:
    out = run(C1HUB, "serve", "--help").stdout
    missing = [flag for flag in HELD_QUOTAS if flag not in out]
    assert not missing, missing


def test_total_held_quota(procs: Procs) -> None:
    hub = procs.hub("hub", extra=("--max-held-records", "20")).start()
    logs = [Log(i) for i in (9, 10, 11)]
    outs = [pushed(hub, log.extend(8)) for log in logs]
    assert sum(o["accepted"] for o in outs) == 20  # type: ignore[misc]
    codes = [r["code"] for o in outs for r in o["rejected"]]  # type: ignore[attr-defined]
    assert codes == ["quota"] * 4, codes


def test_held_bytes_quota_per_device(procs: Procs) -> None:
    hub = procs.hub("hub", extra=("--max-held-bytes-per-device", "8192")).start()
    log = Log(12)
    raws = log.extend(30)
    out = pushed(hub, raws)
    n = out["accepted"]
    assert isinstance(n, int) and 0 < n < 30, out
    assert sum(len(r) for r in raws[:n]) <= 8192 < sum(len(r) for r in raws[: n + 1])
    assert {r["code"] for r in out["rejected"]} == {"quota"}, out  # type: ignore[attr-defined]


def test_pending_quota_covers_unknown_keys_in_a_push(procs: Procs) -> None:
    hub = procs.hub("hub", extra=("--max-pending-devices", "2")).start()
    for i in range(2):
        assert enroll(hub, Identity.generate(), f"Meja {i}").status == 200
    r = enroll(hub, Identity.generate(), "Meja 3")
    assert r.status == 429 and r.error["code"] == "quota", r
    newcomer = Log(13)
    out = pushed(hub, newcomer.extend(2))
    assert out["accepted"] == 0, out
    assert {x["code"] for x in out["rejected"]} == {"quota"}, out  # type: ignore[attr-defined]
    assert len(get_json(hub.url + "/v1/devices")) == 2
    assert not out["receipts"], out
