"""tinygrad_mnist.vision behaves as torchvision's datasets and transforms do for MNIST code: the files in
torchvision's place, ToTensor and Normalize against their formulas and against torch's ops, the geometric
transforms against torchvision's conventions and its resampling (grid_sample), and DataLoader batches
against torch's DataLoader over torchvision's MNIST (its __getitem__ written in torch ops), sample by sample
and through the whole-array path alike. Bad input is refused in one line that says what to do."""
import dataclasses
import gzip
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import tinygrad_mnist as engine
from idx_fixtures import dataset_bytes, serve, sha256_of, write_dataset
from tinygrad_mnist import data, vision
from tinygrad_mnist.utils.data import DataLoader, Dataset, Subset, default_collate, random_split
from tinygrad_mnist.utils.data import _rows
from tinygrad_mnist.vision import Image, datasets, transforms

MEAN, STD = (0.1307,), (0.3081,)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """No test sees the user's data folders, cache or mirrors."""
    monkeypatch.delenv("TINYGRAD_MNIST_DATA", raising=False)
    monkeypatch.delenv("TINYGRAD_MNIST_MIRRORS", raising=False)
    monkeypatch.setenv("TINYGRAD_MNIST_CACHE", str(tmp_path / "cache"))
    for name, spec in data.DATASETS.items():
        monkeypatch.setitem(data.DATASETS, name, dataclasses.replace(spec, system_dirs=()))


def example_transform():
    return transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD)])


def fixture_arrays(root, name="MNIST"):
    ds = data.load_dataset(data_dir=root / name / "raw", download=False)
    return ds.train_images, ds.train_labels, ds.test_images, ds.test_labels


# Datasets

def test_mnist_reads_root_MNIST_raw_as_torchvision_lays_it_out(mnist_root):
    train_images, train_labels, test_images, test_labels = fixture_arrays(mnist_root)
    train, test = datasets.MNIST(str(mnist_root), train=True), datasets.MNIST(mnist_root, train=False)
    assert isinstance(train.data, engine.Tensor) and train.data.dtype == np.uint8 and train.data.shape == (600, 28, 28)
    assert train.targets.dtype == np.int64 and len(train) == 600 and len(test) == 200
    np.testing.assert_array_equal(train.data.numpy(), train_images)
    np.testing.assert_array_equal(test.targets.numpy(), test_labels)
    assert train.raw_folder == os.path.join(str(mnist_root), "MNIST", "raw") and test.train is False
    assert train.classes[:2] == ["0 - zero", "1 - one"] and train.class_to_idx["9 - nine"] == 9


def test_fashion_mnist_reads_root_FashionMNIST_raw_with_its_class_names(tmp_path):
    write_dataset(tmp_path / "FashionMNIST" / "raw", n_train=30, n_test=10)
    fashion = datasets.FashionMNIST(tmp_path, train=False)
    assert len(fashion) == 10 and fashion.classes[0] == "T-shirt/top" and fashion.class_to_idx["Ankle boot"] == 9


def test_a_torchvision_download_of_uncompressed_files_is_used_as_it_is(tmp_path, mnist_root):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in data.FILES:  # torchvision keeps each .gz and its uncompressed copy
        shutil.copy(mnist_root / "MNIST" / "raw" / name, raw / name)
        (raw / name.removesuffix(".gz")).write_bytes(gzip.decompress((raw / name).read_bytes()))
    assert len(datasets.MNIST(tmp_path, train=False)) == 200


def test_download_fetches_the_files_into_root_MNIST_raw_and_checks_them(tmp_path, monkeypatch):
    files = dataset_bytes(tmp_path, n_train=40, n_test=10)
    monkeypatch.setitem(data.DATASETS, "mnist", dataclasses.replace(data.DATASETS["mnist"], sha256=sha256_of(files)))
    with serve({f"/m/{name}": body for name, body in files.items()}) as base:
        monkeypatch.setenv("TINYGRAD_MNIST_MIRRORS", base + "/m/")
        train = datasets.MNIST(tmp_path / "data", train=True, download=True)
        bad = {f"/m/{name}": body[:-1] + bytes([body[-1] ^ 1]) for name, body in files.items()}
    assert len(train) == 40 and sorted(os.listdir(tmp_path / "data" / "MNIST" / "raw")) == sorted(data.FILES)
    with serve(bad) as base:
        monkeypatch.setenv("TINYGRAD_MNIST_MIRRORS", base + "/m/")
        with pytest.raises(data.DatasetNotFound, match="checksum mismatch"):
            datasets.MNIST(tmp_path / "elsewhere", download=True)


def test_missing_files_raise_torchvisions_runtime_error_naming_the_folder_and_the_fix(tmp_path, dataset):
    with pytest.raises(RuntimeError, match=r"Dataset not found.*MNIST[/\\]raw.*download=True") as caught:
        datasets.MNIST(tmp_path)
    assert isinstance(caught.value, data.DatasetNotFound) and "\n" not in str(caught.value)
    with pytest.raises(RuntimeError, match="the root itself holds them: move them there"):
        datasets.MNIST(dataset)  # the loader's flat folder of four files, where torchvision's layout has raw/


def test_root_none_uses_the_files_the_loader_finds(dataset, monkeypatch):
    monkeypatch.setenv("TINYGRAD_MNIST_DATA", str(dataset))
    test = datasets.MNIST(None, train=False)
    assert len(test) == 200 and test.raw_folder == str(dataset)


def test_a_sample_is_the_transformed_image_and_the_transformed_int_label(mnist_root):
    plain = datasets.MNIST(mnist_root)
    img, label = plain[3]
    assert isinstance(img, Image) and type(label) is int and label == int(plain.targets[3])
    np.testing.assert_array_equal(np.asarray(img), plain.data.numpy()[3])
    shaped = datasets.MNIST(mnist_root, transform=transforms.ToTensor(), target_transform=lambda y: y + 100)
    x, y = shaped[-1]
    assert x.shape == (1, 28, 28) and x.dtype == np.float32 and y == int(plain.targets[-1]) + 100


def test_a_transform_that_writes_into_its_image_leaves_the_dataset_alone(mnist_root):
    def scribble(img):
        np.asarray(img)[:] = 255
        return img

    ds = datasets.MNIST(mnist_root, transform=scribble)
    before = ds.data.numpy().copy()
    assert np.asarray(ds[0][0]).min() == 255
    np.testing.assert_array_equal(ds.data.numpy(), before)


def test_without_a_transform_a_batch_of_images_is_refused_as_pytorch_refuses_pil_images(mnist_root):
    with pytest.raises(TypeError, match="found Image"):
        next(iter(DataLoader(datasets.MNIST(mnist_root), batch_size=2)))


def test_an_index_is_one_int(mnist_root):
    ds = datasets.MNIST(mnist_root)
    assert ds[np.int64(2)][1] == ds[2][1] == ds[-598][1]
    with pytest.raises(TypeError, match="one int.*DataLoader or a Subset"):
        ds[0:4]


def test_the_image_has_pils_size_and_refuses_pils_methods_in_one_line(mnist_root):
    img, _ = datasets.MNIST(mnist_root)[0]
    assert img.size == (28, 28) and (img.width, img.height, img.mode) == (28, 28, "L")
    for call in (lambda: img.convert("RGB"), lambda: img.resize((32, 32)), lambda: img.getpixel((0, 0))):
        with pytest.raises(AttributeError, match="not a PIL image.*np.asarray\\(img\\)") as caught:
            call()
        assert "\n" not in str(caught.value)
    assert not hasattr(img, "rotate")


def test_the_old_attribute_names_warn_and_give_data_and_targets(mnist_root):
    ds = datasets.MNIST(mnist_root)
    with pytest.warns(UserWarning, match="train_labels has been renamed targets"):
        assert ds.train_labels is ds.targets


def test_datasets_and_transforms_import_as_torchvisions_do():
    import tinygrad_mnist.vision.transforms as T
    from tinygrad_mnist.vision.datasets import FashionMNIST, MNIST
    assert T is transforms and MNIST is datasets.MNIST and FashionMNIST is datasets.FashionMNIST


@pytest.mark.parametrize("namespace, name, message", [
    ("datasets", "KMNIST", "MNIST and Fashion-MNIST only"),
    ("datasets", "EMNIST", "MNIST and Fashion-MNIST only"),
    ("transforms", "RandomHorizontalFlip", "has Compose, ToTensor.*write it as a Lambda"),
])
def test_what_is_not_provided_is_refused_naming_what_is(namespace, name, message):
    with pytest.raises(AttributeError, match=message) as caught:
        getattr(getattr(vision, namespace), name)
    assert "\n" not in str(caught.value)


def test_resize_is_refused_when_made_saying_what_to_do():
    from tinygrad_mnist.vision.transforms import Resize
    with pytest.raises(NotImplementedError, match=r"Pad\(2\) makes the 32x32") as caught:
        Resize(32)
    assert "\n" not in str(caught.value)


# ToTensor, Normalize, Compose, Lambda

def test_to_tensor_scales_uint8_pixels_as_torchvision_does():
    torch = pytest.importorskip("torch")
    pixels = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    ours = transforms.ToTensor()(Image(pixels))
    theirs = torch.from_numpy(pixels).view(28, 28, 1).permute(2, 0, 1).contiguous().to(torch.float32).div(255)
    assert ours.dtype == np.float32 and ours.shape == (1, 28, 28)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    np.testing.assert_array_equal(ours.numpy(), pixels[None] / np.float32(255))


def test_to_tensor_of_an_array_puts_channels_first_and_scales_only_uint8():
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)  # H, W, C
    out = transforms.ToTensor()(rgb)
    assert out.shape == (3, 2, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out.numpy(), rgb.transpose(2, 0, 1) / np.float32(255))
    floats = np.full((4, 5), 7.0)
    kept = transforms.ToTensor()(floats)
    assert kept.shape == (1, 4, 5) and kept.dtype == np.float64 and float(kept.max()) == 7.0


def test_to_tensor_takes_a_pil_image_where_pillow_is_installed():
    pil = pytest.importorskip("PIL.Image")
    pixels = np.random.default_rng(1).integers(0, 256, (5, 7), dtype=np.uint8)
    ours = transforms.ToTensor()(pil.fromarray(pixels, mode="L"))
    np.testing.assert_array_equal(ours.numpy(), transforms.ToTensor()(Image(pixels)).numpy())


@pytest.mark.parametrize("pic, error, message", [
    (engine.zeros(1, 28, 28), TypeError, "it is a tensor already, drop ToTensor"),
    (np.zeros((1, 1, 28, 28), np.uint8), ValueError, "2/3 dimensional"),
    ([[0, 1]], TypeError, "should be an Image, a PIL image or an ndarray"),
])
def test_to_tensor_refuses_what_it_cannot_read(pic, error, message):
    with pytest.raises(error, match=message):
        transforms.ToTensor()(pic)


def test_normalize_is_torchvisions_arithmetic_to_the_last_bit():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(2).random((3, 6, 5), dtype=np.float32)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    ours = transforms.Normalize(mean, std)(engine.tensor(x))
    theirs = torch.from_numpy(x).clone().sub_(torch.as_tensor(mean).view(-1, 1, 1)).div_(
        torch.as_tensor(std).view(-1, 1, 1))
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    one = transforms.Normalize(MEAN, STD)(engine.tensor(x))  # one mean and std for every channel
    np.testing.assert_array_equal(one.numpy(), (x - np.float32(MEAN[0])) / np.float32(STD[0]))


def test_normalize_writes_into_the_tensor_only_with_inplace():
    x = engine.ones(1, 2, 2)
    out = transforms.Normalize(0.5, 0.25)(x)
    assert float(x.max()) == 1.0 and out.tolist() == [[[2.0, 2.0], [2.0, 2.0]]]
    assert transforms.Normalize(0.5, 0.25, inplace=True)(x) is x and x.tolist() == out.tolist()


def test_normalize_is_recorded_when_its_input_requires_grad():
    x = engine.ones(2, 1, 2, 2, requires_grad=True)
    transforms.Normalize((0.5,), (0.25,))(x).sum().backward()
    assert x.grad.tolist() == np.full((2, 1, 2, 2), 4.0).tolist()


def test_normalize_reads_its_mean_and_std_when_it_runs():
    mean = [0.0]
    normalize = transforms.Normalize(mean, [1.0])
    x = engine.ones(1, 2, 2)
    assert float(normalize(x).max()) == 1.0
    mean[0] = 1.0  # a list can change between calls; the next call sees it
    assert float(normalize(x).max()) == 0.0


@pytest.mark.parametrize("mean, std, given, error, message", [
    (MEAN, STD, lambda: Image(np.zeros((28, 28), np.uint8)), TypeError, r"put ToTensor\(\) before Normalize"),
    (MEAN, STD, lambda: engine.zeros(1, 28, 28, dtype=np.uint8), TypeError, "should be a float tensor"),
    (MEAN, STD, lambda: engine.zeros(28, 28), ValueError, r"\(\.\.\., C, H, W\)"),
    ((0.1, 0.2, 0.3), (1, 1, 1), lambda: engine.zeros(2, 28, 28), ValueError, "3 values for an image of 2 channel"),
    ((0.5,), (0.0,), lambda: engine.zeros(1, 28, 28), ValueError, "std evaluated to zero.*give std > 0"),
])
def test_normalize_refuses_what_torchvision_refuses_saying_what_to_do(mean, std, given, error, message):
    with pytest.raises(error, match=message) as caught:
        transforms.Normalize(mean, std)(given())
    assert "\n" not in str(caught.value)


def test_compose_applies_in_order_and_lambda_wraps_a_function():
    t = transforms.Compose([transforms.Lambda(lambda x: x + 1), transforms.Lambda(lambda x: x * 10)])
    assert t(1) == 20 and repr(t) == "Compose(\n    Lambda()\n    Lambda()\n)"
    with pytest.raises(TypeError, match="lambd should be callable"):
        transforms.Lambda(3)


# Pad and RandomCrop

DIGIT = np.arange(1, 5 * 6 + 1, dtype=np.uint8).reshape(5, 6)


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "symmetric"])
@pytest.mark.parametrize("padding, widths", [(2, ((2, 2), (2, 2))), ((1, 3), ((3, 3), (1, 1))),
                                             ([1, 2, 3, 4], ((2, 4), (1, 3)))])
def test_pad_pads_left_top_right_bottom_in_each_mode_as_numpy_does(mode, padding, widths):
    out = transforms.Pad(padding, fill=7, padding_mode=mode)(Image(DIGIT))
    expected = np.pad(DIGIT, widths, mode=mode, **({"constant_values": 7} if mode == "constant" else {}))
    assert isinstance(out, Image)
    np.testing.assert_array_equal(np.asarray(out), expected)


def test_pad_of_a_tensor_is_torchs_pad_of_its_last_two_axes():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(3).random((2, 5, 6), dtype=np.float32)
    for mode, torch_mode in (("constant", "constant"), ("edge", "replicate"), ("reflect", "reflect")):
        ours = transforms.Pad([1, 2, 3, 4], padding_mode=mode)(engine.tensor(x))
        theirs = torch.nn.functional.pad(torch.from_numpy(x)[None], (1, 3, 2, 4), mode=torch_mode)[0]
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


@pytest.mark.parametrize("make, error, message", [
    (lambda: transforms.Pad((1, 2, 3)), ValueError, "1, 2, or 4 element tuple"),
    (lambda: transforms.Pad(-1), ValueError, "negative"),
    (lambda: transforms.Pad(1, padding_mode="wrap"), ValueError, "constant, edge, reflect or symmetric"),
    (lambda: transforms.RandomCrop((1, 2, 3)), ValueError, "size should be an int or a sequence"),
])
def test_pad_and_crop_refuse_arguments_torchvision_refuses(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_random_crop_draws_every_window_and_repeats_under_manual_seed():
    crop = transforms.RandomCrop(3, padding=1)
    padded = np.pad(DIGIT, 1)
    engine.manual_seed(0)
    outs = [np.asarray(crop(Image(DIGIT))) for _ in range(400)]
    corners = {next((i, j) for i in range(5) for j in range(6) if np.array_equal(padded[i:i + 3, j:j + 3], o))
               for o in outs}
    assert corners == {(i, j) for i in range(5) for j in range(6)}
    engine.manual_seed(0)
    assert all(np.array_equal(np.asarray(crop(Image(DIGIT))), o) for o in outs[:20])


def test_random_crop_pads_if_needed_and_otherwise_says_so():
    out = np.asarray(transforms.RandomCrop((5, 8), pad_if_needed=True)(Image(DIGIT)))
    padded = np.pad(DIGIT, ((0, 0), (2, 2)))  # 6 wide: both sides padded by the shortfall, as torchvision does
    assert out.shape == (5, 8) and any(np.array_equal(out, padded[:, j:j + 8]) for j in range(3))
    with pytest.raises(ValueError, match=r"required crop size \(6, 6\) is larger than input image size \(5, 6\)"
                                         r".*padding= or pad_if_needed=True"):
        transforms.RandomCrop(6)(Image(DIGIT))


def test_random_crop_of_the_whole_image_draws_nothing():
    engine.manual_seed(0)
    transforms.RandomCrop((5, 6))(Image(DIGIT))
    after = engine.rand(1).item()
    engine.manual_seed(0)
    assert engine.rand(1).item() == after


# The affine transforms: torchvision's conventions, then its resampling

def blob(h=29, w=29, at=(0.0, 0.0)):
    """A float64 (1, h, w) Gaussian spot at `at` (x, y) pixels from the centre."""
    ys, xs = np.mgrid[0:h, 0:w] - np.array([(h - 1) / 2, (w - 1) / 2])[:, None, None]
    return np.exp(-((xs - at[0]) ** 2 + (ys - at[1]) ** 2) / 2)[None]


def centroid(image):
    h, w = image.shape[-2:]
    ys, xs = np.mgrid[0:h, 0:w] - np.array([(h - 1) / 2, (w - 1) / 2])[:, None, None]
    return float((image * xs).sum() / image.sum()), float((image * ys).sum() / image.sum())


def moved(at, angle=0.0, translate=(0, 0), scale=1.0, shear=(0.0, 0.0), center=None):
    out = vision._affine(engine.tensor(blob(at=at)), angle, translate, scale, shear,
                         transforms.InterpolationMode.BILINEAR, 0, center, "test")
    return centroid(out.numpy())


@pytest.mark.parametrize("params, start, end", [
    (dict(angle=90), (6, 0), (0, 6)),                        # F.affine turns clockwise as displayed (y down)
    (dict(translate=(3, -2)), (0, 0), (3, -2)),              # +x right, +y down, whole pixels
    (dict(scale=1.5), (4, -2), (6, -3)),                     # about the centre
    (dict(shear=(30, 0)), (0, 5), (-5 * math.tan(math.radians(30)), 5)),   # x sheared by -tan(s) y
    (dict(shear=(0, 20)), (5, 0), (5, -5 * math.tan(math.radians(20)))),   # y sheared by -tan(s) x
    (dict(angle=180, center=(14.5 + 4, 14.5)), (0, 0), (8, 0)),            # about a point 4 right of the centre
])
def test_the_affine_map_follows_torchvisions_conventions(params, start, end):
    np.testing.assert_allclose(moved(start, **params), end, atol=0.05)


def test_random_rotation_turns_counter_clockwise_as_displayed_and_random_affine_clockwise():
    x = engine.tensor(blob(at=(6, 0)))
    up = centroid(transforms.RandomRotation((90, 90), interpolation=transforms.InterpolationMode.BILINEAR)(x).numpy())
    down = centroid(transforms.RandomAffine((90, 90), interpolation="bilinear")(x).numpy())
    np.testing.assert_allclose(up, (0, -6), atol=0.05)
    np.testing.assert_allclose(down, (0, 6), atol=0.05)


def torchvision_resampling(image, matrix, mode, fill):
    """torchvision's tensor path of F.affine for a float64 (C, H, W) image and its inverse matrix, in torch ops:
    the output pixels' centres from the image's centre, mapped by the matrix and scaled to grid_sample's [-1, 1]
    (align_corners=False), a channel of ones sampled beside the image, and fill where that mask says outside."""
    torch = pytest.importorskip("torch")
    c, h, w = image.shape
    ys, xs = torch.meshgrid(torch.linspace(-h / 2 + 0.5, h / 2 - 0.5, h, dtype=torch.float64),
                            torch.linspace(-w / 2 + 0.5, w / 2 - 0.5, w, dtype=torch.float64), indexing="ij")
    base = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1).view(1, h * w, 3)
    theta = torch.tensor(matrix, dtype=torch.float64).view(1, 2, 3)
    grid = base.bmm(theta.transpose(1, 2) / torch.tensor([0.5 * w, 0.5 * h], dtype=torch.float64)).view(1, h, w, 2)
    stacked = torch.cat([torch.from_numpy(image)[None], torch.ones(1, 1, h, w, dtype=torch.float64)], dim=1)
    out = torch.nn.functional.grid_sample(stacked, grid, mode=mode, padding_mode="zeros", align_corners=False)
    img, mask = out[:, :-1], out[:, -1:].expand(1, c, h, w)
    if mode == "nearest":
        img[mask < 0.5] = fill
        return img[0].numpy()
    return (img * mask + (1.0 - mask) * fill)[0].numpy()


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("seed", range(6))
def test_the_resampling_is_torchvisions_grid_sample(mode, seed):
    rng = np.random.default_rng(seed)
    image = rng.random((2, 11, 13))
    angle, scale = rng.uniform(-180, 180), rng.uniform(0.6, 1.4)
    translate, shear = tuple(rng.integers(-3, 4, 2).tolist()), tuple(rng.uniform(-20, 20, 2))
    fill = [0.0, 0.7][seed % 2]
    matrix = vision._inverse_affine_matrix((0.0, 0.0), angle, translate, scale, shear)
    ours = vision._affine(engine.tensor(image), angle, translate, scale, shear,
                          transforms.InterpolationMode(mode), fill, None, "test").numpy()
    np.testing.assert_allclose(ours, torchvision_resampling(image, matrix, mode, fill), atol=1e-12)


def test_rotations_agree_with_pillows_which_torchvision_uses_on_mnists_images():
    """Where the two resamplings must agree: nearest picks the same pixel but within rounding of a half-pixel
    boundary; bilinear is within 1 of 255 wherever the point lies at least half a pixel inside the image."""
    pil = pytest.importorskip("PIL.Image")
    rng, mismatched, worst = np.random.default_rng(0), 0, 0
    for _ in range(50):
        pixels, angle = rng.integers(0, 256, (28, 28), dtype=np.uint8), rng.uniform(-30, 30)
        for mode, resample in ((transforms.InterpolationMode.NEAREST, pil.NEAREST),
                               (transforms.InterpolationMode.BILINEAR, pil.BILINEAR)):
            ours = np.asarray(vision._affine(Image(pixels), -angle, (0, 0), 1.0, (0, 0), mode, 0, None, "test"))
            theirs = np.asarray(pil.fromarray(pixels, mode="L").rotate(angle, resample=resample))
            if mode is transforms.InterpolationMode.NEAREST:
                mismatched += int((ours != theirs).sum())
                continue
            m = vision._inverse_affine_matrix((0.0, 0.0), -angle, (0, 0), 1.0, (0.0, 0.0))
            xs, ys = np.arange(28) - 13.5, (np.arange(28) - 13.5)[:, None]
            src = (m[0] * xs + m[1] * ys + m[2] + 13.5, m[3] * xs + m[4] * ys + m[5] + 13.5)
            inside = (src[0] >= 0.5) & (src[0] <= 26.5) & (src[1] >= 0.5) & (src[1] <= 26.5)
            worst = max(worst, int(np.abs(ours.astype(int) - theirs)[inside].max()))
    assert mismatched <= 50 * 28 * 28 // 1000 and worst <= 1


def test_a_uint8_image_is_resampled_in_float_and_rounded_back():
    pixels = (255 * blob(h=28, w=28, at=(2, 3))[0]).astype(np.uint8)
    rotate = transforms.RandomRotation((33, 33), interpolation=transforms.InterpolationMode.BILINEAR)
    out = rotate(Image(pixels))
    as_float = rotate(engine.tensor(pixels[None].astype(np.float32))).numpy()[0]
    assert isinstance(out, Image)
    np.testing.assert_array_equal(np.asarray(out), np.round(as_float).astype(np.uint8))


def test_random_affine_shifts_by_whole_pixels_within_the_range():
    engine.manual_seed(0)
    shift, seen = transforms.RandomAffine(0, translate=(0.1, 0.1)), set()
    for _ in range(40):
        out = np.asarray(shift(Image(DIGIT)))  # 6 wide, 5 high: shifts in ±0.6 and ±0.5 pixels, rounded
        seen.add(next((dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)
                      if np.array_equal(out, shifted(DIGIT, dx, dy))))
    assert seen == {(-1, 0), (0, 0), (1, 0)}


def shifted(pixels, dx, dy):
    out = np.zeros_like(pixels)
    h, w = pixels.shape
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = pixels[max(-dy, 0):h - max(dy, 0),
                                                                        max(-dx, 0):w - max(dx, 0)]
    return out


@pytest.mark.parametrize("make", [lambda: transforms.RandomRotation(30),
                                  lambda: transforms.RandomAffine(15, translate=(0.1, 0.1), scale=(0.9, 1.1),
                                                                  shear=(-5, 5, -5, 5))])
def test_random_draws_come_from_the_engines_generator_so_manual_seed_repeats_them(make):
    transform, img = make(), Image((255 * blob(h=28, w=28, at=(3, -2))[0]).astype(np.uint8))
    engine.manual_seed(5)
    first = [np.asarray(transform(img)) for _ in range(4)]
    engine.manual_seed(5)
    assert all(np.array_equal(np.asarray(transform(img)), f) for f in first)
    assert not all(np.array_equal(first[0], f) for f in first[1:])


@pytest.mark.parametrize("make, error, message", [
    (lambda: transforms.RandomRotation(10, expand=True), ValueError, r"expand=True\) is not supported.*\(Pad\)"),
    (lambda: transforms.RandomRotation(-10), ValueError, "must be positive"),
    (lambda: transforms.RandomAffine(10, interpolation=transforms.InterpolationMode.BICUBIC), ValueError,
     "only InterpolationMode.NEAREST and BILINEAR"),
    (lambda: transforms.RandomAffine(10, translate=(0.5, 1.5)), ValueError, "between 0 and 1"),
    (lambda: transforms.RandomAffine(10, scale=(0, 1)), ValueError, "scale values should be positive"),
    (lambda: transforms.RandomAffine(10, shear=(1, 2, 3)), ValueError, "sequence of length 2 or 4"),
])
def test_the_affine_transforms_refuse_what_they_cannot_do(make, error, message):
    with pytest.raises(error, match=message) as caught:
        make()
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("img, error, message", [
    (np.zeros((28, 28), np.uint8), TypeError, "pass the Image itself"),
    (engine.zeros(1, 28, 28, requires_grad=True), RuntimeError, "not recorded on the tape"),
    (engine.zeros(28), ValueError, r"\(\.\.\., H, W\)"),
])
def test_the_geometric_transforms_refuse_inputs_they_cannot_transform(img, error, message):
    for transform in (transforms.RandomRotation(10), transforms.RandomCrop(20), transforms.Pad(1)):
        with pytest.raises(error, match=message):
            transform(img)


# Batches

class TorchvisionMNIST:
    """torchvision.datasets.MNIST's __getitem__ through ToTensor and Normalize, in torch's own ops: a PIL image
    of mode 'L' is viewed (H, W, 1), permuted to (1, H, W), converted to float32 and divided by 255, then
    Normalize subtracts and divides in place by mean and std as float32 tensors of shape (C, 1, 1)."""

    def __init__(self, images, labels, mean, std):
        import torch
        self.torch, self.images, self.labels = torch, images, labels
        self.mean, self.std = torch.as_tensor(mean).view(-1, 1, 1), torch.as_tensor(std).view(-1, 1, 1)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        img = self.torch.from_numpy(self.images[i].copy()).view(28, 28, 1).permute(2, 0, 1).contiguous()
        img = img.to(dtype=self.torch.float32).div(255)
        return img.clone().sub_(self.mean).div_(self.std), int(self.labels[i])


def plain(batch):
    return [(str(t.dtype).removeprefix("torch."), np.asarray(t.numpy()).tolist()) for t in batch]


@pytest.mark.parametrize("sample_by_sample", [False, True])
@pytest.mark.parametrize("train, batch_size, drop_last", [(True, 64, False), (False, 64, True), (False, 200, False)])
def test_batches_are_torchs_dataloader_over_torchvisions_mnist(mnist_root, sample_by_sample, train, batch_size,
                                                               drop_last):
    torch = pytest.importorskip("torch")
    ours = datasets.MNIST(mnist_root, train=train, transform=example_transform())
    theirs = TorchvisionMNIST(ours.data.numpy(), ours.targets.numpy(), MEAN, STD)
    collate = (lambda samples: default_collate(samples)) if sample_by_sample else None
    our_batches = DataLoader(ours, batch_size=batch_size, drop_last=drop_last, collate_fn=collate)
    their_batches = torch.utils.data.DataLoader(theirs, batch_size=batch_size, drop_last=drop_last)
    assert (_rows(ours) is not None) and len(our_batches) == len(their_batches)
    for a, b in zip(our_batches, their_batches, strict=True):
        assert plain(a) == plain(b)


def test_the_whole_array_path_gives_the_sample_by_sample_batches_shuffled_and_split(mnist_root):
    ds = datasets.MNIST(mnist_root, transform=example_transform())
    part, _ = random_split(ds, [0.5, 0.5], generator=np.random.default_rng(0))
    for dataset in (ds, part):
        batches = []
        for collate in (None, lambda samples: default_collate(samples)):
            engine.manual_seed(3)
            batches.append([[t.numpy() for t in b] for b in DataLoader(dataset, batch_size=50, shuffle=True,
                                                                       collate_fn=collate)])
        assert len(batches[0]) == len(batches[1])
        for a, b in zip(*batches):
            assert all(x.dtype == y.dtype and np.array_equal(x, y) for x, y in zip(a, b))


def test_the_whole_array_path_sees_every_change_to_data_targets_and_transform(mnist_root):
    ds = datasets.MNIST(mnist_root, train=False, transform=example_transform())
    first = next(iter(DataLoader(ds, batch_size=10)))
    ds.data, ds.targets = ds.data[10:20], ds.targets[10:20]  # as torchvision users cut a dataset
    cut = next(iter(DataLoader(ds, batch_size=10)))
    assert len(ds) == 10 and not np.array_equal(cut[0].numpy(), first[0].numpy())
    np.testing.assert_array_equal(cut[0].numpy()[3], ds[3][0].numpy())
    ds.data[3] = 255  # written in place: the tensor's version moves
    assert float(next(iter(DataLoader(ds, batch_size=10)))[0][3].min()) == pytest.approx((1 - MEAN[0]) / STD[0])
    ds.transform.transforms[1] = transforms.Normalize((0.5,), (0.5,))
    assert float(next(iter(DataLoader(ds, batch_size=10)))[0][3].min()) == 1.0
    ds.data.numpy()[3] = 0  # written around the tensor, in its NumPy array
    assert float(next(iter(DataLoader(ds, batch_size=10)))[0][3].max()) == -1.0


@pytest.mark.parametrize("change", ["random", "target_transform", "subclass", "no-transform", "normalize-first"])
def test_anything_but_to_tensor_and_normalize_goes_sample_by_sample(mnist_root, change):
    class Mine(datasets.MNIST):
        raw_folder = property(lambda self: os.path.join(self.root, "MNIST", "raw"))  # torchvision's would be Mine/raw

        def __getitem__(self, index):
            img, target = super().__getitem__(index)
            return img, target * 2

    kind, transform, target_transform = datasets.MNIST, example_transform(), None
    if change == "random":
        transform = transforms.Compose([transforms.RandomRotation(10), *transform.transforms])
    elif change == "target_transform":
        target_transform = int
    elif change == "subclass":
        kind = Mine
    elif change == "no-transform":
        transform = None
    else:
        transform = transforms.Compose(transform.transforms[::-1])
    ds = kind(mnist_root, train=False, transform=transform, target_transform=target_transform)
    assert _rows(ds) is None and _rows(Subset(ds, [0, 1])) is None
    if change == "subclass":
        assert next(iter(DataLoader(ds, batch_size=4)))[1].tolist() == [2 * int(t) for t in ds.targets[:4]]


def test_a_wrapper_that_hands_attributes_on_is_batched_by_its_own_getitem(mnist_root):
    class Doubled(Dataset):
        def __init__(self, inner):
            self.inner = inner

        def __len__(self):
            return len(self.inner)

        def __getitem__(self, i):
            x, y = self.inner[i]
            return x * 2, y

        def __getattr__(self, name):
            return getattr(self.inner, name)

    inner = datasets.MNIST(mnist_root, train=False, transform=example_transform())
    x, _ = next(iter(DataLoader(Doubled(inner), batch_size=8)))
    np.testing.assert_array_equal(x.numpy(), 2 * next(iter(DataLoader(inner, batch_size=8)))[0].numpy())


def test_a_random_transform_repeats_its_batches_under_manual_seed(mnist_root):
    transform = transforms.Compose([transforms.RandomAffine(10, translate=(0.1, 0.1)), transforms.ToTensor(),
                                    transforms.Normalize(MEAN, STD)])
    ds = datasets.MNIST(mnist_root, train=False, transform=transform)
    runs = []
    for _ in range(2):
        engine.manual_seed(7)
        runs.append([b[0].numpy() for b in DataLoader(ds, batch_size=100, shuffle=True)])
    assert all(np.array_equal(a, b) for a, b in zip(*runs))


def real_mnist():
    """The real MNIST folder, as tests/test_real_mnist.py finds it (read before isolated_env hides the variable)."""
    shared = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"
    for folder in (os.environ.get("TINYGRAD_MNIST_DATA"), shared):
        if folder and all((Path(folder) / name).is_file() for name in data.FILES):
            return Path(folder)
    return None


REAL_MNIST = real_mnist()


@pytest.mark.skipif(REAL_MNIST is None, reason="real MNIST not found (set TINYGRAD_MNIST_DATA)")
def test_the_real_test_set_batches_are_torchs_over_torchvisions(monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setenv("TINYGRAD_MNIST_DATA", str(REAL_MNIST))
    ours = datasets.MNIST(None, train=False, transform=example_transform())
    theirs = TorchvisionMNIST(ours.data.numpy(), ours.targets.numpy(), MEAN, STD)
    for a, b in zip(DataLoader(ours, batch_size=1000), torch.utils.data.DataLoader(theirs, batch_size=1000),
                    strict=True):
        assert plain(a) == plain(b)
