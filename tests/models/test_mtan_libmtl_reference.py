"""mtan (structure="resnet", the default) against a transcription of LibMTL's ResNet-MTAN forward
(median-research-group/LibMTL, LibMTL/architecture/MTAN.py, MIT), written out here from its structure:

    stem (conv1, bn1, relu, maxpool) -> for each of the 4 ResNet layers i: u_i = layer_i[:-1](x), p_i = layer_i[-1](u_i)
    per task: mask = att_i(u_i) (i = 0) or att_i([u_i; a]) (a max pooled 2x2 if its size differs); a = mask * p_i;
              a = encoder_block_att_i(a) for i < 3 (one residual block per level, shared by the tasks);
              a = maxpool 2x2 (a) after level 0; the decoder reads a after level 3.

LibMTL builds ``encoder_att[i]`` as ``[att_layer] * task_num`` (one module for all tasks); the transcription gives
each task its own, as lorenmt's release does. The ResNet is a plain timm ResNet (not mtlzoo's encoder); every
weight and BN statistic is copied across by structure (the conv / BN modules in order) and the outputs must match.
"""

import pytest
import timm
import torch
from torch import nn

import mtlzoo

TASKS = [{"name": "semseg", "kind": "segmentation", "channels": 5}, {"name": "depth", "kind": "depth"}]


def _att_layer(cin, mid, cout):
    return nn.Sequential(nn.Conv2d(cin, mid, 1), nn.BatchNorm2d(mid), nn.ReLU(inplace=True), nn.Conv2d(mid, cout, 1),
                         nn.BatchNorm2d(cout), nn.Sigmoid())


class _Basic(nn.Module):
    """torchvision / LibMTL BasicBlock(inplanes, planes, downsample) at stride 1."""

    def __init__(self, inplanes, planes):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(inplanes, planes, 3, padding=1, bias=False), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False), nn.BatchNorm2d(planes)
        self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(out + self.downsample(x))


class _Bottleneck(nn.Module):
    """torchvision / LibMTL Bottleneck(inplanes, planes, downsample) at stride 1 (expansion 4)."""

    def __init__(self, inplanes, planes):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(inplanes, planes, 1, bias=False), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False), nn.BatchNorm2d(planes)
        self.conv3, self.bn3 = nn.Conv2d(planes, 4 * planes, 1, bias=False), nn.BatchNorm2d(4 * planes)
        self.downsample = nn.Sequential(nn.Conv2d(inplanes, 4 * planes, 1, bias=False), nn.BatchNorm2d(4 * planes))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn3(self.conv3(torch.relu(self.bn2(self.conv2(out)))))
        return torch.relu(out + self.downsample(x))


class LibMTLResNetMTAN(nn.Module):
    """LibMTL's ``_transform_resnet_MTAN`` under its own names, over a plain timm ResNet, per-task attention."""

    def __init__(self, resnet, num_tasks):
        super().__init__()
        self.expansion = 4 if resnet.num_features == 2048 else 1
        ch = [c * self.expansion for c in (64, 128, 256, 512)]
        self.shared_conv = nn.Sequential(resnet.conv1, resnet.bn1, resnet.act1, resnet.maxpool)
        layers = [resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4]
        self.shared_layer = nn.ModuleList([nn.ModuleList([layer[:-1], layer[-1]]) for layer in layers])
        self.encoder_att = nn.ModuleList([
            nn.ModuleList([_att_layer(ch[0] if i == 0 else 2 * ch[i], ch[i] // self.expansion, ch[i])
                           for _ in range(num_tasks)]) for i in range(4)])
        block = _Bottleneck if self.expansion == 4 else _Basic
        self.encoder_block_att = nn.ModuleList([block(ch[i], ch[i + 1] // self.expansion) for i in range(3)])
        self.down_sampling = nn.MaxPool2d(kernel_size=2, stride=2)
        self.num_tasks = num_tasks

    def forward(self, x):
        s_rep = self.shared_conv(x)
        att_rep = [None] * self.num_tasks
        for i in range(4):
            u = self.shared_layer[i][0](s_rep)
            p = self.shared_layer[i][1](u)
            s_rep = p
            for tn in range(self.num_tasks):
                if i == 0:
                    mask = self.encoder_att[i][tn](u)
                else:
                    if u.shape[-2:] != att_rep[tn].shape[-2:]:
                        att_rep[tn] = self.down_sampling(att_rep[tn])
                    mask = self.encoder_att[i][tn](torch.cat([u, att_rep[tn]], dim=1))
                att_rep[tn] = mask * p
                if i < 3:
                    att_rep[tn] = self.encoder_block_att[i](att_rep[tn])
                if i == 0:
                    att_rep[tn] = self.down_sampling(att_rep[tn])
        return att_rep


def _layers(module):
    return [m for m in module.modules() if isinstance(m, nn.Conv2d | nn.BatchNorm2d)]


def _copy_by_structure(source, target):
    """Copy every conv / BN (weights and running statistics) of ``source`` into ``target``, in module order."""
    pairs = list(zip(_layers(source), _layers(target), strict=True))
    assert pairs
    for a, b in pairs:
        assert type(a) is type(b) and a.weight.shape == b.weight.shape, (a, b)
        b.load_state_dict(a.state_dict())


def _randomise_norms(model):
    """Non-trivial BN statistics and affine parameters (timm zero-inits the last BN of every block)."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)


@pytest.mark.parametrize(("encoder", "output_stride"), [
    ("resnet18", 8), ("resnet18", 32), pytest.param("resnet50", 8, marks=pytest.mark.slow)])
def test_mtan_equals_libmtl_resnet_mtan(encoder, output_stride):
    torch.manual_seed(0)
    model = mtlzoo.create_model("mtan", tasks=TASKS, encoder=encoder, output_stride=output_stride, head="light",
                                head_width=16).eval()
    _randomise_norms(model)
    resnet = timm.create_model(encoder, num_classes=0, **({"output_stride": output_stride} if output_stride != 32
                                                          else {}))
    reference = LibMTLResNetMTAN(resnet, len(TASKS)).eval()
    resnet.load_state_dict(model.encoder.model.state_dict())
    for tn, task in enumerate(model.task_names):
        for i in range(4):
            _copy_by_structure(model.attention[task].masks[i], reference.encoder_att[i][tn])
    for i in range(3):
        _copy_by_structure(model.carry[i], reference.encoder_block_att[i])
    # every parameter of the model outside its heads has a counterpart in the reference, and back
    outside_heads = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("heads."))
    assert outside_heads == sum(p.numel() for p in reference.parameters())

    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = reference(x)
        rep = model.encode(x)
        outputs = model.decode(rep)
        for tn, task in enumerate(model.tasks):
            (attended,) = model.head_features(rep, task)
            torch.testing.assert_close(attended, expected[tn])
            torch.testing.assert_close(outputs[task.name], model.heads[task.name]([expected[tn]], rep.size))
    assert expected[0].shape[1] == resnet.num_features
    assert not torch.allclose(expected[0], expected[1])  # the tasks' attention differs
