"""A cell's code as Python sees it, and the notebook names it reads.

Both questions are about source text only, so this module imports nothing heavy: the
per-cell seed (``seeding/seeder.py``) runs before every cell and must stay cheap.

* ``canonical_source``: comments, blank lines, layout and quoting do not change what a
  cell computes, so they do not change its seed or its run's inputs.
* ``names_read``: the names whose values a cell takes from the notebook, i.e. those it
  reads before (in the order of its text) it assigns them. A name the cell assigns
  first (``history = model.fit(...)``) is the cell's own output, not an input.
"""
from __future__ import annotations

import ast
import functools
from typing import List, Tuple


@functools.lru_cache(maxsize=256)  # a pure function of the text, asked before every cell and every fit
def canonical_source(source: str) -> str:
    """A dump of the syntax tree that leaves out empty fields (so it reads the same on
    Python versions whose ``ast.dump`` differ). Source that does not parse (a cell with
    magics nobody transformed) is taken stripped, as it is."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source.strip()
    parts: List[str] = []
    _dump(tree, parts)
    return "".join(parts)


def _dump(node, parts) -> None:
    if isinstance(node, ast.AST):
        parts.append(type(node).__name__ + "(")
        for name in node._fields:
            value = getattr(node, name, None)
            if value is None or value == []:
                continue
            parts.append(name + "=")
            _dump(value, parts)
            parts.append(",")
        parts.append(")")
    elif isinstance(node, list):
        parts.append("[")
        for item in node:
            _dump(item, parts)
            parts.append(",")
        parts.append("]")
    else:
        parts.append(repr(node))


def names_read(source: str) -> List[str]:
    """Global names ``source`` reads before it binds them, in order of first reading.

    Textual order stands in for run order: a name bound in a branch that did not run and
    then read would be missed, which no fit cell written for reuse does.
    """
    return list(_names_read(source))


@functools.lru_cache(maxsize=256)
def _names_read(source: str) -> Tuple[str, ...]:
    reads = _Reads()
    reads.visit(ast.parse(source))
    return tuple(reads.read)  # builtins too: a notebook may rebind one (the caller looks them up)


class _Reads(ast.NodeVisitor):
    def __init__(self, bound=()):
        self.bound = set(bound)
        self.read: List[str] = []

    def load(self, name: str) -> None:
        if name not in self.bound and name not in self.read:
            self.read.append(name)

    def visit_Name(self, node):
        if isinstance(node.ctx, ast.Load):
            self.load(node.id)
        else:
            self.bound.add(node.id)

    def visit_Assign(self, node):
        self.visit(node.value)
        for target in node.targets:
            self.visit(target)

    def visit_AugAssign(self, node):
        if isinstance(node.target, ast.Name):
            self.load(node.target.id)
        self.visit(node.value)
        self.visit(node.target)

    def visit_AnnAssign(self, node):
        if node.value is not None:
            self.visit(node.value)
        self.visit(node.target)

    def visit_NamedExpr(self, node):
        self.visit(node.value)
        self.visit(node.target)

    def visit_For(self, node):
        self.visit(node.iter)
        self.visit(node.target)
        for statement in node.body + node.orelse:
            self.visit(statement)

    visit_AsyncFor = visit_For

    def visit_Import(self, node):
        for alias in node.names:
            self.bound.add((alias.asname or alias.name).split(".")[0])

    visit_ImportFrom = visit_Import

    def visit_ExceptHandler(self, node):
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self.bound.add(node.name)
        for statement in node.body:
            self.visit(statement)

    def _scope(self, node, parameters, body):
        """A function, lambda or comprehension: its free names are read from the cell."""
        inner = _Reads(set(self.bound) | set(parameters))
        for part in body:
            inner.visit(part)
        for name in inner.read:
            self.load(name)

    def visit_FunctionDef(self, node):
        for decorator in node.decorator_list:
            self.visit(decorator)
        self._defaults(node.args)
        self.bound.add(node.name)
        self._scope(node, _parameters(node.args), node.body)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node):
        self._defaults(node.args)
        self._scope(node, _parameters(node.args), [node.body])

    def visit_ClassDef(self, node):
        for expression in node.bases + node.keywords + node.decorator_list:
            self.visit(expression)
        self.bound.add(node.name)
        self._scope(node, (), node.body)

    def _comprehension(self, node, results):
        self.visit(node.generators[0].iter)  # evaluated in the enclosing scope
        inner = _Reads(self.bound)
        for index, generator in enumerate(node.generators):
            if index:
                inner.visit(generator.iter)
            inner.visit(generator.target)
            for condition in generator.ifs:
                inner.visit(condition)
        for result in results:
            inner.visit(result)
        for name in inner.read:
            self.load(name)

    def visit_ListComp(self, node):
        self._comprehension(node, [node.elt])

    visit_SetComp = visit_GeneratorExp = visit_ListComp

    def visit_DictComp(self, node):
        self._comprehension(node, [node.key, node.value])

    def _defaults(self, arguments):
        for default in arguments.defaults + [d for d in arguments.kw_defaults if d is not None]:
            self.visit(default)


def _parameters(arguments) -> List[str]:
    every = arguments.posonlyargs + arguments.args + arguments.kwonlyargs
    every += [a for a in (arguments.vararg, arguments.kwarg) if a is not None]
    return [a.arg for a in every]

def binds(source: str, name: str) -> bool:
    """Whether a cell's top level binds ``name`` (a cell magic's body counts; IPython's
    syntax is turned into Python first, as the kernel would)."""
    from IPython.core.inputtransformer2 import TransformerManager

    source = source.lstrip()
    if source.startswith("%%"):
        source = source.partition("\n")[2]
    try:
        tree = ast.parse(TransformerManager().transform_cell(source))
    except SyntaxError:
        return False
    return name in _bound(tree)


def _bound(tree) -> set:
    """Names bound at module level (not inside functions or classes)."""
    names, todo = set(), [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            continue
        if isinstance(node, ast.Lambda):
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        todo.extend(ast.iter_child_nodes(node))
    return names
