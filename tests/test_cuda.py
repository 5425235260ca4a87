"""The cuda device: what asking for it does without CuPy or a GPU (runs everywhere), and, on a machine
with both, the gradient property tests of test_grad_ops.py on device="cuda" and agreement with cpu.
"""
import sys
import types

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_mnist.functional as F
from tinygrad_mnist import DeviceError, Tensor, cuda_available, gradcheck
from test_grad_ops import CASES, COMPOSITES, SETTINGS

requires_cuda = pytest.mark.skipif(not cuda_available(), reason="needs CuPy and an NVIDIA GPU")


def test_asking_for_cuda_without_cupy_raises_device_error_saying_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` fail even where it is installed
    assert not cuda_available()
    with pytest.raises(DeviceError, match="pip install"):
        Tensor([1.0, 2.0], device="cuda")


@pytest.mark.parametrize("failure", ["no GPU", "no driver"])
def test_asking_for_cuda_with_cupy_but_no_usable_gpu_raises_device_error(monkeypatch, failure):
    def device_count():
        if failure == "no driver":
            raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")
        return 0
    fake = types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=device_count)))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    assert not cuda_available()
    with pytest.raises(DeviceError, match="device='cpu'"):
        Tensor([1.0, 2.0], device="cuda")


def replaying(draw):
    """Two draw functions: the first draws and records, the second replays the same values, so one
    hypothesis example can be built twice (once per device) with identical shapes and arrays."""
    record = []

    def first(strategy):
        record.append(draw(strategy))
        return record[-1]
    replay = iter(record)
    return first, lambda strategy: next(replay)


GENERAL_CONVOLUTIONS = {  # weight shape for an input (2, 6, 9, 8), and the options
    "dilated": ((4, 6, 3, 3), dict(dilation=2, padding=1)),
    "grouped": ((6, 3, 3, 2), dict(groups=2, stride=(2, 1))),
    "depthwise-same": ((6, 1, 4, 3), dict(groups=6, padding="same", dilation=(1, 2))),
    "uneven": ((3, 6, 2, 2), dict(padding=(0, 2), stride=(1, 3), dilation=(3, 1))),
}

CEIL_MODE_POOLS = {  # PyTorch's partial last windows, and max-pool taps `dilation` apart
    "max-dilated": lambda x: F.max_pool2d(x, 3, 2, padding=1, dilation=2, ceil_mode=True),
    "avg-exclude-pad": lambda x: F.avg_pool2d(x, 3, 2, padding=1, ceil_mode=True, count_include_pad=False),
    "avg-include-pad": lambda x: F.avg_pool2d(x, 2, 3, ceil_mode=True),
}


@requires_cuda
class TestOnCuda:
    @pytest.mark.parametrize("name", sorted(CEIL_MODE_POOLS))
    def test_pooling_with_ceil_mode_on_cuda_matches_cpu(self, name):
        x = np.random.default_rng(0).standard_normal((2, 3, 9, 8))
        results = []
        for device in ("cpu", "cuda"):
            t = Tensor(x, requires_grad=True, device=device)
            out = CEIL_MODE_POOLS[name](t)
            out.backward(Tensor(np.random.default_rng(1).standard_normal(out.shape), device=device))
            results.append((out.numpy(), t.grad.numpy()))
        for what, c, g in zip(["output", "gradient"], *results):
            np.testing.assert_allclose(g, c, rtol=1e-10, atol=1e-12, err_msg=what)

    @pytest.mark.parametrize("name", sorted(GENERAL_CONVOLUTIONS))
    def test_conv2d_with_dilation_groups_or_same_padding_on_cuda_matches_cpu(self, name):
        w_shape, options = GENERAL_CONVOLUTIONS[name]
        rng = np.random.default_rng(0)
        arrays = [rng.standard_normal((2, 6, 9, 8)), rng.standard_normal(w_shape), rng.standard_normal(w_shape[:1])]
        results = []
        for device in ("cpu", "cuda"):
            inputs = [Tensor(a, requires_grad=True, device=device) for a in arrays]
            out = F.conv2d(*inputs, **options)
            out.backward(Tensor(np.random.default_rng(1).standard_normal(out.shape), device=device))
            assert all(t.grad.device == device for t in inputs)
            results.append([out.numpy()] + [t.grad.numpy() for t in inputs])
        for what, c, g in zip(["output", "gradient of x", "gradient of w", "gradient of b"], *results):
            np.testing.assert_allclose(g, c, rtol=1e-10, atol=1e-12, err_msg=what)

    @pytest.mark.parametrize("name", sorted(CASES))
    @SETTINGS
    @given(data=st.data())
    def test_op_gradient_matches_finite_differences(self, name, data):
        fn, inputs = CASES[name](data.draw, "cuda")
        assert all(t.device == "cuda" for t in inputs)
        assert gradcheck(fn, *inputs)

    @pytest.mark.parametrize("name", sorted(COMPOSITES))
    @SETTINGS
    @given(data=st.data())
    def test_composite_gradient_matches_finite_differences(self, name, data):
        fn, inputs = COMPOSITES[name](data.draw, "cuda")
        assert gradcheck(fn, *inputs)

    # Dropout is left out: each device draws its mask from its own generator.
    @pytest.mark.parametrize("name", sorted(set(CASES) - {"dropout"}))
    @SETTINGS
    @given(data=st.data())
    def test_forward_and_gradients_on_cuda_match_cpu(self, name, data):
        first, replay = replaying(data.draw)
        cpu_fn, cpu_inputs = CASES[name](first, "cpu")
        cuda_fn, cuda_inputs = CASES[name](replay, "cuda")
        cpu_out, cuda_out = cpu_fn(*cpu_inputs), cuda_fn(*cuda_inputs)
        assert cuda_out.device == "cuda" and cuda_out.dtype == cpu_out.dtype
        np.testing.assert_allclose(cuda_out.numpy(), cpu_out.numpy(), rtol=1e-10, atol=1e-12)
        cotangent = np.random.default_rng(0).standard_normal(cpu_out.shape)
        cpu_out.backward(cotangent)
        cuda_out.backward(Tensor(cotangent, device="cuda"))
        for k, (c, g) in enumerate(zip(cpu_inputs, cuda_inputs)):
            assert g.grad.device == "cuda"
            np.testing.assert_allclose(g.grad.numpy(), c.grad.numpy(), rtol=1e-10, atol=1e-12,
                                       err_msg=f"gradient of input {k}")

    @pytest.mark.parametrize("op", ["add", "mul", "matmul"])
    @pytest.mark.parametrize("cuda_first", [True, False], ids=["cuda-cpu", "cpu-cuda"])
    def test_combining_a_cuda_tensor_with_a_cpu_tensor_raises_device_error(self, op, cuda_first):
        a, b = Tensor(np.ones((2, 2)), device="cuda"), Tensor(np.ones((2, 2)), device="cpu")
        if not cuda_first:
            a, b = b, a
        combine = {"add": lambda a, b: a + b, "mul": lambda a, b: a * b, "matmul": lambda a, b: a @ b}[op]
        with pytest.raises(DeviceError, match="different devices"):
            combine(a, b)

    def test_to_moves_a_tensor_to_cuda_and_back_unchanged(self):
        x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
        on_cuda = Tensor(x).to("cuda")
        assert on_cuda.device == "cuda" and on_cuda.dtype == np.float32
        back = on_cuda.to("cpu")
        assert back.device == "cpu"
        np.testing.assert_array_equal(back.numpy(), x)

    def test_an_ema_of_a_cuda_model_stays_on_cuda_and_matches_the_same_average_on_cpu(self):
        from tinygrad_mnist import nn
        from tinygrad_mnist.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
        models = {device: nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3)).to(np.float64)
                  for device in ("cpu", "cuda")}
        models["cuda"].load_state_dict(models["cpu"].state_dict())
        models["cuda"].to("cuda")
        emas = {d: AveragedModel(m, multi_avg_fn=get_ema_multi_avg_fn(0.9), use_buffers=True)
                for d, m in models.items()}
        for step in range(5):
            x = np.random.default_rng(step).standard_normal((8, 4))
            for device, model in models.items():
                model(Tensor(x, device=device))  # moves the running statistics
                for p in model.parameters():
                    p.array += 0.1
                emas[device].update_parameters(model)
        assert all(t.device == "cuda" for t in emas["cuda"].module.parameters())
        for key, value in emas["cpu"].state_dict().items():
            np.testing.assert_allclose(emas["cuda"].state_dict()[key], value, rtol=1e-12, err_msg=key)
