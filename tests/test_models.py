import pytest
import torch

from emoscope.models import count_flops, count_params, create_model, list_models


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("in_chans", [1, 3])
def test_forward_backward_shapes(name, in_chans):
    model = create_model(name, num_classes=5, in_chans=in_chans)
    x = torch.randn(2, in_chans, 48, 48, requires_grad=True)
    out = model(x)
    assert out.shape == (2, 5)
    out.sum().backward()
    assert x.grad is not None and all(p.grad is not None for p in model.parameters() if p.requires_grad)
    assert count_params(model) > 0 and count_flops(model, in_chans) > 0


def test_unknown_model_lists_known_ones():
    with pytest.raises(ValueError, match="resnet_fer_s"):
        create_model("nope")


def test_registry_has_the_seed_architectures():
    names = set(list_models())
    assert {"baseline_cnn", "cnn_small", "cnn_medium", "cnn_large", "vgg_fer", "resnet_fer_s", "resnet_fer_m",
            "resnet_fer_l", "resnet_fer", "vgg16", "vgg19", "resnet50", "mobilenet_v2"} <= names


def test_flops_count_matches_hand_count():
    m = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 2))
    assert count_flops(m, 1, 8) == 4 * 8 * 8 * 9 + 2 * 256
