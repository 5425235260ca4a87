"""The multilayer perceptrons of the from-scratch MNIST projects."""
import tinygrad_mnist.functional as F
from tinygrad_mnist import nn


class MLPv1(nn.Module):
    """784-128(tanh)-10, Xavier initialisation; trained by full-batch gradient descent."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 128, init="xavier_uniform")
        self.fc2 = nn.Linear(128, 10, init="xavier_uniform")

    def forward(self, x):
        x = x.flatten(1)
        x = self.fc1(x).tanh()
        return self.fc2(x)


class ReLUMLP(nn.Module):
    """784-hidden(ReLU)-10, He initialisation, dropout after the hidden layer:
    mlp_v2 is 784-128-10 with dropout 0.2, mlp_533 is 784-533-10 without."""

    def __init__(self, hidden, dropout=0.0):
        super().__init__()
        self.fc1 = nn.Linear(784, hidden, init="kaiming_normal")
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, 10, init="kaiming_normal")

    def forward(self, x):
        x = x.flatten(1)
        x = self.drop(self.fc1(x).relu())
        return self.fc2(x)


class MLP64x32(nn.Module):
    """784-64-32-10 with ReLU (or sigmoid) hidden units."""

    def __init__(self, activation="relu"):
        super().__init__()
        if activation not in ("relu", "sigmoid"):
            raise ValueError(f"mlp_64_32: activation must be 'relu' or 'sigmoid', not {activation!r}")
        self.activation = activation
        init = "kaiming_normal" if activation == "relu" else "xavier_uniform"
        self.fc1 = nn.Linear(784, 64, init=init)
        self.fc2 = nn.Linear(64, 32, init=init)
        self.fc3 = nn.Linear(32, 10, init=init)

    def forward(self, x):
        act = F.relu if self.activation == "relu" else F.sigmoid
        x = x.flatten(1)
        x = act(self.fc1(x))
        x = act(self.fc2(x))
        return self.fc3(x)
