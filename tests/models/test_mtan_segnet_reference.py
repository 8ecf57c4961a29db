"""mtan_segnet against a transcription of the released SegNet MTAN (lorenmt/mtan, im2im_pred/model_segnet_mtan.py,
MIT): the layer list and forward pass written out here as the release has them, weights copied over by name."""

import torch
import torch.nn.functional as F
from torch import nn

import mtlzoo

F_ = [64, 128, 256, 512, 512]


def _conv(a, b):
    return nn.Sequential(nn.Conv2d(a, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU(inplace=True))


def _att(a, b, c):
    return nn.Sequential(nn.Conv2d(a, b, 1), nn.BatchNorm2d(b), nn.ReLU(inplace=True), nn.Conv2d(b, c, 1),
                         nn.BatchNorm2d(c), nn.Sigmoid())


class ReleasedSegNetMTAN(nn.Module):
    """The release's modules under its own names, for T tasks with ``outputs`` channels."""

    def __init__(self, outputs):
        super().__init__()
        f, tasks = F_, len(outputs)
        self.encoder_block = nn.ModuleList([_conv(3, f[0])] + [_conv(f[i], f[i + 1]) for i in range(4)])
        self.decoder_block = nn.ModuleList([_conv(f[0], f[0])] + [_conv(f[i + 1], f[i]) for i in range(4)])
        self.conv_block_enc = nn.ModuleList([_conv(f[0], f[0]), _conv(f[1], f[1])] +
                                            [nn.Sequential(_conv(f[i + 1], f[i + 1]), _conv(f[i + 1], f[i + 1]))
                                             for i in range(1, 4)])
        self.conv_block_dec = nn.ModuleList([_conv(f[0], f[0]), _conv(f[0], f[0])] +
                                            [nn.Sequential(_conv(f[i], f[i]), _conv(f[i], f[i])) for i in range(1, 4)])
        self.encoder_att = nn.ModuleList([nn.ModuleList([_att(f[0], f[0], f[0])] +
                                                        [_att(2 * f[i + 1], f[i + 1], f[i + 1]) for i in range(4)])
                                          for _ in range(tasks)])
        self.decoder_att = nn.ModuleList([nn.ModuleList([_att(2 * f[0], f[0], f[0])] +
                                                        [_att(f[i + 1] + f[i], f[i], f[i]) for i in range(4)])
                                          for _ in range(tasks)])
        self.encoder_block_att = nn.ModuleList([_conv(f[0], f[1]), _conv(f[1], f[2]), _conv(f[2], f[3]),
                                                _conv(f[3], f[4]), _conv(f[4], f[4])])
        self.decoder_block_att = nn.ModuleList([_conv(f[0], f[0]), _conv(f[1], f[0]), _conv(f[2], f[1]),
                                                _conv(f[3], f[2]), _conv(f[4], f[4])])
        self.pred = nn.ModuleList([nn.Sequential(nn.Conv2d(f[0], f[0], 3, padding=1), nn.Conv2d(f[0], n, 1))
                                   for n in outputs])

    def forward(self, x):
        g_enc, g_dec, g_pool, g_up, idx = ([None] * 5 for _ in range(5))
        for i in range(5):
            first = self.encoder_block[i](x if i == 0 else g_pool[i - 1])
            g_enc[i] = (first, self.conv_block_enc[i](first))
            g_pool[i], idx[i] = F.max_pool2d(g_enc[i][1], 2, 2, return_indices=True)
        for i in range(5):
            g_up[i] = F.max_unpool2d(g_pool[-1] if i == 0 else g_dec[i - 1], idx[-i - 1], 2, 2)
            g_dec[i] = self.conv_block_dec[-i - 1](self.decoder_block[-i - 1](g_up[i]))
        outs = []
        for t in range(len(self.pred)):
            a = None
            for j in range(5):
                mask = self.encoder_att[t][j](g_enc[j][0] if j == 0 else torch.cat((g_enc[j][0], a), dim=1))
                a = F.max_pool2d(self.encoder_block_att[j](mask * g_enc[j][1]), 2, 2)
            for j in range(5):
                up = self.decoder_block_att[-j - 1](F.interpolate(a, scale_factor=2, mode="bilinear",
                                                                  align_corners=True))
                a = self.decoder_att[t][-j - 1](torch.cat((g_up[j], up), dim=1)) * g_dec[j]
            outs.append(self.pred[t](a))
        return outs


def _mtlzoo_name(name, tasks):
    """The mtlzoo parameter name of a released one."""
    head, _, rest = name.partition(".")
    index, _, rest = rest.partition(".")
    renames = {"encoder_block": "encoder.enc_first", "decoder_block": "encoder.dec_first",
               "conv_block_enc": "encoder.enc_rest", "conv_block_dec": "encoder.dec_rest",
               "encoder_block_att": "encoder_blocks", "decoder_block_att": "decoder_blocks"}
    if head in renames:
        return f"{renames[head]}.{index}.{rest}"
    if head in ("encoder_att", "decoder_att"):
        j, _, rest = rest.partition(".")
        kind = "encoder_masks" if head == "encoder_att" else "decoder_masks"
        return f"attention.{tasks[int(index)]}.{kind}.{j}.{rest}"
    layer, _, rest = rest.partition(".")
    return f"heads.{tasks[int(index)]}.{'conv' if layer == '0' else 'classifier'}.{rest}"


def test_outputs_equal_the_released_structure():
    torch.manual_seed(0)
    model = mtlzoo.create_model("mtan_segnet", tasks="nyuv2_mtan")
    tasks = model.task_names
    reference = ReleasedSegNetMTAN([t.channels for t in model.tasks])
    state = {_mtlzoo_name(k, tasks): v for k, v in reference.state_dict().items()}
    assert sorted(state) == sorted(model.state_dict())
    model.load_state_dict(state)
    x = torch.randn(2, 3, 32, 64)
    for norm in [m for net in (model, reference) for m in net.modules() if isinstance(m, nn.BatchNorm2d)]:
        norm.momentum = 1.0  # the training-mode pass sets the running statistics to this batch's, so that the
        # eval-mode pass is not saturated by untrained statistics (and so can tell a wrong weight)
    for mode in (True, False):  # training-mode batch norm, then running statistics
        model.train(mode)
        reference.train(mode)
        with torch.no_grad():
            expected, got = reference(x), model(x)
        for t, name in enumerate(tasks):
            assert torch.allclose(got[name], expected[t], atol=1e-5, rtol=1e-4), (mode, name)
