"""Loading the inventory: YAML files (or folders of them) in, one validated Inventory out.

An inventory may be split over any number of files, in whatever way suits the people who
keep it (one file per customer, the network in its own file...). Each file holds any of the
top-level sections `customers, sites, credentials, devices, links, circuits, vpns,
sla_contracts, users`, each a list of mappings; the sections of all files are merged, and a
key declared twice, in one file or in two, is an error. A folder stands for its `*.yaml` and
`*.yml` files in name order (not its subfolders, nor hidden files).

Files are read with ruamel.yaml's round-trip loader, which keeps the line and column of every
mapping key and list item: that is what lets a problem point at `circuits.yaml:42`. Loading
never stops at the first problem: every file is read, every object checked (see validate.py),
and `InventoryError.problems` lists them all. A file with a YAML syntax error is reported
with the line the parser stopped at; the other files are still checked, except that names
which resolve to nothing are not reported then (their object may be in the unreadable file).

The format itself is described in docs/inventory.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.constructor import DuplicateKeyError, RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    NodeEvent,
)
from ruamel.yaml.nodes import ScalarNode

from config.inventory.model import Inventory, InventoryError, InventoryProblem
from config.inventory.validate import Document, build_inventory

YAML_SUFFIXES = (".yaml", ".yml")
# The field named by problems about a whole file: missing or unreadable (reported at line 0,
# as no line of it could be read), or not valid YAML (at the line the parser stopped at).
FILE_FIELD = "(file)"
SYNTAX_FIELD = "(yaml)"
# Bounds on a file's shape, checked before it is built (see `_shape_problem`): an inventory
# nests a handful of levels, and its anchors and aliases (a shared port list, a calendar)
# stand for a few hundred nodes, not the billions of an alias flood.
MAX_YAML_DEPTH = 64
MAX_ALIAS_NODES = 100_000


class _Constructor(RoundTripConstructor):
    """The round-trip constructor, except that dates stay the text they were written as.

    ruamel turns `2025-10-01` into a date but fails with a bare ValueError, without a
    position, on `2025-13-01`; as text, a holiday is checked (and reported at its line) by
    the validation like any other field.
    """

    def construct_yaml_timestamp(self, node: ScalarNode, values: object = None) -> str:
        return str(node.value)


_Constructor.add_constructor("tag:yaml.org,2002:timestamp", _Constructor.construct_yaml_timestamp)


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.Constructor = _Constructor
    return yaml


def inventory_files(
    paths: Sequence[str | Path], problems: list[InventoryProblem] | None = None
) -> list[Path]:
    """The files that `paths` stand for: files as given, folders expanded to their YAML
    files in name order. A file reached twice is read once. Missing paths and folders
    without YAML files are appended to `problems` (when given)."""
    files: list[Path] = []
    seen: set[Path] = set()
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = sorted(
                child for child in path.iterdir()
                if child.suffix in YAML_SUFFIXES and child.is_file()
                and not child.name.startswith(".")
            )
            if not found and problems is not None:
                problems.append(InventoryProblem(str(path), 0, FILE_FIELD,
                                                 "no .yaml or .yml files in this folder"))
        elif path.exists():
            found = [path]
        else:
            if problems is not None:
                problems.append(InventoryProblem(str(path), 0, FILE_FIELD,
                                                 "no such file or folder"))
            continue
        for file in found:
            if file.resolve() not in seen:
                seen.add(file.resolve())
                files.append(file)
    return files


def _syntax_problem(file: str, error: MarkedYAMLError) -> InventoryProblem:
    mark = error.problem_mark or error.context_mark
    line = mark.line + 1 if mark is not None else 1
    problem = error.problem or "malformed YAML"
    if isinstance(error, DuplicateKeyError):
        # ruamel's text repeats both values, which may be secrets: name the key only.
        key = problem.split('"')[1] if problem.count('"') >= 2 else "?"
        message = f"key {key!r} appears twice in the same mapping"
    else:
        context = error.context or ""
        if context and error.context_mark is not None and error.context_mark.line + 1 != line:
            context += f" that starts at line {error.context_mark.line + 1}"
        message = f"YAML syntax error: {problem}" + (f" ({context})" if context else "")
    hint = ("indent with spaces, not tabs" if "\\t" in problem
            else "names used elsewhere were not checked while this file cannot be read")
    return InventoryProblem(file, line, SYNTAX_FIELD, message, hint)


def _shape_problem(file: str, text: str) -> InventoryProblem | None:
    """A file nested deeper than MAX_YAML_DEPTH, or whose aliases stand for more than
    MAX_ALIAS_NODES nodes in all ("billion laughs": ten aliases of ten aliases of ... of one
    line), as a problem at the line where the bound is crossed; else None.

    Read from the parser's events, which come one at a time without recursion, before the
    document is built: building it recurses once per level (a RecursionError at a few
    hundred levels), and validating and reporting walk every alias as often as it is used."""
    nodes_of_anchor: dict[str, int] = {}
    open_nodes: list[list[Any]] = []  # per open collection: [anchor, nodes so far]
    aliased = 0
    for event in _yaml().parse(text):
        if not isinstance(event, NodeEvent | CollectionEndEvent):
            continue
        line = event.start_mark.line + 1 if event.start_mark is not None else 1
        if isinstance(event, CollectionStartEvent):
            open_nodes.append([event.anchor, 1])
            if len(open_nodes) > MAX_YAML_DEPTH:
                return InventoryProblem(
                    file, line, SYNTAX_FIELD,
                    f"the YAML is nested more than {MAX_YAML_DEPTH} levels deep",
                    "an inventory nests a few levels: section, object, field")
            continue
        if isinstance(event, AliasEvent):
            size = nodes_of_anchor.get(event.anchor or "", 1)
            aliased += size
            if aliased > MAX_ALIAS_NODES:
                return InventoryProblem(
                    file, line, SYNTAX_FIELD,
                    f"the YAML aliases (*name) stand for more than {MAX_ALIAS_NODES:,}"
                    " values in all", "write the objects out, or use fewer aliases")
        elif isinstance(event, CollectionEndEvent):
            anchor, size = open_nodes.pop()
            if anchor:
                nodes_of_anchor[anchor] = size
        else:  # a scalar
            size = 1
            if event.anchor:
                nodes_of_anchor[event.anchor] = 1
        if open_nodes:
            open_nodes[-1][1] += size
    return None


def parse_file(path: Path, problems: list[InventoryProblem]) -> Document | None:
    """Parse one YAML file with positions; on failure append a problem and return None."""
    file = str(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as error:
        problems.append(InventoryProblem(file, 0, FILE_FIELD,
                                         f"cannot read the file ({error.strerror})"))
        return None
    except UnicodeDecodeError:
        problems.append(InventoryProblem(file, 0, FILE_FIELD, "the file is not UTF-8 text"))
        return None
    try:
        shape = _shape_problem(file, text)
        if shape is not None:
            problems.append(shape)
            return None
        root = _yaml().load(text)
    except MarkedYAMLError as error:
        problems.append(_syntax_problem(file, error))
        return None
    except (YAMLError, ValueError, TypeError, RecursionError) as error:  # no line to give
        problems.append(InventoryProblem(file, 1, SYNTAX_FIELD,
                                         f"YAML error: {type(error).__name__}"))
        return None
    return Document(file, root)


def check_inventory(paths: Sequence[str | Path]) -> tuple[Inventory | None, list[InventoryProblem]]:
    """Read and validate the inventory files: (inventory, []) when valid, else (None,
    every problem found, sorted by file and line)."""
    problems: list[InventoryProblem] = []
    documents = []
    for path in inventory_files(paths, problems):
        document = parse_file(path, problems)
        if document is not None:
            documents.append(document)
    complete = not problems
    inventory, found = build_inventory(documents, complete=complete)
    problems.extend(found)
    if problems:
        return None, sorted(problems, key=lambda p: (p.file, p.line, p.field))
    assert inventory is not None
    return inventory, []


def load_inventory(paths: Sequence[str | Path]) -> Inventory:
    """Load and validate the inventory files (YAML files or folders of them).

    Returns the merged Inventory, or raises InventoryError listing every problem found in
    every file (`error.report()` gives one `file:line: field: message (hint: ...)` a line).
    """
    inventory, problems = check_inventory(paths)
    if problems:
        raise InventoryError(problems)
    assert inventory is not None
    return inventory
