"""`tinygrad-mnist predict RUN FILE_OR_FOLDER...`: a line for every file, the run goes on past the ones
it cannot read, a summary at the end, --json for scripts. The model is conftest's glyph_run, which
reads a drawn loop as 0 and an upright stroke as 1."""
import json

import numpy as np
import pytest

Image = pytest.importorskip("PIL.Image")

from idx_fixtures import LOOP, VERTICAL, pad_drawing  # noqa: E402
from tinygrad_mnist import cli, reading  # noqa: E402


def predict(capsys, *args):
    """(exit code, stdout lines, stderr lines) of `tinygrad-mnist predict ...`."""
    capsys.readouterr()
    code = cli.main(["predict", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err.splitlines()


@pytest.fixture
def folder(tmp_path):
    """a.png a loop, b.png not an image, c.png an upright stroke, notes.txt, and a subfolder."""
    folder = tmp_path / "digits"
    folder.mkdir()
    pad_drawing(LOOP).save(folder / "a.png")
    (folder / "b.png").write_text("not a picture\n")
    pad_drawing(VERTICAL).save(folder / "c.png")
    (folder / "notes.txt").write_text("scanned on Tuesday\n")
    (folder / "more").mkdir()
    return folder


def test_a_broken_file_in_a_folder_gets_its_error_line_and_the_others_are_still_read(capsys, glyph_run, folder):
    code, out, err = predict(capsys, glyph_run, folder)
    assert code == 2
    assert [line.split(":")[0] for line in out] == [str(folder / "a.png"), str(folder / "c.png")]
    assert out[0].startswith(f"{folder / 'a.png'}: 0 (") and out[1].startswith(f"{folder / 'c.png'}: 1 (")
    assert err[0] == f"{folder / 'b.png'}: error: not an image (Pillow cannot identify the file format)"
    assert err[-1] == "2 images read, 1 failed; 2 other entries in the folders skipped (not image files)"
    assert not any("Traceback" in line for line in err)


def test_when_every_file_is_read_the_exit_code_is_0_and_the_summary_says_so(capsys, glyph_run, tmp_path):
    paths = [tmp_path / "loop.png", tmp_path / "stroke.jpg"]
    pad_drawing(LOOP).save(paths[0])
    pad_drawing(VERTICAL).save(paths[1], quality=80)
    code, out, err = predict(capsys, glyph_run, *paths)
    assert code == 0
    assert [line.split(": ")[1][0] for line in out] == ["0", "1"]
    assert err == ["2 images read, 0 failed"]


def test_files_named_on_the_command_line_are_read_in_order_whatever_their_names(capsys, glyph_run, tmp_path):
    odd = tmp_path / "scan.dat"
    pad_drawing(VERTICAL).save(odd, format="PNG")
    missing = tmp_path / "missing.png"
    code, out, err = predict(capsys, glyph_run, odd, missing)
    assert code == 2
    assert out == [out[0]] and out[0].startswith(f"{odd}: 1 (")
    assert err == [f"{missing}: error: no such file", "1 image read, 1 failed"]


def test_a_folder_without_images_is_a_failure_that_says_what_was_looked_for(capsys, glyph_run, tmp_path):
    (tmp_path / "readme.md").write_text("no pictures here\n")
    code, out, err = predict(capsys, glyph_run, tmp_path)
    assert code == 2 and out == []
    assert err[0].startswith(f"{tmp_path}: error: no image files in this folder (looked for .png .jpg")
    assert err[-1].startswith("0 images read, 1 failed")


def test_json_gives_one_object_per_file_errors_included_and_keeps_the_summary_off_stdout(capsys, glyph_run, folder):
    code, out, err = predict(capsys, glyph_run, folder, "--json")
    assert code == 2
    records = [json.loads(line) for line in out]
    assert [r["path"] for r in records] == [str(folder / name) for name in ("a.png", "b.png", "c.png")]
    assert [r.get("prediction") for r in records] == ["0", None, "1"]
    assert records[1] == {"path": str(folder / "b.png"),
                          "error": "not an image (Pillow cannot identify the file format)"}
    for r in (records[0], records[2]):
        assert list(r["probabilities"]) == [str(k) for k in range(10)]
        assert sum(r["probabilities"].values()) == pytest.approx(1, abs=1e-5)
        assert r["probability"] == max(r["probabilities"].values())
    assert err == ["2 images read, 1 failed; 2 other entries in the folders skipped (not image files)"]


def test_top_k_lists_the_k_most_likely_classes_most_likely_first(capsys, glyph_run, folder):
    _, out, _ = predict(capsys, glyph_run, folder / "a.png", "--top", "3")
    ranked = out[0].split(": ", 1)[1].split(", ")
    assert len(ranked) == 3 and ranked[0].startswith("0 (")
    percents = [float(item.split("(")[1].rstrip("%)")) for item in ranked]
    assert percents == sorted(percents, reverse=True)


def test_more_files_than_a_batch_give_the_same_answers_in_order(capsys, glyph_run, tmp_path, monkeypatch):
    shapes = [LOOP, VERTICAL, None, LOOP, LOOP, VERTICAL, None, VERTICAL]
    for i, shape in enumerate(shapes):
        path = tmp_path / f"{i}.png"
        if shape is None:
            path.write_bytes(b"")
        else:
            pad_drawing(shape).save(path)
    _, all_at_once, _ = predict(capsys, glyph_run, tmp_path, "--json")
    monkeypatch.setattr(reading, "BATCH", 3)
    _, in_batches, err = predict(capsys, glyph_run, tmp_path, "--json")
    assert in_batches == all_at_once
    assert [json.loads(line).get("prediction") for line in in_batches] == ["0", "1", None, "0", "0", "1", None, "1"]
    assert err == ["6 images read, 2 failed"]


@pytest.mark.parametrize("variant", ["cropped tight", "half in shadow", "light on dark", "small", "huge"])
def test_a_loop_reads_0_cropped_tight_in_shadow_inverted_small_or_huge(capsys, glyph_run, tmp_path, variant):
    im = pad_drawing(LOOP)
    if variant == "cropped tight":
        im = im.crop(Image.eval(im, lambda v: 255 - v).getbbox())
    elif variant == "half in shadow":
        light = np.where(np.arange(im.width) > im.width // 2, 0.4, 1.0)
        im = Image.fromarray((np.asarray(im) * light).astype(np.uint8))
    elif variant == "light on dark":
        im = Image.eval(im, lambda v: 255 - v)
    elif variant == "small":
        im = im.resize((40, 40), Image.LANCZOS)
    else:
        im = im.resize((4000, 4000), Image.NEAREST)
    path = tmp_path / "loop.png"
    im.save(path)
    code, out, _ = predict(capsys, glyph_run, path)
    assert code == 0 and out[0].startswith(f"{path}: 0 (")
