"""Data-parallel training under torchrun: 2 gloo processes on the CPU train, checkpoint once and resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from xdepthrecon.training.batches import PatchDataset

from tests.conftest import glorys_like

REPOSITORY = Path(__file__).resolve().parents[2]

SCRIPT = '''
import json, os, sys
import torch
sys.path.insert(0, {repository!r})
import xdepthrecon
from xdepthrecon import checkpoint
from tests.conftest import glorys_like

out, epochs = sys.argv[1], int(sys.argv[2])
torch.set_num_threads(1)
rank = int(os.environ["RANK"])
saves = []
original = checkpoint.save
checkpoint.save = lambda model, path, **kw: (saves.append(str(path)), original(model, path, **kw))[1]
cube = glorys_like(times=4, depths=6, lats=32, lons=48, seed=3)
sst = cube.thetao.isel(depth=0).rename("sst").to_dataset()
sst.sst.attrs = {{"units": "degC"}}
ae = xdepthrecon.train_autoencoder(
    cube, config=xdepthrecon.AutoencoderConfig(latent_channels=3, encoder_channels=(8, 8), decoder_channels=(8, 8)),
    training=xdepthrecon.TrainingConfig(patch_size=16, ema=None), epochs=epochs, progress=False,
    checkpoint=os.path.join(out, "ae.safetensors"))
model = xdepthrecon.train_diffusion(
    cube, sst, ae, config=xdepthrecon.DiffusionConfig(dim=8, mults=(1, 2), diffusion_steps=50),
    training=xdepthrecon.TrainingConfig(patch_size=16, batch_size=4, augment=False), epochs=epochs,
    progress=False, checkpoint=os.path.join(out, "diffusion.safetensors"))
report = {{"world": torch.distributed.get_world_size(), "saves": saves,
          "ae": checkpoint.digest(ae.state_dict()), "diffusion": checkpoint.digest(model.state_dict()),
          "ae_history": ae.history, "diffusion_history": model.history}}
with open(os.path.join(out, f"rank{{rank}}.json"), "w") as f:
    json.dump(report, f)
'''


def _torchrun(script: Path, out: Path, epochs: int) -> list[dict]:
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                    str(script), str(out), str(epochs)], check=True, capture_output=True, text=True,
                   env=environment, timeout=600)
    return [json.loads((out / f"rank{rank}.json").read_text()) for rank in (0, 1)]


def test_two_gloo_processes_train_checkpoint_once_and_resume(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT.format(repository=str(REPOSITORY)))
    first = _torchrun(script, tmp_path, epochs=2)
    assert all(report["world"] == 2 for report in first)
    for kind in ("ae", "diffusion"):
        assert first[0][kind] == first[1][kind]  # the replicas hold the same weights
    # 2 epochs x 2 models, the gated autoencoder and the calibrated diffusion model at the end, by rank 0 only
    assert len(first[0]["saves"]) == 6 and first[1]["saves"] == []
    assert [h["epoch"] for h in first[0]["ae_history"]] == [0, 1]

    import xdepthrecon
    from xdepthrecon import checkpoint

    saved = xdepthrecon.load(tmp_path / "diffusion.safetensors")
    assert checkpoint.digest(saved.state_dict()) == first[0]["diffusion"]  # the file holds the averaged weights
    assert checkpoint.digest(xdepthrecon.load(tmp_path / "ae.safetensors").state_dict()) == first[0]["ae"]

    resumed = _torchrun(script, tmp_path, epochs=3)
    assert resumed[0]["ae"] == resumed[1]["ae"] and resumed[0]["diffusion"] == resumed[1]["diffusion"]
    assert [h["epoch"] for h in resumed[0]["diffusion_history"]] == [0, 1, 2]
    assert resumed[0]["ae_history"][:2] == first[0]["ae_history"]  # continued, not restarted
    assert len(resumed[0]["saves"]) == 4 and resumed[1]["saves"] == []  # one more epoch each, and the two ends


def test_shards_split_every_epoch_into_disjoint_shares():
    cube = glorys_like(times=5, depths=4, lats=32, lons=32, seed=0)
    whole = PatchDataset({"y": cube.thetao}, patch_size=8, seed=1)
    shares = [PatchDataset({"y": cube.thetao}, patch_size=8, seed=1, shard=(rank, 3)) for rank in range(3)]
    for dataset in (whole, *shares):
        dataset.set_epoch(2)
    corners = [{(float(item["latitude"]), float(item["longitude"]), float(item["day_of_year"])) for item in share}
               for share in shares]
    assert all(corners) and not (corners[0] & corners[1] or corners[0] & corners[2] or corners[1] & corners[2])
    assert sum(len(share) for share in shares) >= len(whole)
