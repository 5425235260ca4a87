"""Optimizers with torch.optim's names and update rules, and in `optim.lr_scheduler` the learning-rate
schedulers. The schedulers are also reachable here (optim.StepLR), where they lived before. In
`optim.swa_utils`, averages of the weights (AveragedModel, with EMA or SWA updates)."""
from . import lr_scheduler, swa_utils
from .lr_scheduler import (CosineAnnealingLR, ExponentialLR, LambdaLR, LinearLR, LinearWarmup, LRScheduler,
                           MultiStepLR, OneCycleLR, ReduceLROnPlateau, StepLR)
from .optimizer import SGD, Adadelta, Adagrad, Adam, AdamW, Optimizer, RMSprop

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "lr_scheduler", "swa_utils",
           "LRScheduler", "StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "LinearLR", "LambdaLR",
           "OneCycleLR", "ReduceLROnPlateau", "LinearWarmup"]
