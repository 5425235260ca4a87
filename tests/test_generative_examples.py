"""Whole programs beyond classification, written once in PyTorch's vocabulary and run on both frameworks
with the same weights, data and noise, in float64: PyTorch's VAE example (pytorch/examples, vae/main.py),
a convolutional autoencoder (ConvTranspose2d, Unflatten, Upsample, BCEWithLogitsLoss) and DCGAN's
training step (pytorch/examples, dcgan/main.py) on a small MNIST-sized generator and discriminator. Each
takes a few Adam steps; the losses of every step and the weights after the last must agree.
"""
import numpy as np
import pytest

import tinygrad_mnist as tg

torch = pytest.importorskip("torch")

RTOL, ATOL = 1e-9, 1e-12


class WithNoise:
    """A framework's top-level module (`torch` or the engine) whose randn_like hands out the arrays of
    `noise` in turn, so that both frameworks draw the same numbers (their generators cannot)."""

    def __init__(self, module, make, noise):
        self.module, self.make, self.draws = module, make, iter(noise)

    def randn_like(self, t):
        return self.make(next(self.draws))

    def __getattr__(self, name):
        return getattr(self.module, name)


def frameworks(noise=()):
    """The engine and PyTorch, each as (torch, nn, F, optim)."""
    return ((WithNoise(tg, tg.Tensor, noise), tg.nn, tg.functional, tg.optim),
            (WithNoise(torch, torch.tensor, noise), torch.nn, torch.nn.functional, torch.optim))


def vae_example(torch, nn, F):
    """pytorch/examples vae/main.py: its VAE and loss_function as written there."""
    class VAE(nn.Module):
        def __init__(self):
            super(VAE, self).__init__()

            self.fc1 = nn.Linear(784, 400)
            self.fc21 = nn.Linear(400, 20)
            self.fc22 = nn.Linear(400, 20)
            self.fc3 = nn.Linear(20, 400)
            self.fc4 = nn.Linear(400, 784)

        def encode(self, x):
            h1 = F.relu(self.fc1(x))
            return self.fc21(h1), self.fc22(h1)

        def reparameterize(self, mu, logvar):
            std = torch.exp(0.5*logvar)
            eps = torch.randn_like(std)
            return mu + eps*std

        def decode(self, z):
            h3 = F.relu(self.fc3(z))
            return torch.sigmoid(self.fc4(h3))

        def forward(self, x):
            mu, logvar = self.encode(x.view(-1, 784))
            z = self.reparameterize(mu, logvar)
            return self.decode(z), mu, logvar

    # Reconstruction + KL divergence losses summed over all elements and batch
    def loss_function(recon_x, x, mu, logvar):
        BCE = F.binary_cross_entropy(recon_x, x.view(-1, 784), reduction='sum')

        # see Appendix B from VAE paper:
        # Kingma and Welling. Auto-Encoding Variational Bayes. ICLR, 2014
        # https://arxiv.org/abs/1312.6114
        # 0.5 * sum(1 + log(sigma^2) - mu^2 - sigma^2)
        KLD = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())

        return BCE + KLD

    return VAE, loss_function


def autoencoder_example(nn):
    """A convolutional autoencoder for 28×28 digits: strided convolutions down to a code of 10, back up
    through a linear layer, Unflatten, a transposed convolution and nearest upsampling; logits out."""
    class AutoEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Sequential(
                nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.ReLU(),      # 4 × 14 × 14
                nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.ReLU(),      # 8 × 7 × 7
                nn.Flatten(), nn.Linear(8 * 7 * 7, 10))
            self.decoder = nn.Sequential(
                nn.Linear(10, 8 * 7 * 7), nn.ReLU(), nn.Unflatten(1, (8, 7, 7)),
                nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),  # 4 × 14 × 14
                nn.Upsample(scale_factor=2), nn.Conv2d(4, 1, 3, padding=1))                     # 1 × 28 × 28

        def forward(self, x):
            return self.decoder(self.encoder(x))

    return AutoEncoder


def dcgan_example(nn, nz=8, ngf=8, ndf=8):
    """DCGAN's generator and discriminator (pytorch/examples dcgan/main.py), cut to MNIST's 28×28 and a
    few channels: the generator's transposed convolutions go 1 → 7 → 14 → 28 (the last with output_padding)."""
    generator = nn.Sequential(
        nn.ConvTranspose2d(nz, ngf * 4, 7, 1, 0, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 2, 1, 3, 2, 1, output_padding=1), nn.Tanh())
    discriminator = nn.Sequential(
        nn.Conv2d(1, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, inplace=True),
        nn.Flatten(), nn.Linear(ndf * 2 * 7 * 7, 1), nn.Sigmoid())
    return generator, discriminator


def twin(ours, theirs):
    """`theirs`, in float64, holding our module's weights (loaded strictly: the same names and shapes)."""
    ours.to(np.float64)
    theirs.double().load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in ours.state_dict().items()}, strict=True)
    return ours, theirs


def assert_same_state(ours, theirs):
    expected = theirs.state_dict()
    for name, value in ours.state_dict().items():
        np.testing.assert_allclose(value, expected[name].numpy(), rtol=1e-8, atol=1e-11, err_msg=name)


def digits(seed, n):
    """MNIST-like images in [0, 1], exact zeros and ones among them (as MNIST's background and strokes)."""
    x = np.random.default_rng(seed).uniform(-0.5, 1.5, size=(n, 1, 28, 28))
    return np.clip(x, 0.0, 1.0)


def test_pytorchs_vae_example_trains_step_for_step_like_pytorch():
    steps, batch = 3, 8
    noise = [np.random.default_rng(100 + k).standard_normal((batch, 20)) for k in range(steps)]
    tg.manual_seed(0)
    results = []
    for (torch_, nn, F, optim) in frameworks(noise):
        VAE, loss_function = vae_example(torch_, nn, F)
        results.append((VAE(), loss_function, optim))
    (ours, our_loss, our_optim), (theirs, their_loss, their_optim) = results
    twin(ours, theirs)
    our_opt, their_opt = our_optim.Adam(ours.parameters(), lr=1e-3), their_optim.Adam(theirs.parameters(), lr=1e-3)
    for step in range(steps):
        data = digits(step, batch)
        losses = []
        for model, loss_function, optimizer, make in ((ours, our_loss, our_opt, tg.Tensor),
                                                       (theirs, their_loss, their_opt, torch.tensor)):
            model.train()
            optimizer.zero_grad()
            recon_batch, mu, logvar = model(make(data))
            loss = loss_function(recon_batch, make(data), mu, logvar)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        np.testing.assert_allclose(losses[0], losses[1], rtol=RTOL, err_msg=f"loss of step {step}")
    assert losses[0] < 784 * batch * np.log(2) * 1.2  # a real reconstruction loss, in nats
    assert_same_state(ours, theirs)


def test_a_conv_autoencoder_with_bce_with_logits_trains_step_for_step_like_pytorch():
    (_, our_nn, _, our_optim), (_, their_nn, _, their_optim) = frameworks()
    tg.manual_seed(1)
    ours, theirs = twin(autoencoder_example(our_nn)(), autoencoder_example(their_nn)())
    our_opt, their_opt = our_optim.Adam(ours.parameters(), lr=1e-2), their_optim.Adam(theirs.parameters(), lr=1e-2)
    criteria = our_nn.BCEWithLogitsLoss(), their_nn.BCEWithLogitsLoss()
    losses = []
    for step in range(4):
        images = digits(10 + step, 4)
        pair = []
        for model, optimizer, criterion, make in ((ours, our_opt, criteria[0], tg.Tensor),
                                                  (theirs, their_opt, criteria[1], torch.tensor)):
            optimizer.zero_grad()
            reconstruction = model(make(images))
            assert tuple(reconstruction.shape) == images.shape
            loss = criterion(reconstruction, make(images))
            loss.backward()
            optimizer.step()
            pair.append(loss.item())
        np.testing.assert_allclose(pair[0], pair[1], rtol=RTOL, err_msg=f"loss of step {step}")
        losses.append(pair[0])
    assert losses[-1] < losses[0]
    assert_same_state(ours, theirs)


def test_dcgan_training_steps_with_transposed_convolutions_and_batch_norm_match_pytorch():
    nz, batch = 8, 6
    (our_torch, our_nn, _, our_optim), (their_torch, their_nn, _, their_optim) = frameworks()
    tg.manual_seed(2)
    nets = []
    for ours, theirs in zip(dcgan_example(our_nn, nz), dcgan_example(their_nn, nz)):
        nets.append(twin(ours, theirs))
    (our_g, their_g), (our_d, their_d) = nets
    sides = [(our_g, our_d, our_nn.BCELoss(), our_optim, our_torch, tg.Tensor),
             (their_g, their_d, their_nn.BCELoss(), their_optim, their_torch, torch.tensor)]
    optimizers = [(optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999)),
                   optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))) for g, d, _, optim, _, _ in sides]
    real_label, fake_label = 1., 0.
    for step in range(3):
        real_cpu = digits(20 + step, batch) * 2 - 1  # tanh's range, as the example's Normalize gives
        noise_array = np.random.default_rng(30 + step).standard_normal((batch, nz, 1, 1))
        errors = []
        for (netG, netD, criterion, _, torch_, make), (optimizerD, optimizerG) in zip(sides, optimizers):
            # dcgan/main.py's step: (1) Update D network: maximize log(D(x)) + log(1 - D(G(z)))
            netD.zero_grad()
            real = make(real_cpu)
            label = torch_.full((batch,), real_label, dtype=torch_.float64)
            output = netD(real).view(-1)
            errD_real = criterion(output, label)
            errD_real.backward()
            noise = make(noise_array)
            fake = netG(noise)
            label.fill_(fake_label)
            output = netD(fake.detach()).view(-1)
            errD_fake = criterion(output, label)
            errD_fake.backward()
            errD = errD_real + errD_fake
            optimizerD.step()
            # (2) Update G network: maximize log(D(G(z)))
            netG.zero_grad()
            label.fill_(real_label)  # fake labels are real for generator cost
            output = netD(fake).view(-1)
            errG = criterion(output, label)
            errG.backward()
            optimizerG.step()
            assert tuple(fake.shape) == (batch, 1, 28, 28)
            errors.append((errD.item(), errG.item()))
        np.testing.assert_allclose(errors[0], errors[1], rtol=RTOL, err_msg=f"errD, errG of step {step}")
    assert_same_state(our_g, their_g)
    assert_same_state(our_d, their_d)
