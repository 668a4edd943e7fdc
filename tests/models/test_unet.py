"""The denoiser backbone: its layout on a CPU."""

from __future__ import annotations

import importlib

import torch

from xdepthrecon.models.unet import ConditionalUNet


def _outputs_and_gradients(net: ConditionalUNet) -> tuple[torch.Tensor, list[torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    x, condition = torch.randn(3, 4, 20, 18, generator=generator), torch.randn(3, 6, 20, 18, generator=generator)
    net.zero_grad()
    out = net(x, torch.tensor([3, 500, 999]), condition, latitude=torch.zeros(3), longitude=torch.zeros(3),
              day_of_year=torch.full((3,), 40.0))
    out.square().mean().backward()
    return out, [p.grad.clone() for p in net.parameters()]


def test_the_channels_last_layout_on_a_cpu_gives_the_default_layouts_outputs_and_gradients(monkeypatch):
    precision = importlib.import_module("xdepthrecon._precision")
    torch.manual_seed(0)
    net = ConditionalUNet(channels=4, condition_channels=6, dim=8, mults=(1, 2))
    torch.nn.init.normal_(net.head[-1].weight)  # the trained head is not zero
    assert precision.CPU_MEMORY_FORMAT == torch.channels_last
    fast, fast_gradients = _outputs_and_gradients(net)
    assert fast.is_contiguous()  # handed back in the default layout
    monkeypatch.setattr(precision, "CPU_MEMORY_FORMAT", torch.contiguous_format)
    plain, plain_gradients = _outputs_and_gradients(net)
    assert plain.abs().max() > 0.1
    torch.testing.assert_close(fast, plain, rtol=1e-4, atol=1e-5)
    for a, b in zip(fast_gradients, plain_gradients, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-6)
