"""The losses, layers and activations beyond classification (binary cross-entropy, KL, Huber, transposed
convolution, upsampling, embeddings, group norm, ...): PyTorch as the oracle for values and gradients in
float64 (skipped without it), modules that load PyTorch's state dicts and print as PyTorch's do, and the
one-line errors for what is not supported. Their gradients against finite differences are in
test_grad_ops.py; whole programs built from them in test_generative_examples.py.
"""
import importlib.util
import math

import numpy as np
import pytest

import tinygrad_mnist.functional as F
from tinygrad_mnist import Tensor, nn, optim

if importlib.util.find_spec("torch"):
    import torch
    TF = torch.nn.functional
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch is not installed")

RTOL, ATOL = 1e-10, 1e-12


def random_array(seed, shape, low=-2.0, high=2.0):
    return np.random.default_rng(seed).uniform(low, high, size=shape)


def assert_matches_torch(ours, theirs, arrays, constants=()):
    """Both functions on the same float64 arrays (those at the indices in `constants` without gradient),
    the same random cotangent backpropagated: the outputs and every gradient agree."""
    our_inputs = [Tensor(a.copy(), requires_grad=k not in constants) for k, a in enumerate(arrays)]
    their_inputs = [torch.tensor(a, requires_grad=k not in constants) for k, a in enumerate(arrays)]
    out, expected = ours(*our_inputs), theirs(*their_inputs)
    assert out.dtype == np.float64 and tuple(out.shape) == tuple(expected.shape)
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=RTOL, atol=ATOL, err_msg="forward")
    cotangent = np.random.default_rng(0).standard_normal(tuple(expected.shape))
    out.backward(cotangent)
    expected.backward(torch.tensor(cotangent))
    for k, (a, b) in enumerate(zip(our_inputs, their_inputs)):
        if k not in constants:
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=RTOL, atol=ATOL,
                                       err_msg=f"gradient of input {k}")


def assert_module_matches_torch(ours, theirs, shape, seed):
    """ours loads theirs' state dict strictly (in float64), prints as it does, and gives the same output and
    the same gradients of its input and of every parameter."""
    theirs.double()
    ours.to(np.float64).load_state_dict({n: v.detach().numpy() for n, v in theirs.state_dict().items()}, strict=True)
    assert repr(ours) == repr(theirs)
    x = random_array(seed, shape, -4.0, 4.0)
    inputs = [Tensor(x.copy(), requires_grad=True), torch.tensor(x, requires_grad=True)]
    outputs = [ours(inputs[0]), theirs(inputs[1])]
    np.testing.assert_allclose(outputs[0].numpy(), outputs[1].detach().numpy(), rtol=RTOL, atol=ATOL,
                               err_msg=repr(ours))
    cotangent = random_array(100 + seed, tuple(outputs[1].shape))
    outputs[0].backward(cotangent)
    outputs[1].backward(torch.tensor(cotangent))
    np.testing.assert_allclose(inputs[0].grad.numpy(), inputs[1].grad.numpy(), rtol=RTOL, atol=ATOL,
                               err_msg=repr(ours))
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=RTOL, atol=ATOL, err_msg=f"{ours} {name}")


def image(*shape):
    return Tensor(np.zeros(shape))


x35, y35 = random_array(0, (3, 5), -4.0, 4.0), random_array(1, (3, 5), -4.0, 4.0)
p35, q35 = random_array(2, (3, 5), 0.02, 0.98), random_array(3, (3, 5), 0.0, 1.0)
w5 = random_array(4, (5,), 0.5, 2.0)
img = random_array(5, (2, 6, 5, 4))
# Every kink of the activations (0, ±1, ±3, 6) and values far out on both sides.
edges = np.concatenate([random_array(6, (30,), -7.0, 7.0), [0.0, -1.0, 1.0, -3.0, 3.0, 6.0, -40.0, 40.0, -800.0]])


def _loss_cases():
    """(name, ours, theirs, arrays, indices of the arrays that take no gradient)."""
    t = lambda a: Tensor(a)  # noqa: E731  (a constant of ours; torch.tensor is theirs)
    return [
        ("bce-weight-sum", lambda a, b: F.binary_cross_entropy(a, b, t(w5), reduction="sum"),
         lambda a, b: TF.binary_cross_entropy(a, b, torch.tensor(w5), reduction="sum"), [p35, q35], ()),
        ("bce-none", lambda a, b: F.binary_cross_entropy(a, b, reduction="none"),
         lambda a, b: TF.binary_cross_entropy(a, b, reduction="none"), [p35, q35], ()),
        ("bce-with-logits", F.binary_cross_entropy_with_logits, TF.binary_cross_entropy_with_logits, [x35, q35], ()),
        ("bce-with-logits-weight-pos-weight", lambda a, b: F.binary_cross_entropy_with_logits(
            a, b, t(w5[:1]), "sum", pos_weight=t(w5)), lambda a, b: TF.binary_cross_entropy_with_logits(
            a, b, torch.tensor(w5[:1]), reduction="sum", pos_weight=torch.tensor(w5)), [x35, q35], ()),
        ("bce-with-logits-saturated", lambda a, b: F.binary_cross_entropy_with_logits(a, b, reduction="none"),
         lambda a, b: TF.binary_cross_entropy_with_logits(a, b, reduction="none"),
         [np.array([-800.0, -40.0, -1e-3, 0.0, 1e-3, 40.0, 800.0]), random_array(7, (7,), 0.0, 1.0)], ()),
        ("smooth-l1", F.smooth_l1_loss, TF.smooth_l1_loss, [x35, y35], ()),
        ("smooth-l1-beta-none", lambda a, b: F.smooth_l1_loss(a, b, "none", beta=0.3),
         lambda a, b: TF.smooth_l1_loss(a, b, reduction="none", beta=0.3), [x35, y35], ()),
        ("smooth-l1-beta-0", lambda a, b: F.smooth_l1_loss(a, b, "sum", beta=0.0),
         lambda a, b: TF.smooth_l1_loss(a, b, reduction="sum", beta=0.0), [x35, y35], ()),
        ("huber", F.huber_loss, TF.huber_loss, [x35, y35], ()),
        ("huber-delta-weight", lambda a, b: F.huber_loss(a, b, "sum", delta=2.5, weight=t(p35)),
         lambda a, b: TF.huber_loss(a, b, reduction="sum", delta=2.5, weight=torch.tensor(p35)), [x35, y35], ()),
        ("kl-div-batchmean", lambda a, b: F.kl_div(F.log_softmax(a, 1), b, "batchmean"),
         lambda a, b: TF.kl_div(TF.log_softmax(a, 1), b, reduction="batchmean"), [x35, q35], ()),
        ("kl-div-sum-log-target", lambda a, b: F.kl_div(a, b, "sum", log_target=True),
         lambda a, b: TF.kl_div(a, b, reduction="sum", log_target=True), [x35, y35 * 0.3], ()),
        ("kl-div-none-zero-target", lambda a, b: F.kl_div(a, b, "none"), lambda a, b: TF.kl_div(a, b, reduction="none"),
         [x35, np.where(q35 > 0.5, q35, 0.0)], (1,)),  # 0 · ln 0 = 0 (the target's gradient there is nan in PyTorch)
    ]


LOSS_CASES = _loss_cases()


@needs_torch
@pytest.mark.filterwarnings("ignore:Using a target size")
@pytest.mark.parametrize("name, ours, theirs, arrays, constants", LOSS_CASES, ids=[c[0] for c in LOSS_CASES])
def test_loss_matches_torch(name, ours, theirs, arrays, constants):
    assert_matches_torch(ours, theirs, arrays, constants)


@needs_torch
@pytest.mark.filterwarnings("ignore:.*'mean' divides the total loss")  # PyTorch's warning, and ours
def test_loss_modules_match_torchs():
    T = torch.nn
    x, y = random_array(0, (4, 3)), random_array(1, (4, 3), 0.0, 1.0)
    weight, pos_weight = random_array(2, (3,), 0.5, 2.0), random_array(3, (3,), 0.5, 3.0)
    pairs = [(nn.BCELoss(weight=Tensor(weight), reduction="sum"), T.BCELoss(torch.tensor(weight), reduction="sum"),
              lambda a: 1 / (1 + np.exp(-a))),
             (nn.BCEWithLogitsLoss(Tensor(weight), pos_weight=Tensor(pos_weight)),
              T.BCEWithLogitsLoss(torch.tensor(weight), pos_weight=torch.tensor(pos_weight)), None),
             (nn.SmoothL1Loss(beta=0.5), T.SmoothL1Loss(beta=0.5), None),
             (nn.HuberLoss("none", delta=0.5), T.HuberLoss("none", delta=0.5), None),
             (nn.KLDivLoss(reduction="batchmean", log_target=True), T.KLDivLoss(reduction="batchmean", log_target=True),
              None),
             (nn.KLDivLoss(), T.KLDivLoss(), lambda a: a - 2)]
    for ours, theirs, squash in pairs:
        assert list(ours.state_dict()) == list(theirs.state_dict())  # weight and pos_weight are buffers
        a = squash(x) if squash else x
        assert_matches_torch(lambda u, v: ours(u, v), lambda u, v: theirs(u, v), [a, y])


def test_kl_div_with_mean_reduction_warns_as_torch_does():
    with pytest.warns(UserWarning, match="'batchmean' divides only by the batch size"):
        F.kl_div(Tensor(np.zeros((2, 3))), Tensor(np.full((2, 3), 1 / 3)))


@pytest.mark.parametrize("call, error, message", [
    (lambda: F.binary_cross_entropy(Tensor([0.5, 1.5]), Tensor([0.0, 1.0])), RuntimeError,
     "all elements of input should be between 0 and 1"),
    (lambda: F.binary_cross_entropy(Tensor([0.5]), Tensor([2.0])), RuntimeError, "elements of target"),
    (lambda: F.binary_cross_entropy(Tensor([0.5, 0.5]), Tensor([1.0])), ValueError, "target size"),
    (lambda: F.binary_cross_entropy_with_logits(Tensor([0.5, 0.5]), Tensor([[1.0, 1.0]])), ValueError, "target size"),
    (lambda: F.binary_cross_entropy(Tensor([0.5, 0.5]), Tensor([1.0, 0.0]), Tensor([[1.0], [2.0]])), ValueError,
     "does not broadcast"),
    (lambda: F.smooth_l1_loss(image(2), image(2), beta=-1), ValueError, "beta must be >= 0"),
    (lambda: F.huber_loss(image(2), image(2), delta=0), ValueError, "delta must be > 0"),
    (lambda: F.kl_div(image(2), image(2), "average"), ValueError, "'batchmean'"),
    (lambda: nn.KLDivLoss("batch"), ValueError, "reduction must be one of"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_wrong_loss_arguments_raise_one_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()


def _activation_cases():
    """(name, ours, theirs, arrays, indices of the arrays that take no gradient): every kink."""
    return [
        ("hardtanh", lambda a: F.hardtanh(a, -2.0, 3.0), lambda a: TF.hardtanh(a, -2.0, 3.0), [edges], ()),
        ("relu6", F.relu6, TF.relu6, [edges], ()),
        ("selu", F.selu, TF.selu, [edges], ()),
        ("celu", lambda a: F.celu(a, 0.5), lambda a: TF.celu(a, 0.5), [edges], ()),  # see docs/FROM_PYTORCH.md
        ("logsigmoid", F.logsigmoid, TF.logsigmoid, [edges], ()),
        ("softmin", lambda a: F.softmin(a, 0), lambda a: TF.softmin(a, 0), [x35], ()),
        ("mish", F.mish, TF.mish, [edges], ()),
        ("hardswish", F.hardswish, TF.hardswish, [edges], ()),
        ("softsign", F.softsign, TF.softsign, [edges], ()),
        ("prelu-per-channel", F.prelu, TF.prelu, [img, random_array(8, (6,), -0.5, 0.5)], ()),
        ("prelu-one", F.prelu, TF.prelu, [edges, np.array([0.25])], ()),
    ]


ACTIVATION_CASES = _activation_cases()


@needs_torch
@pytest.mark.parametrize("name, ours, theirs, arrays, constants", ACTIVATION_CASES,
                         ids=[c[0] for c in ACTIVATION_CASES])
def test_activation_matches_torch(name, ours, theirs, arrays, constants):
    assert_matches_torch(ours, theirs, arrays, constants)


def activation_modules():
    """(our module, PyTorch's, input shape) for each new activation module."""
    T = torch.nn
    return [
        (nn.PReLU(6), T.PReLU(6), (2, 6, 3, 3)),
        (nn.PReLU(), T.PReLU(), (4, 5)),
        (nn.Hardtanh(-0.5, 2.0), T.Hardtanh(-0.5, 2.0), (4, 5)),
        (nn.ReLU6(), T.ReLU6(), (4, 5)),
        (nn.SELU(), T.SELU(), (4, 5)),
        (nn.CELU(2.0), T.CELU(2.0), (4, 5)),
        (nn.LogSigmoid(), T.LogSigmoid(), (4, 5)),
        (nn.Softmin(dim=1), T.Softmin(dim=1), (4, 5)),
        (nn.Mish(), T.Mish(), (4, 5)),
        (nn.Hardswish(), T.Hardswish(), (4, 5)),
        (nn.Softsign(), T.Softsign(), (4, 5)),
    ]


@needs_torch
def test_activation_modules_load_torch_state_dicts_print_alike_and_compute_the_same():
    for seed, (ours, theirs, shape) in enumerate(activation_modules()):
        assert_module_matches_torch(ours, theirs, shape, seed)


@pytest.mark.parametrize("call, error, message", [
    (lambda: F.celu(image(2), 0.0), ValueError, "alpha must not be 0"),
    (lambda: F.hardtanh(image(2), 1.0, -1.0), ValueError, "cannot be greater"),
    (lambda: F.prelu(image(2, 3, 4), Tensor(np.ones(2))), ValueError, "2 parameters for an input of 3 channels"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_wrong_activation_arguments_raise_one_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()
