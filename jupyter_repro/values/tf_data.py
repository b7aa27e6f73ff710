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
    per-process counters (function names, node and argument names, metadata ids,
    resource names) replaced: Keras numbers layers per process (``preprocessor_1/Sub``
    here is ``float_normalized_1_preprocessor_1/Sub`` the next time a FeatureSpace is
    built), TensorFlow numbers tables (``HashTableFromGraphDef/0/2979…``).

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
    _canonical_node_names(graph.node)
    for function in graph.library.function:
        _canonical_function_body(function)
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


def _renamed(reference: str, names: dict) -> str:
    """``^node``, ``node``, ``node:0`` or ``node:output:0`` with the node's name mapped."""
    control = reference.startswith("^")
    name, colon, rest = reference.lstrip("^").partition(":")
    return ("^" if control else "") + names.get(name, name) + colon + rest


def _rename_inputs(nodes, names: dict) -> None:
    for node in nodes:
        node.name = names.get(node.name, node.name)
        renamed = [_renamed(reference, names) for reference in node.input]
        # data inputs keep their order (it is the op's argument order); control inputs are
        # a set, which TensorFlow lists in an order that changes between builds
        node.input[:] = [r for r in renamed if not r.startswith("^")] + sorted(r for r in renamed if r.startswith("^"))
        if "_class" in node.attr:  # colocation: ["loc:@node"]
            values = node.attr["_class"].list.s
            values[:] = [b"loc:@" + names.get(v[5:].decode(), v[5:].decode()).encode()
                         if v.startswith(b"loc:@") else v for v in values]


def _canonical_node_names(nodes) -> None:
    """Each node named by its position (``n0``, ``n1``...), every reference to it with it."""
    _rename_inputs(nodes, {node.name: f"n{i}" for i, node in enumerate(nodes)})


def _canonical_function_body(function) -> None:
    """A function's arguments, results and nodes named by position, references with them:
    their names carry the layer names Keras numbers per process."""
    signature = function.signature
    names = {arg.name: f"a{i}" for i, arg in enumerate(signature.input_arg)}
    names.update((node.name, f"n{i}") for i, node in enumerate(function.node_def))
    for arg in signature.input_arg:
        arg.name = names[arg.name]
    _rename_inputs(function.node_def, names)
    outputs = {arg.name: f"o{i}" for i, arg in enumerate(signature.output_arg)}
    for arg in signature.output_arg:
        arg.name = outputs[arg.name]
    returned = {outputs.get(key, key): _renamed(value, names) for key, value in function.ret.items()}
    function.ret.clear()
    function.ret.update(returned)
    controls = {names.get(key, key): names.get(value, value) for key, value in function.control_ret.items()}
    function.control_ret.clear()
    function.control_ret.update(controls)
    signature.control_output[:] = sorted(names.get(name, name) for name in signature.control_output)
