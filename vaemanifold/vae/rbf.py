"""The RBF precision network of Arvanitidis, Hansen & Hauberg (2017, "Latent space oddity").

    beta(z) = W v(z) + zeta,   v_k(z) = exp(-lambda_k ||z - c_k||^2),   sigma(z) = beta(z)^(-1/2)

with W >= 0 (D x K), centres c_k from k-means on the latent means of the
training data and bandwidths from each cluster's spread,

    lambda_k = 0.5 * (a * mean_{z_j in C_k} ||z_j - c_k||)^(-2),

a the bandwidth scale. Near the data the RBFs give a large precision (small
sigma, fitted by the ELBO); far from every centre v(z) -> 0, so
beta -> zeta and sigma -> zeta^(-1/2): large but finite. That rise of sigma
away from the data is what makes geodesics of the expected metric avoid
regions without data.

W = exp(w) is log-parametrised: W >= 0 by construction, and the fitted
precisions of one decoder span orders of magnitude across pixels
(almost-constant border pixels against strokes), which in log space are
numbers of one scale for anyone fine-tuning them by gradient steps.
"""

from __future__ import annotations

import math

import torch
from torch import nn

#: v_k(z) is set to exactly 0 where lambda_k ||z - c_k||^2 exceeds this fraction of -log(smallest normal
#: number of the dtype) (65 in float32, 531 in float64). Far from a centre exp(-x) is otherwise a subnormal
#: number, and CPU arithmetic on subnormals is slow: on the fashion-2d preset a quarter of the
#: activations at random latent points were subnormal and made sigma(z) 3x slower than the mean decoder
#: (measured, one thread). The change is below exp(-65) W relative to beta >= zeta; the margin keeps the
#: forward-mode tangents, which are v times bounded factors, out of the subnormal range too.
CUTOFF_FRACTION = 0.75


class RBFPrecision(nn.Module):
    """sigma(z) = (W v(z) + zeta)^(-1/2): a row-wise map (..., d) -> (..., D).

    Args:
        latent_dim: d.
        data_dim: D, one precision per output dimension.
        num_centers: K.
        zeta: the precision floor; sigma never exceeds zeta^(-1/2).

    Centres and bandwidths are buffers set by :meth:`fit_centres`; the log
    weights are the only parameters.
    """

    def __init__(self, latent_dim: int, data_dim: int, num_centers: int, zeta: float) -> None:
        super().__init__()
        if num_centers < 1:
            raise ValueError(f"num_centers must be >= 1, got {num_centers}")
        if zeta <= 0:
            raise ValueError(f"zeta must be positive (sigma stays finite far from the data), got {zeta}")
        self.zeta = float(zeta)
        self.register_buffer("centres", torch.zeros(num_centers, latent_dim))
        self.register_buffer("bandwidths", torch.ones(num_centers))
        self.log_weights = nn.Parameter(torch.zeros(data_dim, num_centers))

    @property
    def num_centers(self) -> int:
        return self.centres.shape[0]

    def activations(self, z: torch.Tensor) -> torch.Tensor:
        """v(z): (..., d) -> (..., K), exactly 0 where v_k < exp(-cutoff) (see :data:`CUTOFF_FRACTION`)."""
        exponent = self.bandwidths * ((z.unsqueeze(-2) - self.centres) ** 2).sum(dim=-1)
        cutoff = CUTOFF_FRACTION * -math.log(torch.finfo(exponent.dtype).tiny)
        inside = exponent < cutoff
        return torch.where(inside, torch.exp(-exponent.clamp_max(cutoff)), torch.zeros((), dtype=exponent.dtype))

    def precision(self, z: torch.Tensor) -> torch.Tensor:
        """beta(z) = W v(z) + zeta: (..., d) -> (..., D)."""
        return self.activations(z) @ self.log_weights.exp().T + self.zeta

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """sigma(z) = beta(z)^(-1/2): (..., d) -> (..., D)."""
        return self.precision(z).rsqrt()

    def forward_jet(self, jet: torch.Tensor, n: int) -> torch.Tensor:
        """sigma and its derivatives along p directions in one pass (:mod:`vaemanifold.jets`).

        Args:
            jet: ((1 + p) n, d): n points z, then p blocks of n tangents t.
            n: the number of points.

        Returns:
            ((1 + p) n, D): sigma(z), then the p blocks dsigma = -sigma^3 / 2 * W dv with
            dv_k = -2 lambda_k v_k(z) (z - c_k).t.
        """
        z, tangents = jet[:n], jet[n:].view(-1, n, jet.shape[-1])  # (n, d), (p, n, d)
        v = self.activations(z)  # (n, K)
        towards = (tangents * z).sum(dim=-1, keepdim=True) - tangents @ self.centres.T  # (p, n, K): (z - c_k).t
        dv = -2 * self.bandwidths * v * towards
        beta = torch.cat([v, dv.view(-1, v.shape[-1])]) @ self.log_weights.exp().T  # values, then W dv
        beta[:n] += self.zeta
        sigma = beta[:n].rsqrt()
        dsigma = beta[n:].view(-1, *sigma.shape) * (-0.5 * sigma**3)
        return torch.cat([sigma, dsigma.view(-1, sigma.shape[-1])])

    def forward_second_jet(self, jet: torch.Tensor, n: int) -> torch.Tensor:
        """sigma, its derivatives along p directions and its second derivative along the last one
        (a second-order jet of :mod:`vaemanifold.jets`).

        Args:
            jet: ((2 + p) n, d): n points z, p blocks of n tangents (the last, u), then n second
                derivatives a of the input along u.
            n: the number of points.

        Returns:
            ((2 + p) n, D): as :meth:`forward_jet`, then the second derivative of sigma along u,
            3/4 sigma^5 (W dv_u)^2 - 1/2 sigma^3 W ddv with ddv_k = v_k (g_k^2 + h_k),
            g_k = -2 lambda_k (z - c_k).u and h_k = -2 lambda_k (|u|^2 + (z - c_k).a).
        """
        z, tangents, second = jet[:n], jet[n:-n].view(-1, n, jet.shape[-1]), jet[-n:]
        v = self.activations(z)  # (n, K)
        towards = (tangents * z).sum(dim=-1, keepdim=True) - tangents @ self.centres.T  # (p, n, K): (z - c_k).t
        rates = -2 * self.bandwidths * towards  # (p, n, K): d/dt of -lambda_k |z - c_k|^2 along each tangent
        along = tangents[-1]
        bend = (along * along + second * z).sum(dim=-1, keepdim=True) - second @ self.centres.T  # (n, K)
        ddv = v * (rates[-1] ** 2 - 2 * self.bandwidths * bend)
        beta = torch.cat([v, (v * rates).view(-1, v.shape[-1]), ddv]) @ self.log_weights.exp().T
        beta[:n] += self.zeta
        sigma = beta[:n].rsqrt()
        squared = sigma * sigma
        scale = -0.5 * squared * sigma  # dsigma / dbeta
        curvature = -1.5 * squared * scale  # d^2 sigma / dbeta^2 = 3/4 sigma^5
        rate = beta[-2 * n : -n]
        if beta.requires_grad:
            dsigma = beta[n:-n].view(-1, *sigma.shape) * scale
            ddsigma = curvature * rate * rate + scale * beta[-n:]
            return torch.cat([sigma, dsigma.view(-1, sigma.shape[-1]), ddsigma])
        beta[-n:].mul_(scale).addcmul_(curvature, rate * rate)  # in place: a fresh copy costs as much as the layer
        beta[n:-n].view(-1, *sigma.shape).mul_(scale)
        beta[:n] = sigma
        return beta

    @torch.no_grad()
    def fit_centres(self, latents: torch.Tensor, bandwidth_scale: float, seed: int) -> torch.Tensor:
        """Place the centres by k-means on ``latents`` (N, d) and set lambda_k from the clusters' spread.

        A cluster whose points all coincide with its centre gets the median
        spread of the others (its bandwidth would otherwise be infinite).

        Returns:
            (N,) the cluster index of every latent point.
        """
        from sklearn.cluster import KMeans

        if bandwidth_scale <= 0:
            raise ValueError(f"bandwidth_scale must be positive, got {bandwidth_scale}")
        if len(latents) < self.num_centers:
            raise ValueError(f"k-means needs at least num_centers={self.num_centers} points, got {len(latents)}")
        points = latents.detach().double().cpu().numpy()
        kmeans = KMeans(n_clusters=self.num_centers, n_init=4, random_state=seed).fit(points)
        centres = torch.as_tensor(kmeans.cluster_centers_, dtype=torch.float64)
        assignment = torch.as_tensor(kmeans.labels_, dtype=torch.long)
        distance = (latents.detach().double().cpu() - centres[assignment]).norm(dim=-1)
        spread = torch.zeros(self.num_centers, dtype=torch.float64).index_add_(0, assignment, distance)
        spread /= torch.bincount(assignment, minlength=self.num_centers).clamp_min(1)
        spread = torch.where(spread > 0, spread, spread[spread > 0].median() if (spread > 0).any() else 1.0)
        self.centres.copy_(centres)
        self.bandwidths.copy_(0.5 / (bandwidth_scale * spread) ** 2)
        return assignment

    @torch.no_grad()
    def init_weights(self, squared_residuals: torch.Tensor, assignment: torch.Tensor) -> None:
        """Start W near the fit: each cluster's per-dimension precision 1 / mean(residual^2).

        The precision at a centre is sum_k W_k v_k(c); dividing by the summed
        activations there keeps overlapping RBFs from multiplying the start value.

        Args:
            squared_residuals: (N, D) (x - mu(z))^2 of the training data.
            assignment: (N,) cluster index of each, from :meth:`fit_centres`.
        """
        K = self.num_centers
        squared = squared_residuals
        counts = torch.bincount(assignment, minlength=K).clamp_min(1).to(squared)
        variance = torch.zeros(K, squared.shape[1], dtype=squared.dtype, device=squared.device)
        variance.index_add_(0, assignment.to(squared.device), squared)
        variance = variance / counts[:, None]
        floor = variance[variance > 0].min() if (variance > 0).any() else torch.ones(())
        overlap = self.activations(self.centres).sum(dim=-1)  # (K,) summed activations at each centre
        weights = 1.0 / (variance.clamp_min(floor) * overlap[:, None])
        self.log_weights.copy_(weights.log().T)
