"""The one table formatter: GitHub-flavoured Markdown, padded so that it reads as well in a terminal.

Every table the command line prints or a document embeds (evaluate's report, the PyTorch comparison,
the benchmarks, the README's results) is made here.
"""


def table(headers, rows, pad=True):
    """A Markdown table of `headers` and `rows` (any values, shown with str). `pad=False` leaves the
    cells unpadded, for a table too wide to line up anyway."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) if pad else 0 for i in range(len(headers))]
    line = lambda row: "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |"  # noqa: E731
    rule = "|" + "|".join("-" * (w + 2) if pad else "---" for w in widths) + "|"
    return "\n".join([line(cells[0]), rule, *map(line, cells[1:])])
