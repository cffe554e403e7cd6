"""Int8 quantization of a model (``nntune compress``): dynamic (linear and recurrent layers'
weights; activations quantized on the fly) or static (weights and activations of every
supported layer, convolutions included, with activation ranges calibrated on training data).

Built on ``torch.ao.quantization``: ``quantize_dynamic``, and FX graph mode
(``prepare_fx``/``convert_fx``) with the x86 backend's default qconfig for static. PyTorch
marks torch.ao's quantization as deprecated in favour of the separate ``torchao`` package, yet
it still ships and works in the pinned torch; its deprecation notices are silenced here, in
one place, so that a later move to torchao changes this module only.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

# the layer types dynamic quantization converts (weights int8, activations quantized on the fly)
DYNAMIC_LAYERS: tuple[type[nn.Module], ...] = (nn.Linear, nn.LSTM, nn.GRU, nn.RNN)
QUANTIZE_MODES = ("dynamic", "static")


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


def _static_mapping() -> Any:
    from torch.ao.quantization import get_default_qconfig_mapping

    return get_default_qconfig_mapping("x86")


def quantize_static(model: nn.Module, calibration: torch.Tensor, batch_size: int = 64) -> nn.Module:
    """A copy of ``model`` (eval mode, CPU) with int8 weights and activations; activation
    ranges are observed on the ``calibration`` inputs (preprocessed training samples)."""
    import copy

    import torch
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        float_model = copy.deepcopy(model).cpu().eval()
        prepared = prepare_fx(float_model, _static_mapping(), (calibration[:1].cpu(),))
        with torch.inference_mode():
            for i in range(0, len(calibration), batch_size):
                prepared(calibration[i : i + batch_size].cpu())
        return convert_fx(prepared)


def quantized_like(model: nn.Module, mode: str, sample: torch.Tensor) -> nn.Module:
    """The quantized structure of ``model`` (``dynamic`` or ``static``), ready for a quantized
    state dict to be loaded into it (``load_run`` of a compressed run folder)."""
    if mode == "dynamic":
        return quantize_dynamic(model)
    return quantize_static(model, sample)
