"""What every step shares: the user's options for a run, the run's context, and the Step protocol."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from lab.ledger import Ledger
from lab.settings import Settings

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container

    from lab.amlen.admin import AmlenClient
    from lab.amlen.adminsec import Rung
    from lab.container.engine import Engine

__all__ = ["LabContext", "Options", "Step"]


@dataclass(frozen=True)
class Options:
    """The user's choices for one `up`/`down`/`configure`."""

    hosts: bool = True
    force_hosts: bool = False
    verify: bool = True
    keep_on_failure: bool = False
    keep_container: bool = False
    purge: bool = False


@dataclass
class LabContext:
    """What the steps share during one run: settings, ledger, options, and lazily made clients."""

    settings: Settings
    ledger: Ledger
    run_id: str
    options: Options = field(default_factory=Options)
    progress: Callable[[str], None] = lambda _: None
    # A line the user must see now (the spinner stops): e.g. why sudo is about to ask for a password.
    notice: Callable[[str], None] = lambda _: None
    # Which ledger entries an undo may remove: this run's (rollback) or all (down).
    undo_all: bool = False
    container: Container | None = None
    # The container's volume was made by this run: Amlen holds its defaults only, so nothing need be read back.
    fresh_server: bool = False
    # Which lock the admin API answered through (lab.amlen.adminsec.Rung), found by readiness.
    admin_rung: Rung | None = None
    _engine: Engine | None = None
    _amlen: AmlenClient | None = None

    @property
    def engine(self) -> Engine:
        """The container engine (`lab.container.engine.connect`), connected on first use."""
        if self._engine is None:
            from lab.container.engine import connect  # the docker SDK only for steps that use Docker

            self._engine = connect()
        return self._engine

    @property
    def docker(self) -> docker.DockerClient:
        """The engine's docker client, connected on first use."""
        return self.engine.client

    @property
    def amlen(self) -> AmlenClient:
        """The admin API client for this lab's Amlen (`lab.amlen.adminsec.admin_client`; readiness and the admin-plane
        step swap in the one for the lock the server is behind)."""
        if self._amlen is None:
            from lab.amlen.adminsec import admin_client

            self._amlen = admin_client(self.settings)
        return self._amlen

    def use_amlen(self, client: AmlenClient, rung: Rung) -> None:
        """From now on, talk to Amlen through `client` (it answered on `rung`)."""
        if self._amlen is not None and self._amlen is not client:
            self._amlen.close()
        self._amlen, self.admin_rung = client, rung

    def in_scope(self, entry: Any) -> bool:
        """May an undo in this run remove what `entry` records?"""
        return bool(entry) and (self.undo_all or entry.get("run") == self.run_id)

    def close(self) -> None:
        """Release the clients."""
        if self._amlen is not None:
            self._amlen.close()
        if self._engine is not None:
            self._engine.client.close()


class Step(Protocol):
    """One reversible piece of the lab."""

    name: str

    def check(self, ctx: LabContext) -> bool | str:
        """True (or a reason, in words) when `apply` can be skipped: already done, or not wanted."""
        ...

    def apply(self, ctx: LabContext) -> str:
        """Do the step; returns one line saying what was done."""
        ...

    def undo(self, ctx: LabContext) -> str:
        """Undo what the ledger (within scope) says this step created; returns one line."""
        ...
