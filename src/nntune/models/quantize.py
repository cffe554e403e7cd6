"""Dynamic int8 quantization of a model's linear and recurrent layers (``nntune compress``).

Built on ``torch.ao.quantization.quantize_dynamic``. PyTorch marks torch.ao's eager-mode
quantization as deprecated in favour of the separate ``torchao`` package, yet it still ships and
works in the pinned torch; its deprecation notices are silenced here, in one place, so that a
later move to torchao changes this module only.
"""

from __future__ import annotations

import warnings

from torch import nn

# the layer types dynamic quantization converts (weights int8, activations quantized on the fly)
DYNAMIC_LAYERS: tuple[type[nn.Module], ...] = (nn.Linear, nn.LSTM, nn.GRU, nn.RNN)
QUANTIZE_MODES = ("dynamic",)


def quantizable_layers(model: nn.Module) -> int:
    return sum(isinstance(m, DYNAMIC_LAYERS) for m in model.modules())


def quantize_dynamic(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (in eval mode, on the CPU) with its linear and recurrent layers
    quantized to int8; the other layers (convolutions, norms) stay float32."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(
            model.cpu().eval(), set(DYNAMIC_LAYERS), dtype=torch.qint8, inplace=False
        )
