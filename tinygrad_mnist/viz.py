"""Draw the tape: the ops that made a tensor, its parameters and inputs, as a Graphviz graph.

Call it after the forward pass and before `backward()`: backward frees the graph it walks (each
node's parents are dropped), and drawing a freed graph raises GraphFreedError. Only recorded ops
appear: an op whose inputs all had requires_grad=False (or that ran under no_grad) records nothing,
and its result shows as an input.

The DOT text is written by hand, so `draw_graph(t, "g.dot")` needs nothing installed; SVG, PNG and
PDF are rendered by Graphviz's `dot` program.
"""
import shutil
import subprocess
from collections import namedtuple
from pathlib import Path

from .tensor import toposort


Node = namedtuple("Node", "id kind label")  # kind: op, param, input, const, tensor or output
Edge = namedtuple("Edge", "src dst label")
Graph = namedtuple("Graph", "nodes edges")

RENDERED = ("svg", "png", "pdf")
INSTALL_HINT = ("install Graphviz (apt-get install graphviz, brew install graphviz, conda install graphviz, "
                "or https://graphviz.org/download/)")

STYLES = {
    "op": 'shape=box, style="rounded,filled", fillcolor="#dbe8f6", color="#4a6f9a"',
    "param": 'shape=box, style=filled, fillcolor="#fde9c8", color="#c8903a", fontsize=9',
    "input": 'shape=ellipse, style=filled, fillcolor="#d8efd3", color="#4f8a45"',
    "const": 'shape=plaintext, fontcolor="#666666", fontsize=9',
    "tensor": 'shape=ellipse, color="#999999", fontsize=9',
    "output": 'shape=ellipse, style=filled, fillcolor="#f6d5d5", color="#a04848"',
}


class GraphFreedError(RuntimeError):
    """The graph was freed by backward(); draw it before calling backward."""


class GraphvizNotFound(RuntimeError):
    """Graphviz's `dot` program is not installed; the DOT source was written instead."""


def shape_text(shape):
    return "×".join(str(n) for n in shape) if shape else "scalar"


# Where an op does not keep the options it was applied with, the attributes that hold them.
_OPTION_ATTRS = {"stride": "stride", "padding": "padding", "kernel_size": "kernel_size", "axis": "axis",
                 "exponent": "exponent", "label_smoothing": "smoothing", "batch_stats": "batch_stats"}
_HIDDEN = {"stride": 1, "padding": 0, "axis": None, "label_smoothing": 0.0}


def _option_text(key, value, options):
    if key == "kernel_size":
        return f"{value}×{value}"
    if key == "stride" and "kernel_size" in options:  # a pool's stride defaults to its kernel size
        return None if value == options["kernel_size"] else f"stride {value}"
    if key == "batch_stats":
        return "batch stats" if value else "running stats"
    if key == "exponent":
        return f"^{value:g}"
    if key in _HIDDEN and value == _HIDDEN[key]:
        return None
    words = {"padding": "pad", "label_smoothing": "smoothing"}
    return f"{words.get(key, key)} {value:g}" if isinstance(value, float) else f"{words.get(key, key)} {value}"


def op_label(ctx):
    """The op's class name and the options that change what it computes (those off their defaults)."""
    options = getattr(ctx, "options", None)
    if options is None:
        options = {key: getattr(ctx, attr) for key, attr in _OPTION_ATTRS.items() if hasattr(ctx, attr)}
    options = {k: v for k, v in options.items() if k in _OPTION_ATTRS}
    texts = [t for t in (_option_text(k, v, options) for k, v in options.items()) if t]
    return type(ctx).__name__ + ("\n" + ", ".join(texts) if texts else "")


def _name_lookup(names):
    """{id(tensor): name} from a mapping {tensor or id(tensor): name} or from (name, tensor) pairs
    such as `model.named_parameters()`."""
    if names is None:
        return {}
    if hasattr(names, "items"):
        return {(k if isinstance(k, int) else id(k)): v for k, v in names.items()}
    return {id(t): name for name, t in names}


def _parents_of_live_graph(t):
    ctx = t.grad_fn
    if ctx is not None and ctx.freed:
        raise GraphFreedError("the graph was freed by backward(): call draw_graph before loss.backward() "
                              "(or run backward(retain_graph=True))")
    return ctx.parents if ctx is not None else ()


def _tensors(root):
    """Every tensor that reaches `root` through recorded ops, inputs before the ops that use them."""
    return reversed(toposort(root, parents=_parents_of_live_graph))


def trace(tensor, names=None, merge_tensors=True):
    """The recorded graph that made `tensor`, as Graph(nodes, edges).

    One node per op and per leaf tensor (a parameter, labelled by its name from `names`; an input; a
    one-element constant, by its value) and one for `tensor` itself. With merge_tensors the other
    intermediate tensors are edges from the op that made them, labelled with their shape; without,
    each is a node of its own.
    """
    if tensor.grad_fn is None:
        raise ValueError("this tensor has no recorded graph: no input of its expression requires grad, or it "
                         "was computed under no_grad")
    lookup = _name_lookup(names)
    nodes, edges, source = [], [], {}  # source: id(tensor) → (node id, edge label) that carries it

    def add(kind, label):
        nodes.append(Node(f"n{len(nodes)}", kind, label))
        return nodes[-1].id

    for t in _tensors(tensor):
        ctx, shape = t.grad_fn, shape_text(t.shape)
        if ctx is None:
            if id(t) in lookup or t.requires_grad:
                node = add("param", f"{lookup.get(id(t), 'parameter')}\n{shape}")
            elif t.array.size == 1:
                node = add("const", f"{t.item():.4g}")
            else:
                node = add("input", f"input\n{shape}")
            source[id(t)] = (node, "")
            continue
        op = add("op", op_label(ctx))
        for parent in ctx.parents:
            src, label = source[id(parent)]
            edges.append(Edge(src, op, label))
        if t is tensor:
            edges.append(Edge(op, add("output", f"output\n{shape}"), ""))
        elif merge_tensors:
            source[id(t)] = (op, shape)
        else:
            node = add("tensor", shape)
            edges.append(Edge(op, node, ""))
            source[id(t)] = (node, "")
    return Graph(nodes, edges)


def _quote(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(tensor, names=None, merge_tensors=True):
    """The graph of `tensor` (see `trace`) as Graphviz DOT text, laid out top to bottom."""
    graph = trace(tensor, names, merge_tensors)
    lines = ["digraph tape {", "  rankdir=TB; nodesep=0.25; ranksep=0.3;",
             '  node [fontname="Helvetica", fontsize=10, height=0.3, margin="0.12,0.04"];',
             '  edge [fontname="Helvetica", fontsize=8, color="#555555", arrowsize=0.6];']
    for node in graph.nodes:
        lines.append(f"  {node.id} [label={_quote(node.label)}, {STYLES[node.kind]}];")
    kinds = {node.id: node.kind for node in graph.nodes}
    for edge in graph.edges:
        # Heavy data-flow edges keep the chain of ops straight; parameters hang beside it.
        attrs = [] if kinds[edge.src] in ("param", "const") else ["weight=8"]
        attrs += [f"label={_quote(' ' + edge.label)}"] if edge.label else []
        lines.append(f"  {edge.src} -> {edge.dst}" + (f" [{', '.join(attrs)}]" if attrs else "") + ";")
    lines.append("}")
    return "\n".join(lines) + "\n"


def draw_graph(tensor, path, format=None, names=None, merge_tensors=True):
    """Write the graph that made `tensor` to `path`: "dot" (DOT text), "svg", "png" or "pdf", taken from
    `format` or else the path's suffix. Call it before backward(), which frees the graph.

    `names` labels the parameters: `model.named_parameters()`, or a mapping {tensor or id(tensor): name}.
    Rendering needs Graphviz's `dot` program; without it the DOT text is written beside `path` (with
    the suffix .dot) and GraphvizNotFound says how to install Graphviz. Returns the path written.
    """
    path = Path(path)
    fmt = (format or path.suffix.lstrip(".") or "svg").lower()
    fmt = "dot" if fmt == "gv" else fmt
    if fmt != "dot" and fmt not in RENDERED:
        raise ValueError(f"unknown graph format {fmt!r}: use dot, {', '.join(RENDERED)}")
    text = to_dot(tensor, names, merge_tensors)
    if fmt == "dot":
        path.write_text(text, encoding="utf-8")
        return path
    dot = shutil.which("dot")
    if dot is None:
        source = path.with_suffix(".dot")
        source.write_text(text, encoding="utf-8")
        raise GraphvizNotFound(f"Graphviz's `dot` program was not found, so no {fmt.upper()} was drawn; the DOT "
                               f"source is in {source}. To render it, {INSTALL_HINT}, then run: "
                               f"dot -T{fmt} {source} -o {path}")
    result = subprocess.run([dot, f"-T{fmt}", "-o", str(path)], input=text.encode("utf-8"), capture_output=True)
    if result.returncode != 0:
        raise RuntimeError(f"dot -T{fmt} failed: {result.stderr.decode(errors='replace').strip()}")
    return path
