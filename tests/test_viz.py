"""Drawing the tape: which nodes and edges the graph has, the DOT text, and the rendered files."""
import re
import shutil
import xml.etree.ElementTree as ET
from collections import Counter

import numpy as np
import pytest

import tinygrad_mnist.functional as F
from tinygrad_mnist import Tensor, manual_seed
from tinygrad_mnist import viz
from tinygrad_mnist.models import build_model

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")


def parse_dot(text):
    """({node id: label}, [(source label, target label, edge label)]) of DOT text written by to_dot."""
    labels = {m[1]: m[2].replace("\\n", "\n") for m in re.finditer(r'^  (n\d+) \[label="(.*?)"', text, re.M)}
    edges = []
    for m in re.finditer(r"^  (n\d+) -> (n\d+)(?: \[(.*)\])?;$", text, re.M):
        label = re.search(r'label=" (.*?)"', m[3] or "")
        edges.append((labels[m[1]], labels[m[2]], label and label[1]))
    return labels, edges


def small_expression():
    x = Tensor(np.ones((2, 3)))
    w = Tensor(np.ones((3, 4)), requires_grad=True)
    return (x @ w).relu().sum(), {w: "w"}


def lenet5_loss(batch=1):
    manual_seed(0)
    model = build_model("lenet5")
    logits = model(Tensor(np.zeros((batch, 1, 28, 28), np.float32)))
    return F.cross_entropy(logits, np.zeros(batch, np.int64)), model


def op_counts(graph):
    return Counter(node.label.split("\n")[0] for node in graph.nodes if node.kind == "op")


def test_dot_text_has_one_node_per_op_and_leaf_and_edges_labelled_with_shapes():
    loss, names = small_expression()
    labels, edges = parse_dot(viz.to_dot(loss, names=names))
    assert sorted(labels.values()) == sorted(["input\n2×3", "w\n3×4", "MatMul", "ReLU", "Sum", "output\nscalar"])
    assert sorted(edges) == sorted([("input\n2×3", "MatMul", None), ("w\n3×4", "MatMul", None),
                                    ("MatMul", "ReLU", "2×4"), ("ReLU", "Sum", "2×4"), ("Sum", "output\nscalar", None)])


def test_without_merging_every_intermediate_tensor_is_a_node():
    loss, names = small_expression()
    graph = viz.trace(loss, names=names, merge_tensors=False)
    assert [n.label for n in graph.nodes if n.kind == "tensor"] == ["2×4", "2×4"]
    assert all(e.label == "" for e in graph.edges)


def test_a_tensor_used_twice_has_one_node_and_two_edges():
    x = Tensor([1.0, 2.0], requires_grad=True)
    graph = viz.trace((x * x).sum(), names=[("x", x)])
    (x_node,) = [n for n in graph.nodes if n.kind == "param"]
    (mul,) = [n for n in graph.nodes if n.label == "Mul"]
    assert [(e.src, e.dst) for e in graph.edges].count((x_node.id, mul.id)) == 2


def test_leaves_are_styled_by_role_and_unnamed_parameters_say_so():
    x = Tensor(np.ones(3))
    w = Tensor(np.ones(3), requires_grad=True)
    graph = viz.trace((x * w * 0.5).sum())
    kinds = {n.kind: n.label for n in graph.nodes if n.kind != "op"}
    assert kinds == {"input": "input\n3", "param": "parameter\n3", "const": "0.5", "output": "output\nscalar"}
    text = viz.to_dot((x * w).sum())
    assert viz.STYLES["input"] in text and viz.STYLES["param"] in text


def test_names_come_from_named_parameters_or_a_mapping_by_tensor_or_id():
    w = Tensor(np.ones(2), requires_grad=True)
    for names in ([("layer.w", w)], {w: "layer.w"}, {id(w): "layer.w"}):
        assert "layer.w\n2" in [n.label for n in viz.trace((w * w).sum(), names=names).nodes]


def test_op_labels_show_options_off_their_defaults():
    x = Tensor(np.zeros((1, 1, 6, 6)))
    w = Tensor(np.zeros((2, 1, 3, 3)), requires_grad=True)
    labels = [n.label for n in viz.trace(F.conv2d(x, w, stride=2, padding=1).sum()).nodes if n.kind == "op"]
    assert labels[0] == "Conv2d\nstride 2, pad 1"
    plain = [n.label for n in viz.trace(F.conv2d(x, w).sum()).nodes if n.kind == "op"]
    assert plain[0] == "Conv2d"


def test_op_labels_read_the_options_a_node_records():
    class MaxPool2d:  # stands in for a node that keeps the options it was applied with
        options = {"kernel_size": 2, "stride": 2}
    assert viz.op_label(MaxPool2d()) == "MaxPool2d\n2×2"
    MaxPool2d.options = {"kernel_size": 3, "stride": 1}
    assert viz.op_label(MaxPool2d()) == "MaxPool2d\n3×3, stride 1"


def test_lenet5_graph_is_its_ops_and_its_ten_parameters():
    loss, model = lenet5_loss()
    graph = viz.trace(loss, names=model.named_parameters())
    assert op_counts(graph) == {"Conv2d": 2, "MaxPool2d": 2, "Linear": 3, "ReLU": 4, "CrossEntropy": 1, "Reshape": 1}
    params = sorted(n.label.split("\n")[0] for n in graph.nodes if n.kind == "param")
    assert params == sorted(name for name, _ in model.named_parameters())
    assert [n.label for n in graph.nodes if n.kind == "input"] == ["input\n1×1×28×28"]
    assert {"1×6×24×24", "1×6×12×12", "1×256", "1×10"} <= {e.label for e in graph.edges}


def test_drawing_after_backward_raises_a_clear_error():
    loss, _ = lenet5_loss()
    loss.backward()
    with pytest.raises(viz.GraphFreedError, match="before loss.backward"):
        viz.to_dot(loss)


def test_a_graph_kept_by_retain_graph_can_still_be_drawn():
    loss, _ = small_expression()
    loss.backward(retain_graph=True)
    assert "MatMul" in viz.to_dot(loss)


def test_a_tensor_with_no_recorded_graph_is_refused():
    with pytest.raises(ValueError, match="no recorded graph"):
        viz.to_dot(Tensor(np.ones(2)).sum())


def test_deep_graphs_do_not_hit_the_recursion_limit():
    x = Tensor([1.0], requires_grad=True)
    y = x
    for _ in range(5000):
        y = y + 1.0
    assert op_counts(viz.trace(y))["Add"] == 5000


def test_dot_files_need_no_graphviz(tmp_path, monkeypatch):
    monkeypatch.setattr(viz.shutil, "which", lambda name: None)
    loss, names = small_expression()
    path = viz.draw_graph(loss, tmp_path / "g.dot", names=names)
    assert path.read_text().startswith("digraph tape {")


def test_without_dot_a_picture_request_writes_the_source_and_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(viz.shutil, "which", lambda name: None)
    loss, _ = small_expression()
    with pytest.raises(viz.GraphvizNotFound, match="install Graphviz"):
        viz.draw_graph(loss, tmp_path / "g.svg")
    assert (tmp_path / "g.dot").read_text().startswith("digraph tape {")
    assert not (tmp_path / "g.svg").exists()


def test_an_unknown_format_is_refused(tmp_path):
    loss, _ = small_expression()
    with pytest.raises(ValueError, match="unknown graph format"):
        viz.draw_graph(loss, tmp_path / "g.jpeg2000")


@needs_dot
def test_svg_is_valid_xml_with_the_parameter_names(tmp_path):
    loss, model = lenet5_loss()
    path = viz.draw_graph(loss, tmp_path / "lenet5.svg", names=model.named_parameters())
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg")
    texts = {t.text for t in root.iter() if t.tag.endswith("text")}
    assert {"conv1.weight", "fc3.bias", "CrossEntropy"} <= texts


@needs_dot
def test_png_is_written_when_asked_by_suffix_or_format(tmp_path):
    loss, _ = small_expression()
    for path in (viz.draw_graph(loss, tmp_path / "g.png"), viz.draw_graph(loss, tmp_path / "g.out", format="png")):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
