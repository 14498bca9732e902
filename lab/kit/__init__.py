"""Connection kits: a client's (or a workshop seat's) credentials, connection facts and one program per language.

    connection  connection.env / connection.json        pkcs12    the keystore, the truststore, the password
    programs    lab/kit/programs/<lang>/, copied as is   readme    the kit's README
    writer      one writer for client kits and seats     client    `invoke kit`: .lab/kits/<client>/
"""

from __future__ import annotations

from lab.kit.client import kits_dir, make_client_kit, refresh_kits, refreshing_kits, remove_kits, write_client_kit
from lab.kit.connection import Connection, KitFiles
from lab.kit.programs import LANGUAGES, available_languages, parse_languages
from lab.kit.writer import KitResult, KitSpec, write_kit

__all__ = [
    "LANGUAGES",
    "Connection",
    "KitFiles",
    "KitResult",
    "KitSpec",
    "available_languages",
    "kits_dir",
    "make_client_kit",
    "parse_languages",
    "refresh_kits",
    "refreshing_kits",
    "remove_kits",
    "write_client_kit",
    "write_kit",
]
