"""Gradients are right on whole graphs, not only op by op: random DAGs of every op in `OPS` (see
strategies.py), with tensors reused at different depths, checked against central differences in float64
and against PyTorch; and the order backward() runs the VJPs in, the one graph walk (`toposort`), and the
tools that reuse it (viz.trace, training.feature_maps) are checked on the same graphs.
"""
import contextlib
import importlib
import importlib.util
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

import tinygrad_mnist.functional as F
from tinygrad_mnist import OPS, GradcheckError, gradcheck, nn, toposort, viz
from tinygrad_mnist.training import feature_maps

from strategies import BUILDERS, OURS, graphs, leaf_count, ours, theirs, torch_loss_and_gradients

EXAMPLES = 40  # random graphs per op and per test below, each with up to 5 more random ops around that op
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
WALK_SETTINGS = settings(SETTINGS, max_examples=150)
FULL_CHECK = 40  # leaf elements up to which gradcheck perturbs each one; beyond, 8 random directions
RTOL, ATOL = 1e-9, 1e-11  # against PyTorch in float64: only the order of summation differs

needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch is not installed")
every_op = pytest.mark.parametrize("op", sorted(OPS))


def check_mode(graph):
    return {} if leaf_count(graph) <= FULL_CHECK else {"directions": 8}


def recorded_parents(t):
    return t.grad_fn.parents if t.grad_fn is not None else ()


def differentiable_parents(t):
    return [p for p in t.grad_fn.parents if p.requires_grad] if t.grad_fn is not None else []


def reachable(root, parents):
    """Every tensor from which `root` is reached along `parents`, by id (a plain search, no order)."""
    found, stack = {id(root): root}, [root]
    while stack:
        for p in parents(stack.pop()):
            if id(p) not in found:
                found[id(p)] = p
                stack.append(p)
    return found


def path_lengths(root):
    """For each tensor reaching `root`, by id, the set of lengths of the paths from `root` to it."""
    lengths = {id(root): {0}}
    for t in toposort(root):  # each tensor after all its consumers: its set is complete when it is read
        for p in (t.grad_fn.parents if t.grad_fn is not None else ()):
            lengths.setdefault(id(p), set()).update(n + 1 for n in lengths[id(t)])
    return lengths


def push_marking_order(root, parents):
    """The order backward() used before toposort: a depth-first search that marks a tensor visited when
    it is first pushed, then reversed. A tensor reached again later, along a longer path, is not pushed
    again, so it can come out before one of its consumers."""
    order, visited, stack = [], {id(root)}, [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        stack.append((node, True))
        for parent in parents(node):
            if id(parent) not in visited:
                visited.add(id(parent))
                stack.append((parent, False))
    return order[::-1]


@contextlib.contextmanager
def recorded_vjps():
    """Every op's VJP appends its node to the yielded list when it is called."""
    calls, originals = [], {cls: cls.backward for cls in OPS.values()}

    def recording(original):
        def backward(ctx, g):
            calls.append(ctx)
            return original(ctx, g)
        return backward

    try:
        for cls, original in originals.items():
            cls.backward = recording(original)
        yield calls
    finally:
        for cls, original in originals.items():
            cls.backward = original


def test_the_graph_builders_cover_every_op_in_the_op_table():
    assert set(BUILDERS) == set(OPS), f"ops the random graphs never build: {sorted(set(OPS) - set(BUILDERS))}"
    assert set(OURS) == set(OPS)


@needs_torch
def test_the_pytorch_interpreter_covers_every_op_in_the_op_table():
    assert set(theirs()) == set(OPS)


@every_op
@SETTINGS
@given(data=st.data())
def test_every_op_is_on_the_tape_of_the_random_graphs_built_around_it(op, data):
    fn, leaves = ours(data.draw(graphs(featured=op)))
    assert op in {type(t.grad_fn).__name__.lower() for t in toposort(fn(*leaves)) if t.grad_fn is not None}


@WALK_SETTINGS
@given(graph=graphs())
def test_every_random_graph_has_a_tensor_reached_along_paths_of_different_lengths(graph):
    fn, leaves = ours(graph)
    assert any(len(lengths) > 1 for lengths in path_lengths(fn(*leaves)).values())


@every_op
@SETTINGS
@given(data=st.data())
def test_random_graph_gradients_match_finite_differences(op, data):
    graph = data.draw(graphs(featured=op))
    fn, leaves = ours(graph)
    assert gradcheck(fn, *leaves, **check_mode(graph))


@needs_torch
@every_op
@SETTINGS
@given(data=st.data())
def test_random_graph_losses_and_gradients_match_pytorch(op, data):
    graph = data.draw(graphs(featured=op))
    fn, leaves = ours(graph)
    loss = fn(*leaves)
    loss.backward()
    expected_loss, expected = torch_loss_and_gradients(graph)
    np.testing.assert_allclose(float(loss.array), expected_loss, rtol=RTOL, atol=ATOL, err_msg="loss")
    for i, (leaf, grad) in enumerate(zip(leaves, expected)):
        ours_grad = leaf.grad if leaf.grad is not None else np.zeros(leaf.shape)
        np.testing.assert_allclose(ours_grad, grad, rtol=RTOL, atol=ATOL, err_msg=f"gradient of leaf {i}")


@every_op
@SETTINGS
@given(data=st.data())
def test_random_graphs_in_float32_give_every_leaf_a_float32_gradient_of_its_shape(op, data):
    fn, leaves = ours(data.draw(graphs(featured=op)), dtype=np.float32)
    loss = fn(*leaves)
    used = reachable(loss, differentiable_parents)
    loss.backward()
    for leaf in leaves:
        if id(leaf) in used:
            assert leaf.grad is not None and leaf.grad.shape == leaf.shape and leaf.grad.dtype == np.float32
        else:
            assert leaf.grad is None


def test_a_sort_that_marks_tensors_when_first_pushed_fails_the_random_graph_gradcheck(monkeypatch):
    # backward() with the old sort in place of toposort: hypothesis must find a graph where gradcheck fails.
    # The module itself: the package's name `tensor` is the factory function, as torch.tensor is.
    monkeypatch.setattr(importlib.import_module("tinygrad_mnist.tensor"), "toposort", push_marking_order)

    def gradcheck_fails(graph):
        fn, leaves = ours(graph)
        try:
            gradcheck(fn, *leaves, **check_mode(graph))
        except GradcheckError:
            return True
        return False

    graph = find(graphs(), gradcheck_fails, settings=settings(max_examples=200, database=None, deadline=None,
                                                              phases=[Phase.generate]))
    monkeypatch.undo()
    fn, leaves = ours(graph)
    assert gradcheck(fn, *leaves, **check_mode(graph))  # the same graph passes with toposort


@WALK_SETTINGS
@given(graph=graphs())
def test_backward_runs_every_vjp_once_after_the_vjps_of_all_of_its_consumers(graph):
    fn, leaves = ours(graph)
    loss = fn(*leaves)
    tape = [t for t in reachable(loss, differentiable_parents).values() if t.grad_fn is not None]
    consumers = {id(t.grad_fn): [] for t in tape}  # read before backward(), which frees the tape
    for t in tape:
        for p in differentiable_parents(t):
            if p.grad_fn is not None:
                consumers[id(p.grad_fn)].append(t.grad_fn)
    with recorded_vjps() as calls:
        loss.backward()
    assert Counter(id(ctx) for ctx in calls) == dict.fromkeys(consumers, 1)
    when = {id(ctx): k for k, ctx in enumerate(calls)}
    for ctx, users in consumers.items():
        for user in users:
            assert when[id(user)] < when[ctx], f"a VJP ran before that of its consumer {type(user).__name__}"


@WALK_SETTINGS
@given(graph=graphs())
def test_toposort_lists_every_tensor_of_the_tape_once_after_all_of_its_consumers(graph):
    fn, leaves = ours(graph)
    loss = fn(*leaves)
    order = toposort(loss)
    position = {id(t): k for k, t in enumerate(order)}
    assert order[0] is loss
    assert len(position) == len(order)
    assert position.keys() == reachable(loss, recorded_parents).keys()
    for t in order:
        for p in (t.grad_fn.parents if t.grad_fn is not None else ()):
            assert position[id(p)] > position[id(t)]


def tape_signatures(root, names):
    """Each op node of the tape as (op, inputs' signatures), a leaf by its name: equal signatures mean
    the same computation, however the nodes are numbered."""
    memo = {}

    def signature(t):
        if id(t) not in memo:
            memo[id(t)] = names[id(t)] if t.grad_fn is None else (type(t.grad_fn).__name__,
                                                               tuple(signature(p) for p in t.grad_fn.parents))
        return memo[id(t)]
    return Counter(signature(t) for t in reachable(root, recorded_parents).values()
                   if t.grad_fn is not None)


def drawn_signatures(graph):
    """The same signatures for the op nodes of a viz.trace(…, merge_tensors=False) drawing."""
    nodes = {n.id: n for n in graph.nodes}
    inputs = {n.id: [e.src for e in graph.edges if e.dst == n.id] for n in graph.nodes}
    memo = {}

    def signature(node_id):
        if node_id not in memo:
            node = nodes[node_id]
            if node.kind == "param":
                memo[node_id] = node.label.split("\n")[0]
            elif node.kind in ("tensor", "output"):
                (memo[node_id],) = [signature(src) for src in inputs[node_id]]
            else:
                memo[node_id] = node.label.split("\n")[0], tuple(signature(src) for src in inputs[node_id])
        return memo[node_id]
    return Counter(signature(n.id) for n in graph.nodes if n.kind == "op")


@WALK_SETTINGS
@given(graph=graphs())
def test_trace_draws_every_op_of_a_random_graph_once_with_an_edge_from_each_of_its_inputs(graph):
    fn, leaves = ours(graph)
    loss = fn(*leaves)
    tensors = reachable(loss, recorded_parents).values()
    names = {id(t): f"leaf{k}" for k, t in enumerate(t for t in tensors if t.grad_fn is None)}
    drawing = viz.trace(loss, names=names, merge_tensors=False)
    assert drawn_signatures(drawing) == tape_signatures(loss, names)
    assert sum(n.kind == "tensor" for n in drawing.nodes) == sum(t.grad_fn is not None for t in tensors) - 1


class SkipConnection(nn.Module):
    """conv1 → relu → conv2, plus conv1's output again, then max-pool and a linear head: not a chain."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, 3, padding=1)
        self.conv2 = nn.Conv2d(2, 2, 3, padding=1)
        self.fc = nn.Linear(2 * 2 * 2, 3)

    def forward(self, x):
        h = self.conv1(x)
        r = h.relu()
        c = self.conv2(r)
        y = c + h
        p = F.max_pool2d(y, 2)
        self.results = [h, r, c, y, p]
        return self.fc(p.flatten(1))


def test_feature_maps_lists_each_4d_result_of_a_skip_connection_once_inputs_first():
    model = SkipConnection()
    x = np.random.default_rng(0).standard_normal((1, 1, 4, 4)).astype(np.float32)
    maps = feature_maps(model, x)
    assert list(maps) == ["00_conv2d", "01_relu", "02_conv2d", "03_add", "04_maxpool2d"]
    for array, t in zip(maps.values(), model.results):
        np.testing.assert_array_equal(array, t.numpy()[0])
