"""Multi-scale Schrödinger-bridge conditional flow matching (pure torch: no Lightning, no Hydra).

* :mod:`.path`     – eq. 1-2: the bridge sample x_t and its regression target u_t;
* :mod:`.sampler`  – eq. 4: Euler–Maruyama from t = 1 to 0, scale by scale, coarse to fine;
* :mod:`.guidance` – eq. 5: training-free LPIPS energy guidance (FreeDoM-style).
"""

from sinsemi.flow.path import BridgePoint, bridge_point, target_factor
from sinsemi.flow.sampler import SamplerOutput, euler_maruyama, sample_pyramid, time_grid

__all__ = ["BridgePoint", "bridge_point", "target_factor", "SamplerOutput", "euler_maruyama",
           "sample_pyramid", "time_grid"]
