"""The configuration reference (docs/configuration.md), generated from sling/schema.py alone: every key with its
type, its default, what its checks let it be, and its doc.

    python scripts/config_reference.py          # the Markdown, printed
    python scripts/update_readme.py --config    # the same, written into docs/configuration.md's generated section

Reads the schema by importing `sling.schema` and walking its dataclasses from the root, `Config`: one table per
section (`lora`, `benchmark.critic`, ...), the keys in params.yaml's order. The teacher and data sections are
unions of presets (conf/teacher/, conf/data/): their table has a column naming the presets that hold each key.
Nothing here is typed by hand but the headings' wording.
"""
from __future__ import annotations

import dataclasses
import inspect
import re
from typing import Any, Union, get_args, get_origin

from omegaconf import MISSING

from sling import schema

LONG = 80  # a default longer than this (a prompt template) is printed below its table, not in a cell
# The groups whose presets have different key sets (each preset's schema a view of the group's, schema.NODES): the
# teacher and the data profile, with their presets in conf/'s order.
PRESETS: dict[str, tuple[str, ...]] = {}
for node in schema.NODES:
    _, group, *preset = node.split("/")
    if preset:
        PRESETS[group] = (*PRESETS.get(group, ()), preset[0])


def type_name(tp: Any) -> str:
    """A field's annotation as a reader writes it: `int`, `int or null`, `list of str`, `mapping of str to Task`."""
    if tp is Any:
        return "any"
    origin, args = get_origin(tp), get_args(tp)
    if origin is Union:
        rest = [a for a in args if a is not type(None)]
        return " or ".join(type_name(a) for a in rest) + (" or null" if len(rest) < len(args) else "")
    if origin is list:
        return f"list of {type_name(args[0])}"
    if origin is dict:
        return f"mapping of {type_name(args[0])} to {type_name(args[1])}"
    return tp.__name__ if isinstance(tp, type) else str(tp)


def default_of(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def show(value: Any) -> str:
    """A default as YAML would write it in params.yaml (strings bare, null, true/false)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {show(v)}" for k, v in value.items()) + "}"
    return str(value)


def prose(text: str) -> str:
    """A docstring or doc as Markdown text: one line, and outside `code spans` the characters Markdown would read as
    HTML (`<variant>`), emphasis (`benchmark.*`, `<file>_results_<model>`) or an attribute list (`{base: ...}`)
    escaped."""
    parts = " ".join(text.split()).split("`")
    for i in range(0, len(parts), 2):
        parts[i] = re.sub(r"([*_{}])", r"\\\1", parts[i]).replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell: `prose`, with its pipes escaped."""
    return prose(text).replace("|", "\\|")


def code(text: str) -> str:
    """An inline code span that holds any backtick the text has."""
    fence = "``" if "`" in text else "`"
    pad = " " if "`" in text else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def nested(tp: Any) -> type | None:
    """The dataclass a field's value is, directly or as a mapping's values (data.tasks.<task>), else None."""
    tp = schema._strip_optional(tp)
    if get_origin(tp) is dict:
        tp = schema._strip_optional(get_args(tp)[1])
    return tp if isinstance(tp, type) and dataclasses.is_dataclass(tp) else None


def sections(cls: type, prefix: str) -> list[tuple[str, type]]:
    """`cls` and every dataclass under it, each with its dotted path (`data.tasks.<task>` for a mapping's values)."""
    out = [(prefix, cls)]
    for f in dataclasses.fields(cls):
        sub = nested(f.type)
        if sub is not None:
            mapping = get_origin(schema._strip_optional(f.type)) is dict
            out += sections(sub, f"{prefix}.{f.name}" + (".<task>" if mapping else ""))
    return out


def kind(f: dataclasses.Field) -> str:
    """What the key holds: its checks as an error message words them (`a positive integer`, `one of fast, hi_res`)
    where it has checks (schema.CHECKS), else its type."""
    return schema.describe(f) if set(f.metadata) & set(schema.CHECKS) else type_name(f.type)


def holders(group: str, name: str) -> list[str]:
    """For a union group (teacher, data): the presets whose schema view holds the key, as `group=preset`."""
    views = {p: schema.NODES[f"schema/{group}/{p}"] for p in PRESETS[group]}
    return [f"{group}={p}" for p, v in views.items() if name in {f.name for f in dataclasses.fields(v)}]


def scoped(group: str, f: dataclasses.Field) -> str:
    """A union group's key doc, prefixed with the presets that have it where not every one does (`teacher=openai`
    only: ...), unless the doc starts by naming them."""
    have, doc = holders(group, f.name), f.metadata["doc"]
    if len(have) == len(PRESETS[group]) or doc.startswith(f"{have[0]}:"):
        return doc
    return " and ".join(f"`{h}`" for h in have) + " only: " + doc


def table(path: str, cls: type) -> list[str]:
    group = path.split(".")[0]
    union = group in PRESETS and path == group
    lines = ["| key | type and checks | default | what it does |", "| --- | --- | --- | --- |"]
    long: list[tuple[str, str]] = []
    for f in dataclasses.fields(cls):
        dotted = f"{path}.{f.name}"
        value = default_of(f)
        if value is MISSING or value == MISSING:
            default = "required"
        elif nested(f.type) is not None:
            default = "the table below" if not isinstance(value, dict) or not value else code(show(value))
        elif len(show(value)) > LONG or "\n" in show(value):
            default = "the text below the table"
            long.append((dotted, show(value)))
        else:
            default = code(show(value))
        doc = scoped(group, f) if union else f.metadata["doc"]
        lines.append(f"| {code(dotted)} | {cell(kind(f))} | {cell(default)} | {cell(doc)} |")
    for dotted, text in long:
        lines += ["", f"Default of {code(dotted)}:", "", "```text", text, "```"]
    return lines


def reference() -> str:
    root = schema.Config
    lines = ["Every key of `sling/schema.py`, section by section in params.yaml's order. *Type and checks*: what the "
             "key may hold, its own checks (`choices`, `min`, `max`, `gt`, `lt`) worded as an error message words "
             "them, else its type annotation, which Hydra and OmegaConf enforce when they compose `conf/`; *default*: "
             "the value every profile starts from (*required*: a preset under `conf/` or an override sets it, else "
             "composing fails naming the key). In the teacher and data sections a key only some presets have says "
             "which. Set a key with `dvc exp run -S <key>=<value>`.", ""]
    top = [f for f in dataclasses.fields(root) if nested(f.type) is None and f.name not in PRESETS]
    lines += ["### Top level", "", "| key | type and checks | default | what it does |", "| --- | --- | --- | --- |"]
    lines += [f"| {code(f.name)} | {cell(kind(f))} | {code(show(default_of(f)))} | {cell(f.metadata['doc'])} |"
              for f in top]
    for f in dataclasses.fields(root):
        cls = nested(f.type) or schema._UNIONS.get(f.name)
        if cls is None:
            continue
        for path, sub in sections(cls, f.name):
            lines += ["", f"### `{path}`" if "." not in path else f"#### `{path}`", ""]
            doc = inspect.getdoc(sub) or ""
            lines += [prose(doc), ""] if doc else []
            if path in PRESETS:
                lines += [f"Presets: {', '.join(f'`{path}={p}`' for p in PRESETS[path])} (`conf/{path}/`).", ""]
            lines += table(path, sub)
    lines += ["", "### Checks across keys", "",
              "`sling.config.validate` runs each key's own checks, then these, before any model or data loads; "
              "each problem is one line naming the keys:", ""]
    for check in (schema.cross_key_problems, schema.launch_problems, schema.task_problems):
        lines.append(f"- `{check.__name__}`: {prose(inspect.getdoc(check) or '')}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(reference())
