"""The README's picture of `tinygrad-mnist serve`: draw a seven on the page in headless Chromium, save
a screenshot. Needs Chromium, chromedriver and selenium (see .ci/run).

    python scripts/screenshot_page.py RUN_OR_CHECKPOINT docs/serve.png
"""
import argparse
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the browser helpers the tests use

import browser  # noqa: E402
from idx_fixtures import SEVEN  # noqa: E402
from tinygrad_mnist import cli, serve  # noqa: E402
from tinygrad_mnist.reading import DigitReader  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("checkpoint", metavar="RUN_OR_CHECKPOINT")
parser.add_argument("out", metavar="OUT.png")
args = parser.parse_args()
reason = browser.unavailable()
if reason:
    sys.exit(f"screenshot_page: {reason}")

server = serve.make_server(DigitReader(*cli.load_trained(args.checkpoint)), args.checkpoint, port=0)
threading.Thread(target=server.serve_forever, daemon=True).start()
with browser.chromium() as driver:
    browser.open_page(driver, server.url)
    browser.draw(driver, SEVEN)
    print(f"the page reads {browser.reading(driver)['top']}")
    png = browser.screenshot(driver, width=1180)
server.shutdown()
browser.save_small_png(png, args.out)
print(f"wrote {args.out}")
