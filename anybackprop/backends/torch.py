"""PyTorch's adapter (through ``array-api-compat``), on the CPU or a CUDA device."""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np

from .base import Adapter, BackendLike, _BadDevice, _Unusable


class _Torch(Adapter):
    name = "torch"

    def load(self, device: str | None) -> tuple[Any, Any, Any]:
        try:
            import torch
        except ImportError as exc:
            raise _Unusable("torch is not installed (pip install torch)") from exc
        try:
            dev = torch.device(device or "cpu")
        except RuntimeError as exc:
            raise _BadDevice(f"torch does not know device {device!r}") from exc
        if dev.type == "cuda":
            if not torch.cuda.is_available():
                raise _Unusable("torch has no usable CUDA device here")
            dev = torch.device("cuda", dev.index if dev.index is not None else torch.cuda.current_device())
        elif dev.type != "cpu":
            raise _BadDevice(f"torch devices are 'cpu' or 'cuda:N', got {device!r}")
        return array_api_compat.array_namespace(torch.empty(0)), torch, dev

    def owns(self, x: Any) -> bool:
        return array_api_compat.is_torch_array(x)

    def to_numpy(self, x: Any) -> np.ndarray:
        return x.detach().cpu().numpy()

    def detached(self, x: Any) -> Any:
        return x.detach() if x.requires_grad else x

    def from_host(self, backend: BackendLike, host: np.ndarray) -> Any:
        # torch cannot wrap negative strides (a reversed view such as x[::-1]) nor read-only memory (it warns)
        if any(stride < 0 for stride in host.strides) or not host.flags.writeable:
            host = np.array(host, order="C")
        return super().from_host(backend, host)

    def sync(self, backend: BackendLike) -> None:
        if backend.device.type == "cuda":
            backend.library.cuda.synchronize(backend.device)
