"""The one way a file is written here that must never be seen half-written: checkpoints, results,
downloads, the benchmarks page. A crash, a full disk or Ctrl-C leaves the old file or the new one.
"""
import contextlib
import os
import secrets


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Write `path` through the file this yields ("wb" or "w"): it is a temporary file in the same folder,
    flushed and fsync'ed, then renamed over `path`, and the folder fsync'ed so that the rename lasts.
    An exception inside the block deletes the temporary file and leaves `path` as it was."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write writes with mode 'wb' or 'w', not {mode!r}")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    # os.open applies the umask, as for any new file; mkstemp would make it readable by its owner only
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(folder)


def _fsync_dir(folder):
    """Make a rename durable; some platforms cannot open or fsync a folder, and that is fine."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def make_folder(path):
    """Create `path` and any missing parents; return the folders created, outermost first, for
    remove_empty_folders to take back if what they were made for fails."""
    path, missing = os.path.abspath(os.fspath(path)), []
    while not os.path.exists(path):
        missing.append(path)
        path = os.path.dirname(path)
    created = []
    try:
        for folder in reversed(missing):
            os.mkdir(folder)
            created.append(folder)
    except BaseException:
        remove_empty_folders(created)
        raise
    return created


def remove_empty_folders(created):
    """Remove the folders make_folder created that are still empty, innermost first."""
    for folder in reversed(created):
        try:
            os.rmdir(folder)
        except OSError:  # not empty (something was written there after all), or already gone
            return
