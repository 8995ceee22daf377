"""Bring your own VAE: a convolutional VAE trained in plain torch, calibrated post hoc, geodesics.

Run: python docs/examples/own_vae.py   (about half a minute on one CPU core)

Nothing here uses vaemanifold's VAE class: the model is any torch VAE whose
decoder outputs pixel means. vaemanifold needs only the decoder mean, the
latent codes of the training data and the data, to fit the variance network
of Arvanitidis et al. (2017) after the fact.
"""

import torch
from torch import nn

import vaemanifold as vm
from vaemanifold import data

torch.manual_seed(0)
torch.set_num_threads(1)
X, y = data.load("mnist", classes=(0, 1, 7), per_class=200)  # (600, 784) in [0, 1]
images = X.view(-1, 1, 28, 28)


class ConvVAE(nn.Module):
    """A small convolutional VAE with a 2-D latent space (Bernoulli-free: Gaussian mean decoder)."""

    def __init__(self, latent_dim: int = 2) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 16, 4, 2, 1), nn.SiLU(), nn.Conv2d(16, 32, 4, 2, 1), nn.SiLU(), nn.Flatten(),
            nn.Linear(32 * 7 * 7, 2 * latent_dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, 32 * 7 * 7), nn.SiLU(), nn.Unflatten(-1, (32, 7, 7)),
            nn.ConvTranspose2d(32, 16, 4, 2, 1), nn.SiLU(), nn.ConvTranspose2d(16, 1, 4, 2, 1), nn.Sigmoid(),
        )

    def encode(self, x):
        mean, log_std = self.encoder(x).chunk(2, dim=-1)
        return mean, log_std.exp()

    def decode(self, z):
        return self.decoder(z)


vae = ConvVAE()
optimiser = torch.optim.Adam(vae.parameters(), lr=3e-3)
for epoch in range(40):
    for batch in images[torch.randperm(len(images))].split(64):
        mean, std = vae.encode(batch)
        z = mean + std * torch.randn_like(std)
        reconstruction = ((vae.decode(z) - batch) ** 2).sum(dim=(1, 2, 3)) / (2 * 0.1**2)
        kl = 0.5 * (mean**2 + std**2 - 1 - 2 * std.log()).sum(dim=-1)
        loss = (reconstruction + kl).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
vae.eval()


# The decoder mean as vaemanifold sees it: (..., d) -> (..., D), flattened pixels.
def mean(z: torch.Tensor) -> torch.Tensor:
    return vae.decode(z.reshape(-1, z.shape[-1])).reshape(*z.shape[:-1], 784)


with torch.no_grad():
    codes, code_std = vae.encode(images)
std = vm.calibrate_std(mean, codes, X, latent_std=code_std, num_centers=32, progress=False)
with torch.no_grad():
    near = std(codes).mean(dim=-1).median().item()
    far = std(codes.mean(0) + 4 * codes.std(0) * torch.tensor([[1.0, 1.0], [-1.0, 1.0]])).mean(dim=-1).min().item()
print(f"sigma at the training codes {near:.3f}, four spreads away {far:.3f}: {far / near:.0f}x")

M = vm.DecoderManifold(mean, std, latents=codes)
zero, one = codes[y == 0][:3], codes[y == 1][:3]  # three 0s joined to three 1s
for method in ("linear", "gauss_newton"):
    res = vm.connecting_geodesic(M, zero, one, method=method)
    lengths = " ".join(f"{x:8.2f}" for x in res.length.tolist())
    print(f"{method:<12} lengths {lengths}   converged {int(res.converged.sum())}/{len(res)}")
