"""A small tqdm-like progress bar for training loops and downloads.

    with ProgressBar(total=469, desc="epoch 1", unit="batch") as bar:
        for x, y in batches(...):
            ...
            bar.update(loss=loss, acc=acc)

renders as

    epoch 1  37% |███████▍            | 173/469 [00:03<00:05, 57.1 batch/s] loss=0.231 acc=0.912

On a terminal the line is redrawn in place (at most every `min_interval` seconds). Anywhere else
(CI logs, pipes, files) only the final line is printed, at `close()`, so logs are not flooded.
"""

import numbers
import sys
import time

_BLOCKS = " ▏▎▍▌▋▊█"
_BAR_WIDTH = 20


def format_interval(seconds):
    """`mm:ss`, or `h:mm:ss` from one hour on."""
    minutes, s = divmod(int(seconds), 60)
    h, m = divmod(minutes, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def format_size(n):
    """Bytes in binary units: `512 B`, `1.5 KiB`, `9.5 MiB`, `1.2 GiB`."""
    if n < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}"


def _format_rate(rate, unit):
    if unit == "B":
        return f"{format_size(rate)}/s"
    # Slow loops (an epoch per minute) read better as seconds per step.
    if 0 < rate < 1:
        return f"{1 / rate:.2f} s/{unit}"
    return f"{rate:.1f} {unit}/s"


def _format_value(v):
    if isinstance(v, numbers.Real) and not isinstance(v, numbers.Integral):
        return f"{v:.3g}"
    return str(v)


def format_meter(n, total, elapsed, desc="", unit="it", postfix=None, ascii=False):
    """One progress line; the bar, ETA and percentage only when `total` is known."""
    rate = n / elapsed if elapsed > 0 else None
    rate_text = "?" if rate is None else _format_rate(rate, unit)
    if total:
        frac = min(max(n / total, 0.0), 1.0)
        eta = format_interval((total - n) / rate) if rate and n <= total else "?"
        count = f"{format_size(n)}/{format_size(total)}" if unit == "B" else f"{n}/{total}"
        text = (f"{frac:4.0%} |{_bar(frac, ascii)}| {count} "
                f"[{format_interval(elapsed)}<{eta}, {rate_text}]")
    else:
        count = format_size(n) if unit == "B" else f"{n} {unit}"
        text = f"{count} [{format_interval(elapsed)}, {rate_text}]"
    if desc:
        text = f"{desc} {text}"
    if postfix:
        text += " " + " ".join(f"{k}={_format_value(v)}" for k, v in postfix.items())
    return text


def _bar(frac, ascii):
    if ascii:
        filled = int(frac * _BAR_WIDTH)
        return "#" * filled + " " * (_BAR_WIDTH - filled)
    eighths = int(frac * _BAR_WIDTH * 8)
    full, part = divmod(eighths, 8)
    bar = "█" * full + (_BLOCKS[part] if full < _BAR_WIDTH else "")
    return bar.ljust(_BAR_WIDTH)


def _can_encode(file, text):
    try:
        text.encode(getattr(file, "encoding", None) or "utf-8")
        return True
    except (UnicodeEncodeError, LookupError):
        return False


class ProgressBar:
    """Counts steps (or bytes, with unit="B") towards `total`, which may be None when unknown.

    `file` defaults to sys.stderr as it is when the bar is made. `disable=True` prints nothing;
    otherwise the bar redraws live on a TTY and prints one final line anywhere else.
    """

    def __init__(self, total=None, desc="", unit="it", file=None, disable=None, min_interval=0.1):
        self.total = total
        self.desc = desc
        self.unit = unit
        self.file = sys.stderr if file is None else file
        self.disable = bool(disable)
        self.min_interval = min_interval
        self.n = 0
        self.postfix = {}
        self.closed = False
        isatty = getattr(self.file, "isatty", None)
        self.live = not self.disable and isatty is not None and isatty()
        self.ascii = not _can_encode(self.file, _BLOCKS)
        self.start = time.monotonic()
        self._last_draw = None
        self._last_len = 0
        if self.live:
            self._draw()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def update(self, n=1, **postfix):
        """Advance by `n`; keyword arguments go to `set_postfix`."""
        self.n += n
        self.set_postfix(**postfix)

    def set_postfix(self, **kv):
        """Show `key=value` after the bar; keys given replace earlier values, others stay."""
        self.postfix.update(kv)
        if self.live and time.monotonic() - self._last_draw >= self.min_interval:
            self._draw()

    def render(self):
        """The line as it would be shown now."""
        return format_meter(self.n, self.total, time.monotonic() - self.start, self.desc,
                            self.unit, self.postfix, self.ascii)

    def close(self):
        """Print the final state once; later calls do nothing."""
        if self.closed:
            return
        self.closed = True
        if self.disable:
            return
        if self.live:
            self._draw()
            self.file.write("\n")
        else:
            self.file.write(self.render() + "\n")
        self.file.flush()

    def _draw(self):
        line = self.render()
        # Pad with spaces so a shorter line fully covers the previous one.
        self.file.write("\r" + line + " " * max(self._last_len - len(line), 0))
        self.file.flush()
        self._last_len = len(line)
        self._last_draw = time.monotonic()
