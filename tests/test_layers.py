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
from tinygrad_mnist import Tensor, nn, optim, viz

HAVE_TORCH = importlib.util.find_spec("torch") is not None
if HAVE_TORCH:
    import torch
    TF = torch.nn.functional
needs_torch = pytest.mark.skipif(not HAVE_TORCH, reason="PyTorch is not installed")

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


LOSS_CASES = _loss_cases() if HAVE_TORCH else []  # each case names PyTorch's function


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


ACTIVATION_CASES = _activation_cases() if HAVE_TORCH else []  # each case names PyTorch's function


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


def _layer_cases():
    """(name, ours, theirs, arrays, indices of the arrays that take no gradient)."""
    return [
        ("normalize", F.normalize, TF.normalize, [img], ()),
        ("normalize-p-dim", lambda a: F.normalize(a, 3.0, -1), lambda a: TF.normalize(a, 3.0, -1), [img], ()),
        ("normalize-zero-row", lambda a: F.normalize(a, 1.5, 1, eps=1e-6), lambda a: TF.normalize(a, 1.5, 1, eps=1e-6),
         [np.array([[0.0, 0.0, 0.0], [0.0, 1.0, -2.0]])], ()),
        ("normalize-inf", lambda a: F.normalize(a, math.inf), lambda a: TF.normalize(a, math.inf), [x35], ()),
        ("cosine-similarity", F.cosine_similarity, TF.cosine_similarity, [x35, y35], ()),
        ("cosine-similarity-broadcast", lambda a, b: F.cosine_similarity(a, b, -1),
         lambda a, b: TF.cosine_similarity(a, b, -1), [x35[:1], y35], ()),
        ("cosine-similarity-tiny", F.cosine_similarity, TF.cosine_similarity, [x35 * 1e-10, y35], ()),
        ("group-norm", lambda a, w, b: F.group_norm(a, 3, w, b), lambda a, w, b: TF.group_norm(a, 3, w, b),
         [img, random_array(9, (6,)), random_array(10, (6,))], ()),
        ("group-norm-2d-plain", lambda a: F.group_norm(a, 2, eps=1e-3), lambda a: TF.group_norm(a, 2, eps=1e-3),
         [img[:, :, 0, 0]], ()),
        ("embedding-padding-idx", lambda w: F.embedding(np.array([[0, 3, 1], [3, 3, 2]]), w, padding_idx=3),
         lambda w: TF.embedding(torch.tensor([[0, 3, 1], [3, 3, 2]]), w, padding_idx=3), [random_array(11, (4, 5))],
         ()),
    ]


LAYER_CASES = _layer_cases() if HAVE_TORCH else []  # each case names PyTorch's function


@needs_torch
@pytest.mark.parametrize("name, ours, theirs, arrays, constants", LAYER_CASES, ids=[c[0] for c in LAYER_CASES])
def test_layer_function_matches_torch(name, ours, theirs, arrays, constants):
    assert_matches_torch(ours, theirs, arrays, constants)


INTERPOLATIONS = [dict(mode="nearest"), dict(mode="nearest-exact"), dict(mode="bilinear"),
                  dict(mode="bilinear", align_corners=True), dict(mode="area")]
SIZES = [dict(size=(7, 3)), dict(size=(2, 11)), dict(size=(10, 8)), dict(size=5), dict(scale_factor=2),
         dict(scale_factor=(3, 0.5)), dict(scale_factor=1.7), dict(scale_factor=2.2), dict(scale_factor=0.45),
         dict(scale_factor=1.2), dict(scale_factor=1.7, recompute_scale_factor=True)]


@needs_torch
@pytest.mark.parametrize("mode", INTERPOLATIONS, ids=lambda m: "-".join(map(str, m.values())))
def test_interpolate_matches_torch_in_values_and_gradients(mode):
    x = random_array(12, (2, 3, 5, 4))
    for size in SIZES:
        if mode["mode"] == "area" and "scale_factor" in size and size.get("recompute_scale_factor") is not True:
            size = dict(size, recompute_scale_factor=None)
        assert_matches_torch(lambda a: F.interpolate(a, **size, **mode), lambda a: TF.interpolate(a, **size, **mode),
                             [x])


@needs_torch
@pytest.mark.parametrize("mode, dims", [("nearest", 1), ("nearest-exact", 1), ("linear", 1), ("nearest", 3),
                                        ("nearest-exact", 3)])
def test_interpolate_of_1d_and_3d_inputs_matches_torch(mode, dims):
    x = random_array(13, (1, 2) + (5, 3, 4)[:dims])
    for size in (dict(scale_factor=2), dict(scale_factor=0.6), dict(size=(7, 2, 9)[:dims])):
        assert_matches_torch(lambda a: F.interpolate(a, **size, mode=mode), lambda a: TF.interpolate(a, **size, mode=mode),
                             [x])
    # 2.2 makes 3 pixels 6: PyTorch's forward takes floor(i / 2.2) there, and its backward i // 2 (see
    # docs/FROM_PYTORCH.md); the values agree, and the engine's gradient is that of its values.
    np.testing.assert_allclose(F.interpolate(Tensor(x), scale_factor=2.2, mode=mode).numpy(),
                               TF.interpolate(torch.tensor(x), scale_factor=2.2, mode=mode).numpy(), rtol=RTOL, atol=ATOL)


@needs_torch
def test_nearest_indices_match_torch_over_many_sizes_in_float32_too():
    # PyTorch computes the source pixel in float32 (floor(i · scale)): the same rounding picks the same pixel.
    for dtype in (np.float32, np.float64):
        x = np.arange(2 * 3 * 13 * 11, dtype=dtype).reshape(2, 3, 13, 11)
        for size in [(h, w) for h in (1, 5, 13, 20, 26, 29, 41) for w in (3, 11, 22, 30)]:
            for mode in ("nearest", "nearest-exact"):
                np.testing.assert_array_equal(F.interpolate(Tensor(x), size, mode=mode).numpy(),
                                              TF.interpolate(torch.tensor(x), size, mode=mode).numpy(),
                                              err_msg=f"{mode} {size} {dtype.__name__}")


def test_integer_nearest_upsampling_is_a_broadcast_whose_gradient_sums_each_block():
    x = Tensor(np.arange(6.0).reshape(1, 1, 2, 3), requires_grad=True)
    out = F.interpolate(x, scale_factor=2)
    np.testing.assert_array_equal(out.numpy()[0, 0], np.repeat(np.repeat(x.numpy()[0, 0], 2, 0), 2, 1))
    assert type(out.grad_fn).__name__ != "Index"
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full((1, 1, 2, 3), 4.0))


def layer_modules():
    """(our module, PyTorch's, input shape) for each new layer."""
    T = torch.nn
    return [
        (nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2),
         T.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2), (2, 4, 5, 4)),
        (nn.ConvTranspose2d(3, 2, (2, 3), dilation=(2, 1), bias=False), T.ConvTranspose2d(3, 2, (2, 3), dilation=(2, 1),
                                                                                           bias=False), (1, 3, 4, 4)),
        (nn.GroupNorm(3, 6), T.GroupNorm(3, 6), (2, 6, 3, 3)),
        (nn.GroupNorm(2, 6, affine=False), T.GroupNorm(2, 6, affine=False), (2, 6, 3)),
        (nn.Upsample(scale_factor=2), T.Upsample(scale_factor=2), (1, 2, 3, 4)),
        (nn.Upsample(size=(5, 7), mode="bilinear"), T.Upsample(size=(5, 7), mode="bilinear"), (1, 2, 3, 4)),
        (nn.UpsamplingBilinear2d(scale_factor=2), T.UpsamplingBilinear2d(scale_factor=2), (1, 2, 3, 4)),
        (nn.UpsamplingNearest2d(size=5), T.UpsamplingNearest2d(size=5), (1, 2, 3, 4)),
        (nn.Unflatten(1, (2, -1)), T.Unflatten(1, (2, -1)), (3, 8)),
        (nn.ZeroPad2d((1, 2, 0, 3)), T.ZeroPad2d((1, 2, 0, 3)), (1, 2, 3, 4)),
        (nn.ConstantPad2d(1, -0.5), T.ConstantPad2d(1, -0.5), (1, 2, 3, 4)),
    ]


@needs_torch
def test_layer_modules_load_torch_state_dicts_strictly_print_alike_and_compute_the_same():
    for seed, (ours, theirs, shape) in enumerate(layer_modules()):
        assert_module_matches_torch(ours, theirs, shape, seed)


@needs_torch
def test_conv_transpose2d_output_size_picks_the_output_padding_as_torch():
    ours = nn.ConvTranspose2d(2, 3, 3, stride=3, padding=1, dtype=np.float64)
    theirs = torch.nn.ConvTranspose2d(2, 3, 3, stride=3, padding=1).double()
    theirs.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in ours.state_dict().items()})
    x = random_array(0, (1, 2, 4, 5))
    for size in [(10, 13), (12, 14), [1, 3, 11, 15]]:
        np.testing.assert_allclose(ours(Tensor(x), output_size=size).numpy(),
                                   theirs(torch.tensor(x), output_size=size).detach().numpy(), rtol=RTOL, atol=ATOL)
    with pytest.raises(ValueError, match=r"valid sizes range from \[10, 13\] to \[12, 15\]"):
        ours(Tensor(x), output_size=(13, 13))


def test_conv_transpose2d_default_init_is_uniform_over_one_over_sqrt_fan_in_of_the_weights_axis_1():
    # PyTorch's fan_in for a transposed convolution's (C_in, C_out/groups, kh, kw) weight: C_out/groups·kh·kw.
    layer = nn.ConvTranspose2d(8, 6, 3, groups=2, rng=np.random.default_rng(0))
    assert layer.weight.shape == (8, 3, 3, 3) and layer.bias.shape == (6,)
    bound = 1 / math.sqrt(3 * 9)
    for p in (layer.weight.numpy(), layer.bias.numpy()):
        assert bound * 0.8 < np.abs(p).max() <= bound


def test_a_conv_transpose2d_node_is_drawn_with_its_stride_and_padding():
    # The op keeps its own settings apart from ctx.options, which the graph tools read.
    out = F.conv_transpose2d(Tensor(np.zeros((1, 2, 3, 3)), requires_grad=True), image(2, 1, 3, 3), stride=2,
                             padding=1)
    assert viz.op_label(out.grad_fn) == "ConvTranspose2d\nstride (2, 2), pad (1, 1)"


def test_conv_transpose2d_undoes_the_shape_of_the_strided_conv2d_it_transposes():
    x = Tensor(random_array(0, (2, 3, 28, 28)))
    down = nn.Conv2d(3, 4, 4, stride=2, padding=1)
    up = nn.ConvTranspose2d(4, 3, 4, stride=2, padding=1)
    assert up(down(x.float())).shape == (2, 3, 28, 28)


def test_embedding_gives_its_padding_row_no_gradient_and_starts_it_at_zero():
    table = nn.Embedding(5, 3, padding_idx=-1)
    assert table.padding_idx == 4 and np.all(table.weight.numpy()[4] == 0)
    table.weight.array[4] = 7.0  # a padding row with values still returns them, as in PyTorch
    out = table(Tensor(np.array([[4, 0], [4, 4]])))
    np.testing.assert_array_equal(out.numpy()[0, 0], [7.0, 7.0, 7.0])
    out.sum().backward()
    np.testing.assert_array_equal(table.weight.grad.numpy()[4], 0.0)
    np.testing.assert_array_equal(table.weight.grad.numpy()[0], 1.0)


def test_embedding_from_pretrained_is_frozen_unless_asked():
    weights = Tensor(random_array(0, (4, 2)))
    assert not nn.Embedding.from_pretrained(weights).weight.requires_grad
    thawed = nn.Embedding.from_pretrained(weights, freeze=False)
    assert thawed.weight.requires_grad and thawed.embedding_dim == 2
    np.testing.assert_array_equal(thawed(np.array([3])).numpy(), weights.numpy()[3:])


def test_parameter_containers_register_and_wrap_tensors_as_pytorch_does():
    class Mixture(nn.Module):
        def __init__(self):
            super().__init__()
            self.means = nn.ParameterList([Tensor(np.zeros(2)), nn.Parameter(np.ones(2))])
            self.scales = nn.ParameterDict({"a": Tensor(np.ones(3))})
            self.means.append(Tensor(np.full(2, 2.0)))
            self.scales["b"] = nn.Parameter(np.zeros(1))

    model = Mixture()
    assert list(model.state_dict()) == ["means.0", "means.1", "means.2", "scales.a", "scales.b"]
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in model.parameters())
    assert len(model.means) == 3 and [float(p.sum()) for p in model.means] == [0.0, 2.0, 4.0]
    assert "a" in model.scales and list(model.scales.keys()) == ["a", "b"] and len(model.means[1:]) == 2
    loss = sum(p.sum() for p in model.means) + model.scales["a"].sum()
    loss.backward()
    optim.SGD(model.parameters(), lr=0.5).step()
    np.testing.assert_array_equal(model.means[0].numpy(), [-0.5, -0.5])
    del model.scales["a"]
    assert list(model.state_dict()) == ["means.0", "means.1", "means.2", "scales.b"]
    with pytest.raises(TypeError, match="expected a Parameter or a Tensor"):
        model.means.append(3.0)


@pytest.mark.parametrize("call, error, message", [
    (lambda: F.conv_transpose2d(image(1, 2, 3, 3), image(2, 1, 3, 3), stride=2, output_padding=2), ValueError,
     "output padding must be smaller than either stride or dilation"),
    (lambda: F.conv_transpose2d(image(1, 2, 3, 3), image(2, 1, 3, 3), padding="same"), ValueError,
     "give the padding as numbers"),
    (lambda: F.conv_transpose2d(image(1, 3, 3, 3), image(2, 1, 3, 3)), ValueError, "expects input with 2 channels"),
    (lambda: F.conv_transpose2d(image(2, 3, 3), image(2, 1, 3, 3)), ValueError, r"expected input \(N, C_in, H, W\)"),
    (lambda: F.conv_transpose2d(image(1, 2, 1, 1), image(2, 1, 1, 1), padding=1), ValueError, "lower the padding"),
    (lambda: nn.ConvTranspose2d(2, 2, 3, padding_mode="reflect"), ValueError, "only 'zeros'"),
    (lambda: nn.ConvTranspose2d(2, 2, 3, padding="same"), ValueError, "give the padding as numbers"),
    (lambda: F.interpolate(image(1, 1, 4, 4), scale_factor=2, mode="bicubic"), ValueError,
     "mode='bicubic' is not supported"),
    (lambda: F.interpolate(image(1, 1, 4, 4), scale_factor=2, mode="bilinear", antialias=True), ValueError,
     "antialias=True is not supported"),
    (lambda: F.interpolate(image(1, 1, 4, 4), scale_factor=2, align_corners=True), ValueError,
     "align_corners option can only be set"),
    (lambda: F.interpolate(image(1, 1, 4, 4), size=3, scale_factor=2), ValueError, "only one of size or scale_factor"),
    (lambda: F.interpolate(image(1, 1, 4, 4)), ValueError, "either size or scale_factor"),
    (lambda: F.interpolate(image(1, 1, 4), scale_factor=2, mode="bilinear"), ValueError, "needs a 4-D input"),
    (lambda: F.interpolate(image(4, 4), scale_factor=2), ValueError, "expected a 3-D, 4-D or 5-D input"),
    (lambda: F.interpolate(image(1, 1, 4, 4), scale_factor=0.1), ValueError, "must be positive"),
    (lambda: F.embedding(np.array([0, 5]), image(5, 2)), IndexError, r"indices must lie in \[0, 5\)"),
    (lambda: F.embedding(np.array([-1]), image(5, 2)), IndexError, "indices must lie"),
    (lambda: F.embedding(np.array([0.0]), image(5, 2)), ValueError, "expected integer indices"),
    (lambda: nn.Embedding(5, 2, max_norm=1.0), ValueError, "max_norm, scale_grad_by_freq and sparse"),
    (lambda: F.normalize(image(2, 2), p=0), ValueError, "p > 0"),
    (lambda: F.group_norm(image(2, 6, 3), 4), ValueError, "divisible by num_groups=4"),
    (lambda: nn.GroupNorm(4, 6), ValueError, "divisible by num_groups"),
    (lambda: nn.Unflatten(1, (4, 3))(image(2, 8)), ValueError, r"unflattened_size \(4, 3\) does not fit"),
    (lambda: nn.ZeroPad2d((1, 2, 3)), ValueError, r"\(left, right, top, bottom\)"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_what_is_not_supported_or_wrong_in_the_layers_raises_one_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()
