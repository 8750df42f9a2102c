"""The encoder: trainable stages, frozen trunk, weight loading, offline hub."""

from __future__ import annotations

import time

import pytest
import timm
import torch
import torchvision

from semisup.errors import SemisupError
from semisup.models import Encoder
from semisup.models.encoder import load_backbone_weights


def trainable_names(encoder):
    return {n.split(".")[1] for n, p in encoder.named_parameters() if p.requires_grad}


def test_trainable_stages_count_from_the_end():
    assert trainable_names(Encoder("test_resnet", trainable_stages=1)) == {"layer4"}
    assert trainable_names(Encoder("test_resnet", trainable_stages=2)) == {"layer3", "layer4"}
    assert trainable_names(Encoder("test_resnet", trainable_stages=0)) == set()
    assert trainable_names(Encoder("test_resnet", trainable_stages=4)) == {"layer1", "layer2", "layer3", "layer4"}
    assert trainable_names(Encoder("test_resnet", trainable_stages=5)) >= {"conv1", "bn1", "layer1"}  # the stem too
    everything = {n.split(".")[1] for n, _ in Encoder("test_resnet", trainable_stages="all").named_parameters()}
    assert trainable_names(Encoder("test_resnet", trainable_stages="all")) == everything
    assert {"conv1", "bn1", "layer1"} <= everything
    with pytest.raises(ValueError, match="trainable_stages must be 0..5"):
        Encoder("test_resnet", trainable_stages=6)


def test_frozen_batchnorm_stays_in_eval_mode_and_keeps_its_statistics():
    encoder = Encoder("test_resnet", trainable_stages=1).train()
    frozen_bn, live_bn = encoder.model.layer1[0].bn1, encoder.model.layer4[0].bn1
    assert not frozen_bn.training and live_bn.training
    before = frozen_bn.running_mean.clone()
    encoder(torch.randn(4, 3, 32, 32))
    assert torch.equal(frozen_bn.running_mean, before)
    assert not torch.equal(live_bn.running_mean, torch.zeros_like(live_bn.running_mean))


def test_frozen_trunk_builds_no_autograd_graph():
    encoder = Encoder("test_resnet", trainable_stages=1).train()
    seen = {}
    encoder.model.layer3.register_forward_hook(lambda m, i, o: seen.update(layer3=o))
    encoder.model.layer4.register_forward_hook(lambda m, i, o: seen.update(layer4=o))
    out = encoder(torch.randn(2, 3, 32, 32))
    assert seen["layer3"].grad_fn is None and not seen["layer3"].requires_grad
    assert seen["layer4"].grad_fn is not None and out.requires_grad


def test_channels_last_output_matches_contiguous():
    torch.manual_seed(0)
    plain = Encoder("test_resnet", trainable_stages="all").eval()
    fast = Encoder("test_resnet", trainable_stages="all", channels_last=True).eval()
    fast.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(plain(x), fast(x), atol=1e-5)


def test_local_timm_state_dict_loads(tmp_path):
    source = timm.create_model("resnet18", num_classes=1000)
    torch.save(source.state_dict(), tmp_path / "w.pth")
    encoder = Encoder("resnet18", pretrained=tmp_path / "w.pth")
    assert torch.equal(encoder.model.layer2[0].conv1.weight, source.layer2[0].conv1.weight)
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, tmp_path / "wrapped.pt")
    encoder = Encoder("resnet18", pretrained=tmp_path / "wrapped.pt")
    assert torch.equal(encoder.model.conv1.weight, source.conv1.weight)


def test_local_torchvision_state_dict_loads(tmp_path):
    source = torchvision.models.resnet18()
    torch.save(source.state_dict(), tmp_path / "tv.pth")
    encoder = Encoder("resnet18", pretrained=tmp_path / "tv.pth")
    assert torch.equal(encoder.model.layer4[1].bn2.running_var, source.layer4[1].bn2.running_var)
    from safetensors.torch import save_file

    save_file(source.state_dict(), str(tmp_path / "tv.safetensors"))
    encoder = Encoder("resnet18", pretrained=tmp_path / "tv.safetensors")
    assert torch.equal(encoder.model.conv1.weight, source.conv1.weight)


def test_weights_of_another_architecture_are_refused(tmp_path):
    torch.save(timm.create_model("resnet18").state_dict(), tmp_path / "r18.pth")
    with pytest.raises(SemisupError, match=r"r18.pth: weights do not fit resnet50: .* missing"):
        Encoder("resnet50", pretrained=tmp_path / "r18.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(SemisupError, match="junk.pth: not a readable weights file"):
        Encoder("resnet18", pretrained=tmp_path / "junk.pth")


def test_pickled_code_in_a_weights_file_is_not_run(tmp_path):
    class Evil:
        def __reduce__(self):
            return (exec, ("raise SystemExit('pickled code ran')",))

    torch.save({"conv1.weight": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(SemisupError, match="not a readable weights file"):
        load_backbone_weights(timm.create_model("resnet18", num_classes=0), tmp_path / "evil.pth")


def test_hub_weights_offline_fail_fast_with_a_clear_message(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.monotonic()
    with pytest.raises(SemisupError, match="not cached and .* unreachable .*HF_HUB_OFFLINE.*local weights file"):
        Encoder("resnet18", pretrained=True)
    assert time.monotonic() - started < 10  # not the hub's 45 s of retries


def test_hub_weights_without_network_fail_fast(monkeypatch):
    from huggingface_hub import constants

    from semisup.models import encoder as module

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(module, "_reachable", lambda host, port=443: False)
    with pytest.raises(SemisupError, match="huggingface.co is unreachable"):
        Encoder("resnet18", pretrained=True)


@pytest.mark.parametrize("name, size", [("resnet18", 64), ("efficientnet_b0", 64), ("mobilenetv3_large_100", 64),
                                        ("convnext_atto", 64), ("vit_tiny_patch16_224", 224)])
def test_last_stage_training_works_for_every_common_family(name, size):
    """One optimiser step with only the last stage trainable: it moves, the frozen trunk does not."""
    encoder = Encoder(name, pretrained=False, trainable_stages=1)
    encoder.check_image_size(size)
    frozen = {n: p.detach().clone() for n, p in encoder.model.named_parameters() if not p.requires_grad}
    trainable = {n: p.detach().clone() for n, p in encoder.model.named_parameters() if p.requires_grad}
    assert frozen and trainable and len(trainable) < len(frozen) + len(trainable)
    optimizer = torch.optim.Adam(encoder.trainable_parameters(), lr=1e-2)
    encoder.train()
    features = encoder(torch.randn(2, 3, size, size))
    assert features.shape == (2, encoder.num_features)
    (features * torch.randn_like(features)).sum().backward()
    optimizer.step()
    now = dict(encoder.model.named_parameters())
    assert all(torch.equal(now[n], p) for n, p in frozen.items())
    assert any(not torch.equal(now[n], p) for n, p in trainable.items())


def test_a_vit_names_the_frame_size_it_needs():
    with pytest.raises(SemisupError, match="data.image_size = 64, but the encoder 'vit_tiny_patch16_224' takes "
                                           "224 x 224 frames; set data.image_size = 224"):
        Encoder("vit_tiny_patch16_224").check_image_size(64)


@pytest.mark.slow
def test_the_single_image_shot_scale_recipe_trains_and_predicts_an_image(tmp_path):
    """recipes/shot-scale-image.toml: MobileNetV3 on one still per sample, then predict on an image."""
    import csv
    import json
    from pathlib import Path

    from PIL import Image

    from conftest import run_cli
    from media import photo
    from semisup.train.run import start_run

    root = tmp_path / "stills"
    scales = ["LS", "FS", "MS", "CS", "ECS"]
    rows = []
    for i in range(20):
        folder = root / "frames" / f"still{i:02d}"
        folder.mkdir(parents=True)
        Image.fromarray(photo(["astronaut", "coffee", "chelsea", "rocket"][i % 4])).save(folder / "0.jpg")
        rows.append([f"still{i:02d}", ["train", "train", "val", "test"][i % 4], scales[i % 5]])
    with (root / "labels.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([["id", "split", "scale"], *rows])
    recipe = Path(__file__).parents[1] / "recipes" / "shot-scale-image.toml"
    run = start_run(recipe, [f"data.root={root}", "model.pretrained=false", "data.image_size=64", "train.epochs=1",
                             "data.num_workers=0", "train.labeled_batch_size=4"], tmp_path / "run").run_dir
    result = run_cli("predict", str(run), str(root / "frames" / "still03" / "0.jpg"), "--json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)[0]["tasks"]["scale"]
    assert len(answer["labels"]) == 1 and set(answer["scores"]) == set(scales)
