"""The kit's per-language programs: static files shipped under `lab/kit/programs/<lang>/`, copied verbatim.

Every kit's programs are byte-identical (they read `connection.env` at run time), so a program is proven once
for all kits. Each language directory also holds `NOTES.md` (which line turns verification on, what its
absence looks like, the dependency line, build and run commands): the kit's README is assembled from them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lab.errors import KitError

__all__ = ["LANGUAGES", "PROGRAMS_DIR", "available_languages", "language_notes", "parse_languages", "program_files"]

# The contract's languages, in the order kits and READMEs list them.
LANGUAGES = ("java", "node", "go", "c", "python")
PROGRAMS_DIR = Path(__file__).with_name("programs")
# Made by building or running a program in the source tree; never part of a kit.
_SKIPPED_DIRS = {"__pycache__", "node_modules", ".venv", "target", "build"}
_SKIPPED_SUFFIXES = (".pyc", ".class", ".o")
_EXECUTABLE = 0o755


def available_languages() -> tuple[str, ...]:
    """The languages whose program ships with this lab (a directory with a run.sh)."""
    return tuple(lang for lang in LANGUAGES if (PROGRAMS_DIR / lang / "run.sh").is_file())


def parse_languages(text: str) -> tuple[str, ...]:
    """`java,node` -> ("java", "node") in the contract's order; empty or "all": every available language."""
    wanted = [part.strip().lower() for part in text.split(",") if part.strip()]
    available = available_languages()
    if not wanted or wanted == ["all"]:
        return available
    unknown = [lang for lang in wanted if lang not in LANGUAGES]
    if unknown:
        raise KitError(f"unknown language {', '.join(unknown)}", f"choose from {','.join(LANGUAGES)}")
    missing = [lang for lang in wanted if lang not in available]
    if missing:
        raise KitError(f"this lab has no {', '.join(missing)} program yet ({PROGRAMS_DIR / missing[0]} is missing)",
                       f"choose from {','.join(available) or 'none'}")
    return tuple(lang for lang in LANGUAGES if lang in wanted)


def program_files(languages: Sequence[str]) -> dict[str, tuple[bytes, int]]:
    """Each language's files as {"<lang>/<path>": (bytes, mode)}; scripts (run.sh, anything executable) 0755."""
    files: dict[str, tuple[bytes, int]] = {}
    for lang in languages:
        root = PROGRAMS_DIR / lang
        for path in sorted(root.rglob("*")):
            relative = path.relative_to(root)
            if not path.is_file() or _SKIPPED_DIRS.intersection(relative.parts) or path.suffix in _SKIPPED_SUFFIXES:
                continue
            try:
                data, executable = path.read_bytes(), path.stat().st_mode & 0o111
            except OSError as exc:
                raise KitError(f"cannot read {path}: {exc.strerror}", "reinstall amlen-lab") from exc
            mode = _EXECUTABLE if executable or path.suffix == ".sh" else 0o644
            files[f"{lang}/{relative.as_posix()}"] = (data, mode)
    return files


def language_notes(languages: Sequence[str]) -> str:
    """The README sections: per language, its NOTES.md under `## <lang>/` (its headings two levels lower)."""
    sections = []
    for lang in languages:
        path = PROGRAMS_DIR / lang / "NOTES.md"
        try:
            notes = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise KitError(f"cannot read {path}: {exc.strerror}", "reinstall amlen-lab") from exc
        sections.append(f"## {lang}/: `{lang}/run.sh`\n\n{_demoted(notes).strip()}\n")
    return "\n".join(sections)


def _demoted(markdown: str) -> str:
    """Markdown with each heading two levels lower (outside code fences): it nests under the kit's `## <lang>/`."""
    out, fenced = [], False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("#"):
            stripped = line.lstrip("#")
            line = "#" * min(len(line) - len(stripped) + 2, 6) + stripped
        out.append(line)
    return "\n".join(out) + "\n"
