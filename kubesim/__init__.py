"""kubesim: a Kubernetes API emulator that unmodified kubectl and the official client accept.

``from kubesim import KubeSim``; see :class:`kubesim.sim.KubeSim`.
"""

from .hooks import FaultRule, Requests
from .sim import KubeSim, kubeconfig_document

__all__ = ["FaultRule", "KubeSim", "Requests", "kubeconfig_document"]
