"""What Amlen's own log files say about an endpoint that takes no connections, in words."""

from __future__ import annotations

from docker.models.containers import Container

from lab.container.runtime import read_server_logs

__all__ = ["LOG_FINDINGS", "connection_log_findings", "explain_server_log"]


def connection_log_findings(container: Container, *endpoints: str) -> list[str]:
    """Why Amlen takes no connection on `endpoints`, in words, from its own log files (newest finding first).

    The POST that made an endpoint answered 200 either way; only the log says CWLNA1119 (too little memory)
    or CWLNA1102 (port taken). See `lab.amlen.logs.LOG_FINDINGS`.
    """

    text = read_server_logs(container, lines=400, names=("imaserver-connection.log", "imaserver-default.log"))
    findings: list[str] = []
    for endpoint in endpoints:
        findings += [words for words in explain_server_log(text, endpoint) if words not in findings]
    return findings


# Messages in Amlen's own log files that explain an endpoint which was accepted but takes no connection.
# The POST answered 200 in both cases: only the log (and a real connection) tells.
LOG_FINDINGS: dict[str, str] = {
    "CWLNA1119": (
        "Amlen closes every connection at once (CWLNA1119 'too many active connections'): it allows "
        "2 x 4000 connections per whole GiB of memory, so under 1 GiB none; give the container at least 1g "
        "(LAB_MEMORY=1g or more, then `invoke down` and `invoke up`)"
    ),
    "CWLNA1102": (
        "Amlen could not open the endpoint's port (CWLNA1102, e.g. Errno=98: another endpoint or process holds "
        "it inside the container); free it, then `invoke up` posts the endpoint again"
    ),
}


def explain_server_log(text: str, endpoint: str | None = None) -> list[str]:
    """What Amlen's log says about why an endpoint takes no connections, in words (newest finding first).

    Only lines naming `endpoint` count when it is given (Amlen writes `Endpoint="TLSTestPort"` or
    `Endpoint=TLSTestPort`).
    """
    found: list[str] = []
    for line in reversed(text.splitlines()):
        for code, words in LOG_FINDINGS.items():
            if code not in line or words in found:
                continue
            if endpoint is None or f"Endpoint={endpoint}" in line or f'Endpoint="{endpoint}"' in line:
                found.append(words)
    return found
