"""Draw a model's recorded graph (one forward pass and the loss on a zero batch) with Graphviz.

    python scripts/draw_graph.py --model lenet5 --out lenet5_graph.svg
"""
import argparse
import sys

import numpy as np

import tinygrad_mnist.functional as F
from tinygrad_mnist import Tensor
from tinygrad_mnist.models import MODELS, build_model
from tinygrad_mnist.viz import GraphvizNotFound, draw_graph


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lenet5", choices=sorted(MODELS))
    parser.add_argument("--out", help="output file: .svg, .png, .pdf or .dot (default: MODEL_graph.svg)")
    parser.add_argument("--format", choices=["svg", "png", "pdf", "dot"], help="instead of the --out suffix")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--eval", action="store_true", help="evaluation mode (no dropout, running BN statistics)")
    parser.add_argument("--tensors", action="store_true", help="a node per intermediate tensor, not just per op")
    args = parser.parse_args(argv)
    model = build_model(args.model).train(not args.eval)
    try:
        logits = model(Tensor(np.zeros((args.batch_size, 1, 28, 28), np.float32)))
    except ValueError as e:
        print(f"error: {e} (try --batch-size 2 or --eval)", file=sys.stderr)
        return 2
    loss = F.cross_entropy(logits, np.zeros(args.batch_size, np.int64))
    try:
        path = draw_graph(loss, args.out or f"{args.model}_graph.svg", format=args.format,
                          names=model.named_parameters(), merge_tensors=not args.tensors)
    except GraphvizNotFound as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
