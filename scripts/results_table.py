"""Print the README's results table (Markdown) from finished run folders.

    python scripts/results_table.py runs/mlp_v1 runs/mlp_v2 ...

The folder name picks the row's reference figures below (the published results we compare with).
"""
import sys

from tinygrad_mnist.report import results_markdown

REFERENCE = {
    "mlp_v1": ("88.09% (1000 epochs full-batch GD)", "86.59–89.59% (within 1.5 points)"),
    "mlp_v2": ("97.56%, macro F1 0.975", "97.6%"),
    "mlp_533": ("95.28% (PyTorch twin 95.34%)", "95.3%"),
    "mlp_533_better": ("95.28%", "98%"),
    "mlp_64_32": ("96.67%", "96.7%"),
    "lenet5": ("99.1% in 20 epochs, macro F1 0.991", "99.1% in ≤ 10 epochs"),
    "cnn_bn": ("98.85%", "99.0%"),
    "simple_cnn": ("~97% after 5 epochs", "99.0% after 5 epochs"),
    "best": ("99.5%+ with BN, augmentation or a deeper CNN", "99.6%"),
    "resnet": ("— (not among the projects)", "99.5%"),
    "frontier-s0": ("99.65% (one CNN, Cireşan et al. 2011); 99.68–99.73% (An et al. 2020, 4 seeds)", "99.70%"),
    "frontier-s1": ("the same, a second seed", "mean of both ≥ 99.65%"),
    "frontier40-s0": ("frontier-s0's recipe, 40 epochs", "99.70%"),
    "frontier-aug20-s0": ("frontier40-s0 with An et al.'s ranges (±20°, ±20% shifts)", "99.70%"),
    "frontier-wd-s0": ("frontier40-s0 with AdamW, weight decay 0.02", "99.70%"),
    "elastic-s0": ("frontier-s0 with elastic distortion (Cireşan et al.'s σ 6, α 36 px), 28 epochs", "99.70%"),
    "elastic-s1": ("the same, seed 1", "mean of both ≥ 99.65%"),
    "wide-s0": ("frontier-s0 with resnet_wide (1.5× the channels), 16 epochs", "99.70%"),
    "wide-s1": ("the same, seed 1", "mean of both ≥ 99.65%"),
    "wide14-s0": ("wide-s0 in 14 epochs, alone on the 2 cores (to fit in 90 minutes)", "99.70%"),
    "wide-s0-r2": ("wide-s0's command again, alone on the 2 cores, after the im2col bands' least of 8,192 columns", "99.70%"),
    "wide-s1-r2": ("the same, seed 1 (the cores shared with a test run for eight epochs)", "mean of both ≥ 99.65%"),
    "x2-s0": ("frontier-s0 with resnet_2x (twice the channels), 10 epochs, alone on the 2 cores", "99.70%"),
    "fast_cnn": ("— (meant as the time-to-99% net)", "99.0% in 2 epochs"),
    "sprint_cnn": ("— (the time-to-99% net)", "99.0% in 1 epoch"),
    "sprint_cnn_995": ("— (the time-to-99.5% net)", "99.5% in 3 epochs"),
}

if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python scripts/results_table.py RUN_DIR...")
    print(results_markdown(sys.argv[1:], REFERENCE), end="")
