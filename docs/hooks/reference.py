"""MkDocs hook: the reference pages are written from the code at build time, so they cannot drift from it.

A page holds a marker line such as `<!-- reference: tasks -->`; the build replaces it with what the code says:

- `tasks`: invoke's own task collection from tasks.py (each task's docstring; its flags, as `invoke --help TASK`
  prints them, with their help and defaults);
- `settings`: the fields of `lab.settings.Settings` (the key, its default), the docstring of each field's check
  in lab/settings.py (the allowed values) and the comments of .env.example (what it does);
- `errors`: the error family in lab/errors.py (each class and its docstring) and every message and hint that
  lab/ raises each class with (read from the source with `ast`, nothing run).

Where code and text disagree (a setting .env.example does not describe, a default .env.example states
differently, a check without a docstring, an unknown marker) the hook logs a warning, which
`mkdocs build --strict` turns into a failed build.
"""

from __future__ import annotations

import ast
import dataclasses
import html
import inspect
import logging
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import Files
from mkdocs.structure.pages import Page

ROOT = Path(__file__).resolve().parent.parent.parent
MARKER = re.compile(r"^<!-- reference: ([a-z]+) -->$", re.MULTILINE)
log = logging.getLogger("mkdocs.hooks.reference")


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    """Make tasks.py and lab importable from the checkout being documented (not an installed copy)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return config


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    """Replace each reference marker in a page with the tables generated from the code."""

    def generated(match: re.Match[str]) -> str:
        name = match[1]
        if name not in GENERATORS:
            log.warning(f"{page.file.src_uri}: unknown reference marker {name!r} (known: {', '.join(GENERATORS)})")
            return ""
        return GENERATORS[name]()

    return MARKER.sub(generated, markdown)


# ---- Markdown helpers ---------------------------------------------------------------------------------------


def cell(text: str) -> str:
    """Text for a Markdown table cell or paragraph: HTML-escaped, no emphasis or link syntax, `code` kept."""
    escaped = html.escape(text, quote=False)
    for char in "\\*_|[]":
        escaped = escaped.replace(char, f"&#{ord(char)};")
    parts = escaped.split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: show it as it is
        return escaped.replace("`", "&#96;")
    return "".join(f"<code>{part}</code>" if index % 2 else part for index, part in enumerate(parts))


def table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    """A Markdown table; cells must already be escaped with `cell`."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return ["", *lines, ""]


# ---- tasks: invoke's own help ---------------------------------------------------------------------------------


def _default(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if value in ("", None, []):
        return "-"
    return cell(f"`{value}`")


def tasks_page() -> str:
    """Every task of tasks.py: a summary table, then per task its docstring and flags as `--help` shows them."""
    from invoke import Collection

    import tasks

    collection = Collection.from_module(tasks)
    contexts = {context.name: context for context in collection.to_contexts()}
    names = list(collection.task_names)
    out = table(("task", "what it does"),
                [(f"[`{name}`](#{name})", cell(_summary(collection[name].__doc__))) for name in names])
    for name in names:
        task, context = collection[name], contexts[name]
        out += [f"### `invoke {name}` {{ #{name} }}", "", cell(inspect.cleandoc(task.__doc__ or "")), ""]
        rows = []
        for argument in sorted(task.get_arguments(), key=lambda a: a.names[0]):
            flags, text = context.help_for(f"--{argument.names[0].replace('_', '-')}")
            rows.append((cell(f"`{flags}`"), _default(argument.default), cell(text)))
        out += table(("flag", "default", "what it does"), rows) if rows else ["No flags.", ""]
    return "\n".join(out)


def _summary(doc: str | None) -> str:
    return inspect.cleandoc(doc or "").split("\n\n")[0].replace("\n", " ")


# ---- settings: the Settings fields, their checks and .env.example --------------------------------------------


@dataclasses.dataclass
class _Group:
    """Keys that .env.example describes with one comment."""

    description: str
    keys: list[str] = dataclasses.field(default_factory=list)
    values: dict[str, str] = dataclasses.field(default_factory=dict)


def env_example_groups(path: Path) -> list[_Group]:
    """.env.example's keys, grouped by the comment above them (a blank line ends a group)."""
    groups: list[_Group] = []
    comment: list[str] = []
    current: _Group | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            comment.append(line.lstrip("#").strip())
        elif "=" in line:
            key, value = line.split("=", 1)
            if comment or current is None:
                current = _Group(" ".join(comment))
                groups.append(current)
            current.keys.append(key.strip())
            current.values[key.strip()] = value.strip()
            comment = []
        else:
            comment, current = [], None
    return groups


_TYPE_WORDS = {"bool": "`true` or `false`", "int": "an integer", "float": "a number", "str": "text",
               "Path": "a path", "Secret": "text, kept secret", "tuple": "comma-separated names"}


def _allowed(name: str, kind: str, checks: dict[str, Any]) -> str:
    """The allowed values: the check's docstring, else what the field's type accepts."""
    check = checks.get(name)
    if check is not None:
        doc = inspect.getdoc(check)
        if not doc:
            log.warning(f"lab/settings.py: {check.__name__}, the check of LAB_{name.upper()}, has no docstring "
                        "naming the allowed values")
        return doc or ""
    words = _TYPE_WORDS.get(kind.split("[")[0].split(" ")[0].split("|")[0].strip(), "text")
    return words + (" (empty: unset)" if "None" in kind else "")


def _shown(value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


def settings_page() -> str:
    """Every LAB_* setting grouped as .env.example groups them; disagreements are warnings."""
    from lab import settings as lab_settings
    from lab.values import VALUE_CHECKS

    checks: dict[str, Any] = VALUE_CHECKS
    defaults = lab_settings.Settings()
    fields = {f"LAB_{item.name.upper()}": item for item in dataclasses.fields(lab_settings.Settings)
              if item.name != "given"}
    groups = env_example_groups(ROOT / ".env.example")
    described = {key for group in groups for key in group.keys}
    for key in fields.keys() - described:
        log.warning(f".env.example does not describe {key} (lab/settings.py has it)")
    out: list[str] = []
    for group in groups:
        rows = []
        for key in group.keys:
            item = fields.get(key)
            if item is None:
                log.warning(f".env.example has {key}, which lab/settings.py does not define")
                continue
            default = getattr(defaults, item.name)
            example = group.values[key]
            given: dict[str, Any] = {item.name: example}
            if example and lab_settings.Settings(**given) != defaults:
                log.warning(f".env.example says {key}={example}, but its default in lab/settings.py is "
                            f"{_shown(default)}")
            shown = _shown(default)
            rows.append((f"`{key}`{{ #{key.lower().replace('_', '-')} }}", cell(f"`{shown}`" if shown else "empty"),
                         cell(_allowed(item.name, str(item.type), checks))))
        if rows:
            out += ["", cell(group.description), *table(("key", "default", "allowed values"), rows)]
    return "\n".join(out)


# ---- errors: the family and every message and hint it is raised with ---------------------------------------


def _constants(tree: ast.Module) -> dict[str, str]:
    """Module-level `NAME = "text"` assignments, so a hint kept in a constant is shown as its text."""
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            text = _text(node.value, found)
            if text is not None:
                found[node.targets[0].id] = text
    return found


def _text(node: ast.expr | None, constants: dict[str, str]) -> str | None:
    """The text an expression makes, with `{...}` for what is only known when it runs."""
    if node is None:
        return None
    if isinstance(node, ast.Constant):
        return node.value if isinstance(node.value, str) else None
    if isinstance(node, ast.JoinedStr):
        return "".join(str(part.value) if isinstance(part, ast.Constant)
                       else "{" + ast.unparse(part.value) + "}" if isinstance(part, ast.FormattedValue) else ""
                       for part in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _text(node.left, constants), _text(node.right, constants)
        return None if left is None or right is None else left + right
    if isinstance(node, ast.Name):
        return constants.get(node.id, "{" + node.id + "}")
    return "{" + ast.unparse(node) + "}"


def raise_sites(classes: set[str]) -> Iterator[tuple[str, str, str, str]]:
    """(class, message, hint, where) for every `raise SomeError(...)` in lab/, in file order."""
    for path in sorted((ROOT / "lab").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        constants = _constants(tree)
        found: list[tuple[int, str, str, str]] = []
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)):
                continue
            func = node.exc.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if name not in classes:
                continue
            args: list[ast.expr | None] = [*node.exc.args, None, None]
            keywords = {keyword.arg: keyword.value for keyword in node.exc.keywords}
            message = _text(keywords.get("message", args[0]), constants) or ""
            hint = _text(keywords.get("hint", args[1]), constants) or ""
            found.append((node.lineno, name, message, hint))
        for line, name, message, hint in sorted(found):
            yield name, message, hint, f"{path.relative_to(ROOT)}:{line}"


def errors_page() -> str:
    """The error family as a diagram, then per class its docstring and the messages and hints it carries."""
    from lab import errors

    classes = [getattr(errors, name) for name in errors.__all__]
    classes.sort(key=lambda cls: inspect.getsourcelines(cls)[1])
    sites: dict[str, list[tuple[str, str, str]]] = {cls.__name__: [] for cls in classes}
    for name, message, hint, where in raise_sites(set(sites)):
        sites[name].append((message, hint, where))
    out = ["", "```mermaid", "graph TD"]
    out += [f"  {base.__name__} --> {cls.__name__}" for cls in classes for base in cls.__bases__
            if base.__name__ in sites]
    out += ["```", ""]
    for cls in classes:
        found = sites[cls.__name__]
        out += [f"### `{cls.__name__}` {{ #{cls.__name__.lower()} }}", "", cell(inspect.getdoc(cls) or ""), ""]
        if found:
            out += table(("message", "hint", "raised in"),
                         [(cell(message), cell(hint) or "-", cell(f"`{where}`")) for message, hint, where in found])
        else:
            out += ["The lab raises it only through its subclasses.", ""]
    return "\n".join(out)


GENERATORS = {"tasks": tasks_page, "settings": settings_page, "errors": errors_page}
