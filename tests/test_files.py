"""files.atomic_write, the one writer of every file that must never be seen half-written, and the
folders a failed download or run takes back."""
import os

import pytest

from tinygrad_mnist.files import atomic_write, make_folder, remove_empty_folders


def test_an_atomic_write_replaces_the_file_whole(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("old")
    with atomic_write(path, "w") as f:
        f.write("new ✓")
    assert path.read_text(encoding="utf-8") == "new ✓"
    assert os.listdir(tmp_path) == ["results.json"]


def test_an_error_inside_the_block_keeps_the_old_file_and_leaves_no_temporary_one(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(path) as f:
            f.write(b"half")
            raise KeyboardInterrupt
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["data.bin"]


def test_a_new_file_appears_only_when_complete(tmp_path):
    path = tmp_path / "page.html"
    with atomic_write(path, "w") as f:
        f.write("<p>")
        assert not path.exists()
    assert path.read_text() == "<p>"


def test_only_binary_and_text_writing_are_atomic():
    with pytest.raises(ValueError, match="'wb' or 'w'"):
        with atomic_write("x", "a"):
            pass


def test_the_folders_made_for_something_that_failed_are_taken_back(tmp_path):
    created = make_folder(tmp_path / "a" / "b" / "c")
    assert (tmp_path / "a" / "b" / "c").is_dir() and len(created) == 3
    remove_empty_folders(created)
    assert os.listdir(tmp_path) == []


def test_a_folder_that_holds_a_file_is_kept_with_its_parents(tmp_path):
    created = make_folder(tmp_path / "a" / "b")
    (tmp_path / "a" / "b" / "kept").write_text("")
    remove_empty_folders(created)
    assert (tmp_path / "a" / "b" / "kept").exists()


def test_an_existing_folder_is_never_taken_back(tmp_path):
    assert make_folder(tmp_path) == []
    remove_empty_folders(make_folder(tmp_path / "new"))
    assert tmp_path.is_dir()
