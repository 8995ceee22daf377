"""A model from another VAE library: a pythae VAE, calibrated post hoc, geodesics.

Run: python docs/examples/pythae_vae.py   (needs `pip install pythae`; about 20 s on one CPU core)

pythae's decoders return a ModelOutput whose "reconstruction" is the mean
image; vaemanifold needs a function of the latent code returning flattened
means, and the encoder's posterior means (pythae's "embedding") as codes.
"""

import torch
from pythae.models import VAE, VAEConfig

import vaemanifold as vm
from vaemanifold import data

torch.manual_seed(0)
torch.set_num_threads(1)
X, y = data.load("mnist", classes=(0, 1, 7), per_class=200)  # (600, 784) in [0, 1]
images = X.view(-1, 1, 28, 28)

model = VAE(VAEConfig(input_dim=(1, 28, 28), latent_dim=2, reconstruction_loss="bce"))
optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
for epoch in range(40):  # pythae's own loss; its TrainingPipeline works as well
    for batch in images[torch.randperm(len(images))].split(64):
        loss = model({"data": batch}).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
model.eval()


def mean(z: torch.Tensor) -> torch.Tensor:
    """pythae's decoder mean as a map (..., 2) -> (..., 784)."""
    images = model.decoder(z.reshape(-1, z.shape[-1]))["reconstruction"]
    return images.reshape(*z.shape[:-1], 784)


with torch.no_grad():
    posterior = model.encoder(images)
    codes, code_std = posterior["embedding"], (0.5 * posterior["log_covariance"]).exp()
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
