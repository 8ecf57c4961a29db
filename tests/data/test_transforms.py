import pytest
import torch

from mtlzoo.data.transforms import Compose, RandomHorizontalFlip, RandomScaleCrop, Resize


def _sample(h=8, w=12):
    normals = torch.zeros(3, h, w)
    normals[0], normals[2] = 0.6, 0.8
    semseg = torch.arange(w).repeat(h, 1)
    semseg[0, 0] = 255
    return {"image": torch.randn(3, h, w), "semseg": semseg, "depth": torch.full((1, h, w), 4.0),
            "normals": normals, "parts": torch.full((h, w), 3)}


def test_scale_crop_divides_depth_and_keeps_labels():
    torch.manual_seed(0)
    out = RandomScaleCrop(scales=(2.0,))(_sample())
    assert all(v.shape[-2:] == (8, 12) for v in out.values())
    assert out["depth"].unique().tolist() == [2.0]
    assert set(out["semseg"].unique().tolist()) <= set(range(12)) | {255} and out["semseg"].dtype == torch.int64
    inverse = RandomScaleCrop(scales=(2.0,), inverse_depth=True)(_sample())
    assert inverse["depth"].unique().tolist() == [8.0]
    with pytest.raises(ValueError, match="scales"):
        RandomScaleCrop(scales=(0.5,))


def test_flip_negates_normal_x_and_swaps_parts():
    out = RandomHorizontalFlip(p=1.0, swaps={"parts": [(3, 4)]})(_sample())
    assert torch.allclose(out["normals"][0], torch.full((8, 12), -0.6))
    assert out["semseg"][1, 0] == 11 and out["semseg"][0, 11] == 255
    assert out["parts"].eq(4).all()
    assert RandomHorizontalFlip(p=0.0)(_sample())["semseg"][1, 0] == 0


def test_resize_nearest_for_targets_and_unknown_keys():
    out = Compose([Resize((4, 6))])(_sample())
    assert out["semseg"].shape == (4, 6) and out["semseg"][0, 0] == 255 and out["depth"].shape == (1, 4, 6)
    with pytest.raises(ValueError, match="kinds="):
        Resize((4, 6))({"image": torch.zeros(3, 2, 2), "mystery": torch.zeros(2, 2)})
    assert Resize((4, 6), kinds={"mystery": "depth"})({"image": torch.zeros(3, 2, 2),
                                                      "mystery": torch.zeros(1, 2, 2)})["mystery"].shape == (1, 4, 6)
