"""pytest fixtures for a TLS-ready Amlen, registered by the `amlen_lab` entry point (pytest11).

    def test_round_trip(amlen_lab, amlen_mtls_client): ...

- `amlen_image` (session): the image to start: `--amlen-image`, else None, meaning LAB_IMAGE or the lab's
  default. Override it in a conftest.py to build or pick an image.
- `amlen_lab` (session): a started `lab.testing.AmlenLabContainer`, stopped and removed after the session.
- `amlen_tls_client` / `amlen_mtls_client` (function): paho clients connected to the TLS / mutual-TLS
  endpoint (the latter with the default client certificate), loop running, disconnected after the test.
- `amlen_admin` (function): a ready `lab.amlen.admin.AmlenClient` for the admin API, which the container locks as
  `invoke up` does (HTTPS, the lab.admin client certificate); closed after the test.

Importing this module is cheap and touches nothing: docker, testcontainers and paho are imported, and a
container started, only when a test asks for one of these fixtures, so sessions without Docker are unaffected.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from lab.testing import AmlenLabContainer

__all__ = ["amlen_admin", "amlen_image", "amlen_lab", "amlen_mtls_client", "amlen_tls_client", "pytest_addoption"]


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add `--amlen-image`."""
    group = parser.getgroup("amlen-lab", "Amlen test container (amlen-lab)")
    group.addoption(
        "--amlen-image",
        default=None,
        metavar="IMAGE",
        help="image the amlen_lab fixture starts (default: LAB_IMAGE, else quay.io/amlen/amlen-server:main)",
    )


@pytest.fixture(scope="session")
def amlen_image(pytestconfig: pytest.Config) -> str | None:
    """The image for `amlen_lab`: --amlen-image, else None (LAB_IMAGE, else the lab's default)."""
    image: str | None = pytestconfig.getoption("amlen_image")
    return image


@pytest.fixture(scope="session")
def amlen_lab(
    amlen_image: str | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AmlenLabContainer]:
    """An Amlen container with TLS and mutual-TLS endpoints configured, shared by the whole session."""
    from lab.errors import LabError
    from lab.testing import AmlenLabContainer

    try:
        lab = AmlenLabContainer(amlen_image, lab_dir=tmp_path_factory.mktemp("amlen-lab")).start()
    except LabError as exc:
        failure = f"amlen_lab: {exc}" + (f"\n{exc.details}" if exc.details else "")
    else:
        try:
            yield lab
        finally:
            lab.stop()
        return
    # Outside the `except`: one line with the hint (and the server's log tail), no chained traceback.
    pytest.fail(failure, pytrace=False)


@pytest.fixture
def amlen_tls_client(amlen_lab: AmlenLabContainer) -> Iterator[Any]:
    """A paho client connected to the TLS endpoint (server certificate verified), disconnected after."""
    yield from _connected(amlen_lab, mutual=False)


@pytest.fixture
def amlen_mtls_client(amlen_lab: AmlenLabContainer) -> Iterator[Any]:
    """A paho client connected to the mutual-TLS endpoint with the default client certificate."""
    yield from _connected(amlen_lab, mutual=True)


@pytest.fixture
def amlen_admin(amlen_lab: AmlenLabContainer) -> Iterator[Any]:
    """The admin API client (lab.amlen.admin.AmlenClient) on one keep-alive TLS session, closed after the test."""
    with amlen_lab.admin_client() as client:
        yield client


def _connected(amlen_lab: AmlenLabContainer, *, mutual: bool) -> Iterator[Any]:
    from lab.errors import LabError

    with contextlib.ExitStack() as stack:
        try:
            client = stack.enter_context(amlen_lab.connected_client(mutual=mutual))
        except LabError as exc:
            failure = str(exc)
        else:
            yield client
            return
    pytest.fail(failure, pytrace=False)
