import io

import pytest

from tinygrad_mnist.progress import ProgressBar, format_interval, format_meter, format_size


class FakeStream(io.StringIO):
    def __init__(self, tty, encoding="utf-8"):
        super().__init__()
        self.tty = tty
        self._encoding = encoding

    def isatty(self):
        return self.tty

    @property
    def encoding(self):
        return self._encoding


def test_meter_shows_percentage_bar_counts_times_rate_and_postfix():
    line = format_meter(370, 1000, 3.0, "desc", postfix={"loss": 0.23123, "acc": 0.9123})
    assert line == ("desc  37% |███████▍            | 370/1000 [00:03<00:05, 123.3 it/s] "
                    "loss=0.231 acc=0.912")


def test_meter_at_the_start_has_unknown_rate_and_eta():
    assert format_meter(0, 10, 0.0) == "  0% |                    | 0/10 [00:00<?, ?]"


def test_meter_caps_the_bar_when_the_count_overshoots():
    line = format_meter(12, 10, 2.0)
    assert line.startswith("100% |" + "█" * 20 + "| 12/10 [00:02<?,")


def test_meter_inverts_slow_rates():
    assert format_meter(1, 10, 30.0, "epochs", unit="epoch").endswith("[00:30<04:30, 30.00 s/epoch]")


def test_meter_counts_bytes_in_binary_units():
    line = format_meter(3 * 2**20, 10 * 2**20, 2.0, "f.gz", unit="B")
    assert line.endswith("| 3.0 MiB/10.0 MiB [00:02<00:04, 1.5 MiB/s]")


def test_meter_without_total_shows_count_and_rate_only():
    assert format_meter(37, None, 2.0, "x") == "x 37 it [00:02, 18.5 it/s]"
    assert format_meter(1536, None, 1.0, "f", unit="B") == "f 1.5 KiB [00:01, 1.5 KiB/s]"


def test_meter_falls_back_to_ascii():
    assert "|##########          |" in format_meter(5, 10, 1.0, ascii=True)


def test_postfix_prints_integers_and_strings_as_they_are():
    assert format_meter(1, None, 1.0, postfix={"epoch": 3, "mode": "eval"}).endswith(" epoch=3 mode=eval")


@pytest.mark.parametrize("seconds, text", [(0, "00:00"), (5.9, "00:05"), (65, "01:05"),
                                           (3599, "59:59"), (3725, "1:02:05")])
def test_format_interval(seconds, text):
    assert format_interval(seconds) == text


@pytest.mark.parametrize("n, text", [(0, "0 B"), (512, "512 B"), (1536, "1.5 KiB"),
                                     (10 * 2**20, "10.0 MiB"), (3 * 2**30, "3.0 GiB"),
                                     (2048 * 2**30, "2048.0 GiB")])
def test_format_size(n, text):
    assert format_size(n) == text


def test_off_a_terminal_only_one_final_line_is_printed():
    stream = FakeStream(tty=False)
    with ProgressBar(total=500, desc="train", file=stream, min_interval=0) as bar:
        for i in range(500):
            bar.update(loss=1.0 / (i + 1))
    text = stream.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n") and "\r" not in text
    assert text.startswith("train 100% |") and "500/500" in text and "loss=0.002" in text


def test_on_a_terminal_the_line_is_redrawn_in_place():
    stream = FakeStream(tty=True)
    with ProgressBar(total=3, file=stream, min_interval=0) as bar:
        for _ in range(3):
            bar.update()
    text = stream.getvalue()
    assert text.count("\r") == 5 and text.count("\n") == 1
    assert text.rstrip("\n").split("\r")[-1].startswith("100% |")


def test_redraws_are_throttled_by_min_interval():
    stream = FakeStream(tty=True)
    with ProgressBar(total=1000, file=stream, min_interval=60) as bar:
        for _ in range(1000):
            bar.update()
    assert stream.getvalue().count("\r") == 2


def test_a_shorter_redraw_covers_the_longer_line():
    stream = FakeStream(tty=True)
    bar = ProgressBar(total=None, file=stream, min_interval=0)
    bar.set_postfix(note="a long message")
    bar.set_postfix(note="")
    previous, last = stream.getvalue().split("\r")[-2:]
    assert len(last.rstrip()) < len(previous) == len(last)


def test_disabled_bar_prints_nothing():
    stream = FakeStream(tty=True)
    with ProgressBar(total=10, file=stream, disable=True) as bar:
        bar.update(10)
    assert stream.getvalue() == ""


def test_close_prints_once():
    stream = FakeStream(tty=False)
    bar = ProgressBar(total=2, file=stream)
    bar.update(2)
    bar.close()
    bar.close()
    assert stream.getvalue().count("\n") == 1


def test_set_postfix_updates_only_the_keys_given():
    bar = ProgressBar(total=1, file=FakeStream(tty=False))
    bar.update(loss=0.5, acc=0.25)
    bar.set_postfix(acc=0.75)
    assert bar.render().endswith("loss=0.5 acc=0.75")


def test_streams_that_cannot_encode_blocks_get_an_ascii_bar():
    stream = FakeStream(tty=False, encoding="ascii")
    with ProgressBar(total=4, file=stream) as bar:
        bar.update(2)
    assert "|##########          | 2/4" in stream.getvalue()


def test_defaults_to_stderr(capsys):
    with ProgressBar(total=1, desc="to-stderr") as bar:
        bar.update()
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("to-stderr 100%")
