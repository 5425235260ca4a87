"""`python -m tinygrad_mnist.benchmark --worker SPEC` runs one benchmark worker (workers.py); with any
other arguments it is `tinygrad-mnist benchmark`."""
import sys

if sys.argv[1:2] == ["--worker"] and len(sys.argv) == 3:
    from .workers import run_worker
    sys.exit(run_worker(sys.argv[2]))

from ..cli import main  # noqa: E402

sys.exit(main(["benchmark", *sys.argv[1:]]))
