"""Reduced precision where it pays: bfloat16 autocast on GPUs and on CPUs with bfloat16 matrix units, fp32 else."""

from __future__ import annotations

import types

import pytest
import torch

from xdepthrecon import _precision
from xdepthrecon._precision import bf16_pays, network_precision, resolve_fast



@pytest.fixture
def cpu_features(monkeypatch):
    """Pretend the CPU has the given features (names of torch.cpu.get_capabilities)."""

    def pretend(*names: str) -> None:
        monkeypatch.delenv(_precision.PRECISION_VARIABLE)  # conftest.py's fp32 for every other test
        _precision._cpu_has_bf16_units.cache_clear()
        found = {name: True for name in names} | {"avx2": True}
        monkeypatch.setattr(torch, "cpu", types.SimpleNamespace(get_capabilities=lambda: found))

    yield pretend
    monkeypatch.undo()
    _precision._cpu_has_bf16_units.cache_clear()


@pytest.mark.parametrize(("features", "pays"), [((), False), (("avx512_f",), False), (("amx_bf16",), True),
                                                (("avx512_bf16",), True)])
def test_bfloat16_is_chosen_only_on_cpus_with_bfloat16_units(cpu_features, features, pays):
    cpu_features(*features)
    cpu = torch.device("cpu")
    assert bf16_pays(cpu) is pays and resolve_fast(None, cpu) is pays
    assert resolve_fast(True, cpu) and not resolve_fast(False, cpu)  # what a user asks is kept
    with network_precision(cpu, None):
        assert torch.is_autocast_enabled("cpu") is pays
    with network_precision(cpu, False):
        assert not torch.is_autocast_enabled("cpu")


def test_the_environment_can_make_the_default_fp32_on_any_device(cpu_features, monkeypatch):
    cpu_features("amx_bf16")
    assert bf16_pays(torch.device("cpu"))
    monkeypatch.setenv(_precision.PRECISION_VARIABLE, "FP32")
    assert not bf16_pays(torch.device("cpu")) and not resolve_fast(None, torch.device("cuda"))
    assert resolve_fast(True, torch.device("cpu"))  # what a user asks is kept
    monkeypatch.setenv(_precision.PRECISION_VARIABLE, "half")
    with pytest.raises(ValueError, match="XDEPTHRECON_PRECISION='half': use 'fp32'"):
        bf16_pays(torch.device("cpu"))


def test_other_devices_keep_fp32_unless_asked():
    assert not bf16_pays(torch.device("meta"))
    assert resolve_fast(True, torch.device("meta"))

