"""A ``tf.data`` pipeline by its graph, made canonical: the same pipeline built twice, or in
another process, gives the same bytes; one that reads outside its graph (Python code,
files, a cache on disk) is refused, to be hashed batch by batch as the fit reads it.
"""
from __future__ import annotations

from typing import Optional

from ..errors import Unfingerprintable


def is_tf_dataset(value) -> bool:
    return (type(value).__module__ or "").startswith("tensorflow") and hasattr(value, "_as_serialized_graph")


def is_tf_function(value) -> bool:
    return (type(value).__module__ or "").startswith("tensorflow") and hasattr(value, "python_function")


#: Dataset ops that read something the graph does not hold: Python code, files, caches on disk.
_OUTSIDE_OPS = ("PyFunc", "GeneratorDataset", "TextLine", "TFRecord", "FixedLengthRecord", "ReadFile",
                "MatchingFiles", "CSVDataset", "SqlDataset", "LMDB", "LoadDataset", "SnapshotDataset",
                "WriteFile")


def _outside_source(graph) -> Optional[str]:
    """The first op that makes the dataset depend on more than its graph, or None."""
    nodes = list(graph.node) + [node for function in graph.library.function for node in function.node_def]
    constants = {node.name: node for node in graph.node if node.op == "Const"}
    for node in nodes:
        if any(part in node.op for part in _OUTSIDE_OPS):
            return node.op
        if node.op.startswith("CacheDataset"):
            filename = constants.get(node.input[1].split(":")[0]) if len(node.input) > 1 else None
            if filename is None or filename.attr["value"].tensor.string_val != [b""]:
                return "CacheDataset (a cache on disk)"
    return None


def dataset_graph_bytes(dataset) -> bytes:
    """The dataset's graph, canonical: data constants and shuffle seeds included;
    per-process counters (function names, metadata ids, resource names) replaced.

    Raises ``Unfingerprintable(consumable=True)`` for a pipeline that reads what its
    graph does not hold (a Python generator, files): those are fingerprinted batch by
    batch as the fit reads them.
    """
    import tensorflow as tf

    graph = tf.compat.v1.GraphDef.FromString(dataset._as_serialized_graph().numpy())
    source = _outside_source(graph)
    if source is not None:
        raise Unfingerprintable(f"is a tf.data pipeline that reads outside its graph ({source})",
                                consumable=True)
    names = _canonical_function_names(graph)
    for node in list(graph.node) + [n for f in graph.library.function for n in f.node_def]:
        if "metadata" in node.attr:
            del node.attr["metadata"]
        if node.op in names:
            node.op = names[node.op]
        for attribute in node.attr.values():
            _rename_functions(attribute, names)
        if node.op == "Const" and node.attr["dtype"].type == tf.resource.as_datatype_enum:
            for handle in node.attr["value"].tensor.resource_handle_val:
                handle.name = ""
                handle.container = ""
    for function in graph.library.function:
        function.signature.name = names.get(function.signature.name, function.signature.name)
    functions = sorted(graph.library.function, key=lambda f: f.signature.name)
    del graph.library.function[:]
    graph.library.function.extend(functions)
    return graph.SerializeToString(deterministic=True)


def _canonical_function_names(graph) -> dict:
    """``__inference_Dataset_map_lambda_8`` -> ``f0``...: numbered by first use, so the
    same pipeline built twice (or in another process) gets the same names."""
    library = {function.signature.name: function for function in graph.library.function}
    names = {}

    def visit(nodes):
        for node in nodes:
            for name in [node.op] + [n for value in node.attr.values() for n in _function_refs(value)]:
                if name in library and name not in names:
                    names[name] = f"f{len(names)}"
                    visit(library[name].node_def)

    visit(graph.node)
    for name in sorted(library):  # unreachable ones, if any, last and in name order
        names.setdefault(name, f"f{len(names)}")
    return names


def _function_refs(value):
    if value.HasField("func"):
        yield value.func.name
    if value.HasField("list"):
        for function in value.list.func:
            yield function.name


def _rename_functions(value, names) -> None:
    if value.HasField("func") and value.func.name in names:
        value.func.name = names[value.func.name]
    if value.HasField("list"):
        for function in value.list.func:
            if function.name in names:
                function.name = names[function.name]
