"""vaemanifold: Riemannian geometry in the latent spaces of VAEs.

    import vaemanifold as vm
    M = vm.DecoderManifold(mean, std)                  # the expected pull-back metric
    res = vm.connecting_geodesic(M, z0, z1)            # the default solver, "gauss_newton"
    res.length, res.converged
    model = vm.load("runs/models/mnist-2d")            # a trained VAE; model.manifold()
"""

from .amortized import GeodesicNetwork
from .curves import NeuralCurve, SplineCurve
from .distances import distance_matrix
from .geodesic import GeodesicResult, connecting_geodesic, distance
from .manifold import DecoderManifold
from .solvers import DEFAULT_METHOD, SOLVERS, GeodesicSolver, register
from .vae import calibrate_std, load

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_METHOD",
    "SOLVERS",
    "DecoderManifold",
    "GeodesicNetwork",
    "GeodesicResult",
    "GeodesicSolver",
    "NeuralCurve",
    "SplineCurve",
    "calibrate_std",
    "connecting_geodesic",
    "distance",
    "distance_matrix",
    "load",
    "register",
]
