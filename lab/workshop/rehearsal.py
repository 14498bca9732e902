"""`invoke workshop --rehearse`: prove the room before the participants arrive, as every participant would.

Each seat connects from its own bundle (`lab.workshop.handout`: the README's broker, address and topics, the
files it names), all in parallel, and does what the README tells a participant to do:

1. connect (mutual TLS, MQTT 3.1.1, a client ID that starts with its CN), subscribe to its own tree and the room's;
2. try one other seat's tree (the next seat by name) and must be refused (SUBACK 0x80);
3. publish to its own tree and receive it back (the round trip), then receive one broadcast on the room's tree.

Then one seat that joined runs each language's kit program (lab.kit.proof: `<lang>/run.sh` from a private copy
of its bundle, with the programs added when the bundle has none): each must receive its own message on the
workshop endpoint. A language whose toolchain is not installed is named with its install hint, not run.

A revoked seat must fail the TLS handshake. An exposed room is reached on the address the READMEs name, which
must be the exposed one. Nothing is left behind: clean sessions (no durable subscriptions), nothing retained,
client IDs of their own (`<cn>-rh<nonce>`, so no participant's session is touched), and the live subscription
monitor must show none of them afterwards.
"""

from __future__ import annotations

import secrets
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from lab.amlen.adminsec import admin_client
from lab.errors import LabError, WorkshopError
from lab.kit.programs import available_languages
from lab.kit.proof import ProgramRun, proving_copy, run_program
from lab.ledger import Ledger
from lab.pki.crl import read_crl, revoked_serials
from lab.settings import Settings
from lab.workshop.handout import Handout, HandoutProblem, bundle_dirs, read_handout
from lab.workshop.netloop import NetworkLoop
from lab.workshop.objects import ENDPOINT
from lab.workshop.room import crl_path, exposed_address
from lab.workshop.seatclient import WAIT, SeatClient
from lab.workshop.seats import workshop_dir

__all__ = ["Rehearsal", "SeatRun", "rehearse"]

Progress = Callable[[str], None]
_CONNECTING = 24  # handshakes in flight at once: enough to fill two cores, well inside any listen backlog
_DENIED = 0x80  # MQTT 3.1.1 SUBACK failure


@dataclass
class SeatRun:
    """One seat's rehearsal: refused as it must be (revoked), or joined with its times; `problem` otherwise."""

    name: str
    revoked: bool = False
    problem: str | None = None
    connect_seconds: float | None = None
    round_trip_seconds: float | None = None
    client: SeatClient | None = field(default=None, repr=False)
    handout: Handout | None = field(default=None, repr=False)

    @property
    def joined(self) -> bool:
        return self.client is not None and self.problem is None and not self.revoked


@dataclass
class Rehearsal:
    """The whole rehearsal: every seat, the broadcast, what was left behind, where the room answered."""

    seats: list[SeatRun]
    address: str | None = None
    port: int | None = None
    exposed: str | None = None
    broadcast_from: str | None = None
    broadcast_received: int = 0
    leftovers: list[str] = field(default_factory=list)
    cleanup_error: str | None = None
    seconds: float = 0.0
    program_seat: str | None = None  # the seat whose bundle the kit programs ran from
    programs: list[ProgramRun] = field(default_factory=list)

    @property
    def failures(self) -> list[SeatRun]:
        return [seat for seat in self.seats if seat.problem]

    @property
    def program_failures(self) -> list[ProgramRun]:
        """Kit programs that ran and did not receive their message (an absent toolchain is not one)."""
        return [run for run in self.programs if run.missing is None and not run.ok]

    @property
    def ok(self) -> bool:
        return (not self.failures and not self.leftovers and self.cleanup_error is None and bool(self.seats)
                and not self.program_failures)


def rehearse(settings: Settings, *, progress: Progress = lambda _: None) -> Rehearsal:
    """Rehearse every seat of the room; WorkshopError when there is no room to rehearse."""
    started = time.monotonic()
    directories = bundle_dirs(workshop_dir(settings))
    if not directories:
        raise WorkshopError("there are no seats to rehearse", "`invoke workshop --seats N` or `--roster FILE` first")
    _require_live(settings)
    revoked = revoked_serials(read_crl(crl_path(settings)))
    exposed = exposed_address(Ledger.load(settings.state_file))
    nonce = secrets.token_hex(3)
    runs = [_read(directory, revoked, exposed) for directory in directories]
    result = Rehearsal(runs, exposed=exposed)
    ready = [run for run in runs if run.handout is not None and run.problem is None]
    first = next((run.handout for run in ready if run.handout is not None), None)
    if first is not None:
        result.address, result.port = first.address, first.port
    with NetworkLoop() as loop:
        try:
            progress(f"connecting {len(ready)} seats")
            neighbours = {run.name: _neighbour(run, ready) for run in ready}
            with ThreadPoolExecutor(max_workers=max(1, min(_CONNECTING, len(ready)))) as pool:
                list(pool.map(lambda run: _join(run, nonce, neighbours[run.name], loop), ready))
            joined = [run for run in ready if run.joined]
            progress("round trips")
            _round_trips(joined, nonce)
            progress("room broadcast")
            _broadcast(result, [run for run in joined if run.problem is None], nonce)
        finally:
            progress("disconnecting")
            with ThreadPoolExecutor(max_workers=_CONNECTING) as pool:
                list(pool.map(lambda run: run.client.close() if run.client else None, runs))
    _prove_programs(result, [run for run in runs if run.joined], nonce, progress)
    progress("checking that nothing is left behind")
    _check_clean(settings, result, nonce)
    result.seconds = time.monotonic() - started
    return result


def _require_live(settings: Settings) -> None:
    try:
        with admin_client(settings, timeout=5.0) as amlen:
            entry = amlen.endpoint_monitor(ENDPOINT)
    except LabError as exc:
        raise WorkshopError(f"cannot rehearse: {exc.message}", "`invoke up`, then `invoke workshop --seats N`") \
            from exc
    if entry is None or not entry.get("Enabled") or entry.get("LastErrorCode"):
        raise WorkshopError(f"cannot rehearse: {ENDPOINT} is not live",
                            "`invoke workshop --seats N` (or --roster) sets it up again")


def _read(directory: Path, revoked: set[int], exposed: str | None) -> SeatRun:
    run = SeatRun(directory.name)
    try:
        run.handout = read_handout(directory)
    except HandoutProblem as exc:
        run.problem = str(exc)
        return run
    run.revoked = run.handout.serial in revoked
    if exposed is not None and run.handout.address != exposed:
        run.problem = (f"its README names {run.handout.address}, but the room is exposed on {exposed} "
                       f"(`invoke workshop --expose {exposed}` rewrites the READMEs)")
    return run


def _neighbour(run: SeatRun, ready: list[SeatRun]) -> str:
    """The own tree of the next seat by name (another participant's), for the isolation check."""
    others = [r for r in ready if r.name != run.name and r.handout is not None]
    if not others:
        return f"workshop/seat.{secrets.token_hex(4)}/#"  # a one-seat room: any tree that is not its own
    index = next((i for i, r in enumerate(others) if r.name.lower() > run.name.lower()), 0)
    handout = others[index].handout
    assert handout is not None
    return handout.own_filter


def _join(run: SeatRun, nonce: str, neighbour: str, loop: NetworkLoop) -> None:
    """Connect (a revoked seat must be refused), subscribe to its trees, be refused another seat's."""
    handout = run.handout
    assert handout is not None
    client = SeatClient(handout, f"{handout.cn}-rh{nonce}", loop)
    began = time.monotonic()
    outcome = client.connect()
    if run.revoked:
        if outcome == "accepted":
            run.problem = "revoked, yet the server admitted it (is the CRL on the security profile?)"
        client.close()
        return
    run.client = client
    if outcome != "accepted":
        run.problem = f"cannot connect: {outcome}"
        return
    run.connect_seconds = time.monotonic() - began
    granted = client.subscribe(handout.own_filter, handout.room_filter)
    if granted is None or any(code >= _DENIED for code in granted):
        run.problem = f"subscribing to {handout.own_filter} and {handout.room_filter}: SUBACK {granted}"
        return
    refused = client.subscribe(neighbour)
    if refused != [_DENIED]:
        run.problem = f"could subscribe to another seat's {neighbour} (SUBACK {refused}; must be [128])"


def _round_trips(joined: list[SeatRun], nonce: str) -> None:
    """Every seat publishes to its own tree at once, then each must receive its own message back."""
    sent: dict[str, float] = {}
    for run in joined:
        assert run.client is not None and run.handout is not None
        sent[run.name] = time.monotonic()
        if not run.client.publish(f"{run.handout.own_topic}/rehearsal-{nonce}", _payload(nonce, run)):
            run.problem = f"no PUBACK for a message to {run.handout.own_topic}/..."
    deadline = time.monotonic() + WAIT
    for run in joined:
        if run.problem:
            continue
        assert run.client is not None and run.handout is not None
        arrived = run.client.received_at(f"{run.handout.own_topic}/rehearsal-{nonce}", _payload(nonce, run),
                                         timeout=max(0.1, deadline - time.monotonic()))
        if arrived is None:
            run.problem = f"its own message on {run.handout.own_topic}/... did not come back"
        else:
            run.round_trip_seconds = arrived - sent[run.name]


def _broadcast(result: Rehearsal, joined: list[SeatRun], nonce: str) -> None:
    """One seat publishes to the room; every seat must receive it."""
    if not joined:
        return
    sender = joined[0]
    assert sender.client is not None and sender.handout is not None
    topic, payload = f"{sender.handout.room_topic}/rehearsal-{nonce}", f"{nonce} room".encode()
    result.broadcast_from = sender.name
    if not sender.client.publish(topic, payload):
        sender.problem = f"no PUBACK for the room broadcast on {topic}"
        return
    deadline = time.monotonic() + WAIT
    for run in joined:
        assert run.client is not None
        if run.client.received_at(topic, payload, timeout=max(0.1, deadline - time.monotonic())) is None:
            run.problem = f"did not receive the room broadcast on {topic}"
        else:
            result.broadcast_received += 1


def _check_clean(settings: Settings, result: Rehearsal, nonce: str) -> None:
    """The live subscription monitor must show none of the rehearsal's client IDs (clean sessions end)."""
    deadline = time.monotonic() + WAIT
    try:
        with admin_client(settings, timeout=5.0) as amlen:
            while True:
                left = amlen.subscriptions(ClientID=f"*-rh{nonce}", StatType="AllUnsorted", ResultCount="100")
                result.leftovers = sorted({str(sub.get("ClientID")) for sub in left})
                if not left or time.monotonic() > deadline:
                    return
                time.sleep(0.2)
    except LabError as exc:
        result.cleanup_error = exc.message


def _prove_programs(result: Rehearsal, joined: list[SeatRun], nonce: str, progress: Progress) -> None:
    """Each language's kit program, run from a copy of the first joined seat's bundle, all languages at once."""
    seat = next((run for run in joined if run.handout is not None), None)
    languages = available_languages()
    if seat is None or seat.handout is None or not languages:
        return
    result.program_seat = seat.name
    progress(f"kit programs ({', '.join(languages)}) as seat {seat.name}")
    bundle = seat.handout.dir
    # A client ID inside the seat's prefix that no participant uses.
    env = {"KIT_CLIENT_ID": f"{seat.handout.cn}-rh{nonce}"}

    def prove(language: str) -> ProgramRun:
        with tempfile.TemporaryDirectory(prefix=f"amlen-lab-kit-{language}-") as scratch:
            copy = proving_copy(bundle, Path(scratch) / bundle.name, [language])
            return run_program(copy, language, "mtls", env=env)

    with ThreadPoolExecutor(max_workers=len(languages)) as pool:
        result.programs = list(pool.map(prove, languages))


def _payload(nonce: str, run: SeatRun) -> bytes:
    return f"{nonce} {run.name}".encode()
