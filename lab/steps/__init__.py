"""The lab's steps. Each knows how to check itself ("already done?"), apply itself and undo itself.

A step records what it creates in the ledger, tagged with the run that created it, before it moves on.
`undo` touches only ledger entries that the context's scope allows: a failed `up` undoes its own run,
`down` undoes every run. Every `undo` succeeds when there is nothing left to undo.
"""

from __future__ import annotations

from lab.steps.amlen import AmlenConfigStep, EndpointsLiveStep
from lab.steps.context import LabContext, Options, Step
from lab.steps.local import CertificatesStep, HostsStep, VerifyStep
from lab.steps.machine import ContainerStep, PreflightStep, ReadyStep

__all__ = [
    "AmlenConfigStep",
    "CertificatesStep",
    "ContainerStep",
    "EndpointsLiveStep",
    "HostsStep",
    "LabContext",
    "Options",
    "PreflightStep",
    "ReadyStep",
    "Step",
    "VerifyStep",
]
