"""torch.hub entry points for mtlzoo: one per registered architecture, one per pretrained tag, and from_pretrained.

    model = torch.hub.load("<repo>", "squadnet_tiny", pretrained=True)            # its default tag
    model = torch.hub.load("<repo>", "squadnet_tiny__synthscenes")                 # a named tag
    model = torch.hub.load("<repo>", "hps_resnet50", tasks="nyud")                 # random init
    model = torch.hub.load("<repo>", "from_pretrained", "hf-hub:org/name")         # any checkpoint

This file imports only the standard library; mtlzoo (and torch) are imported inside the entry
points, after torch.hub has checked ``dependencies``. The names below mirror
``mtlzoo.list_models()`` and ``mtlzoo.list_models(pretrained=True)`` (a test keeps them in step).
Tag entries use ``__`` where the model name has ``.``.
"""

dependencies = [  # the required ones only (segmentation_models_pytorch is the optional 'smp' extra)
    "torch", "torchvision", "timm", "huggingface_hub", "safetensors", "yaml", "tqdm", "numpy", "scipy", "PIL",
]

_ARCHITECTURES = {
    "cgc_mlp": "CGC on vectors (B, D): 1 shared + 1 task-specific MLP expert per task, a softmax gate per task.",
    "cgc_resnet18": "CGC: ResNet-18 experts (1 shared + 1 per task), per-task gates, ASPP heads.",
    "cgc_tiny": "CGC: tiny-encoder experts (1 shared + 1 per task), per-task gates, light heads.",
    "dselectk_mlp": "DSelect-k on vectors (B, D): 4 shared MLP experts, a k=2 DSelect gate per task.",
    "dselectk_resnet18": "DSelect-k: 4 ResNet-18 experts, a k=2 DSelect gate per task, ASPP heads.",
    "dselectk_tiny": "DSelect-k: 4 tiny-encoder experts, a k=2 DSelect gate per task, light heads.",
    "mmoe_mlp": "MMoE on vectors (B, D): 4 shared MLP experts, a softmax gate per task, MLP towers.",
    "mmoe_resnet18": "MMoE: 3 ResNet-18 experts (output stride 8), a softmax gate per task, ASPP heads.",
    "mmoe_tiny": "MMoE: 3 tiny-encoder experts, a softmax gate per task, light heads.",
    "ple_mlp": "PLE on vectors (B, D): 2 extraction levels of 1 shared + 1 task-specific MLP expert per task.",
    "ple_resnet18": "PLE: 2 extraction levels of ResNet-18 stages (1 shared + 1 per task expert), ASPP heads.",
    "ple_tiny": "PLE: 2 extraction levels of tiny-encoder stages (1 shared + 1 per task expert), light heads.",
    "cs_resnet18": "ResNet-18 (dilated, output stride 8) with task-specific BN after every conv + ASPP heads.",
    "cs_tiny": "Connection-strength model: one block per stage, widths 16-128, light heads, output stride 32.",
    "cross_stitch": "Cross-stitch network on any timm CNN encoder: one column per task, a cross-stitch unit per stage.",
    "cross_stitch_resnet18": "Cross-stitch network: one ResNet-18 column per task (output stride 8) + ASPP heads.",
    "cross_stitch_tiny": "Cross-stitch network on tiny 4-stage conv columns + light heads, for tests and CPU demos.",
    "invpt": "InvPT on any plain timm ViT: joint inverted-pyramid transformer decoder, deep supervision.",
    "invpt_tiny": "InvPT on a tiny ViT (4 blocks, width 64, 16-pixel patches), decoder 64-32-16, for tests and CPU.",
    "invpt_vit_base": "Compact InvPT (reduced from the paper) on ViT-B/16: joint inverted-pyramid transformer decoder "
                       "768-384-192 (strides 16-8-4).",
    "invpt_vit_small": "Compact InvPT (reduced from the paper) on ViT-S/16: joint inverted-pyramid transformer "
                        "decoder 384-192-96 (strides 16-8-4).",
    "mtinet": "MTI-Net on HRNet (hrnet_w18, ...) or any 4-stage encoder: multi-scale distillation, deep supervision.",
    "mtinet_hrnet18": "MTI-Net on the paper's HRNet-18 backbone (timm hrnet_w18 raw branches 18-36-72-144) with a "
                       "simplified decoder (18.5 M on nyud).",
    "mtinet_resnet18": "MTI-Net on ResNet-18 (four stages, 1/4..1/32) with HRNet-18's task widths 18-36-72-144.",
    "mtinet_tiny": "MTI-Net on the tiny 4-stage conv encoder, task widths 8-64, light heads, for tests and CPU.",
    "padnet": "PAD-Net on any encoder: deeply supervised initial predictions, attention-gated distillation.",
    "padnet_resnet18": "PAD-Net on ResNet-18 (dilated, output stride 8), 256-channel task features, light heads.",
    "padnet_tiny": "PAD-Net on the tiny conv encoder (output stride 8), 32-channel task features, for tests and CPU.",
    "mtan": "MTAN as released on ResNets: per-task attention after each of the 4 layers, shared carry blocks; "
             "structure='stages' for any encoder.",
    "mtan_resnet18": "MTAN on ResNet-18 (output stride 8), the released ResNet structure, with DeepLab ASPP heads.",
    "mtan_segnet": "MTAN on SegNet as released for the NYUv2 3-task benchmark (CAGrad / Nash-MTL / FAMO; 44.2 M).",
    "mtan_tiny": "MTAN (released ResNet structure) on the tiny 4-stage conv encoder + light heads, for tests and CPU "
                  "demos.",
    "nddr": "NDDR-CNN on any timm CNN encoder: one column per task, an NDDR layer (1x1 conv + BN + ReLU) per stage.",
    "nddr_resnet18": "NDDR-CNN: one ResNet-18 column per task (output stride 8) + DeepLab ASPP heads.",
    "nddr_tiny": "NDDR-CNN on tiny 4-stage conv columns + light heads, for tests and CPU demos.",
    "stl": "Single-task baselines on any encoder: one timm / smp encoder and head per task.",
    "stl_mlp": "Single-task baselines on vectors (B, D): per task, its own MLP experts, softmax gate and MLP tower.",
    "stl_resnet18": "Single-task baselines: one ResNet-18 (output stride 8) + DeepLab ASPP head per task.",
    "stl_tiny": "Single-task baselines: one tiny 4-stage conv encoder + light head per task, for tests and CPU demos.",
    "hps": "Hard parameter sharing on any encoder: encoder='convnext_small', 'smp:mit_b0', ...",
    "hps_convnext_tiny": "Hard parameter sharing: ConvNeXt-T (output stride 32) + ASPP heads.",
    "hps_efficientnet_b0": "Hard parameter sharing: EfficientNet-B0 (output stride 16) + ASPP heads.",
    "hps_mobilenetv3_large_100": "Hard parameter sharing: MobileNetV3-Large (output stride 16) + ASPP heads.",
    "hps_resnet18": "Hard parameter sharing: ResNet-18 (dilated, output stride 8) + DeepLab ASPP heads.",
    "hps_resnet50": "Hard parameter sharing: ResNet-50 (dilated, output stride 8) + DeepLab ASPP heads.",
    "hps_tiny": "Hard parameter sharing: tiny 4-stage conv encoder + light heads, for tests and CPU demos.",
    "squadnet_base": "SquadNet as released: 8 expert-squad blocks per stage, 2 shared chunks, DeepLab-v3 heads.",
    "squadnet_small": "SquadNet as released: 4 expert-squad blocks per stage, 2 shared chunks, DeepLab-v3 heads.",
    "squadnet_tiny": "SquadNet as released: 2 expert-squad blocks per stage, 1 shared chunk (tiny ablation), "
                     "DeepLab-v3 heads.",
}

_PRETRAINED = {
    "cgc_mlp.mmoe_synthetic": "cgc_mlp (4 shared + 2 per-task experts of 16 units) trained on the MMoE paper's "
                              "synthetic regression benchmark (vectors of 100; bundled, 32 KB).",
    "dselectk_mlp.mmoe_synthetic": "dselectk_mlp (8 experts of 16 units, k=2) trained on the MMoE paper's synthetic "
                                   "regression benchmark (vectors of 100; bundled, 33 KB).",
    "mmoe_mlp.mmoe_synthetic": "mmoe_mlp (8 experts of 16 units) trained on the MMoE paper's synthetic regression "
                               "benchmark (vectors of 100; bundled, 32 KB).",
    "ple_mlp.mmoe_synthetic": "ple_mlp (2 levels of 4 shared + 2 per-task experts of 16 units) trained on the MMoE "
                              "paper's synthetic regression benchmark (vectors of 100; bundled, 40 KB).",
    "cs_tiny.synthscenes": "cs_tiny trained on synthscenes v3 with IUS (six dense tasks; bundled, 0.9 MB).",
    "hps_tiny.synthscenes": "hps_tiny trained on synthscenes v3 with DB-MTL (six dense tasks; bundled under weights/, "
                            "0.8 MB).",
    "cgc_tiny.synthscenes": "cgc_tiny (width 10) trained on synthscenes v3 with EW (six dense tasks; bundled, 1.8 MB).",
    "cross_stitch_tiny.synthscenes": "cross_stitch_tiny (width 10) trained on synthscenes v3 with IUS (six dense "
                                     "tasks; bundled, 1.5 MB).",
    "dselectk_tiny.synthscenes": "dselectk_tiny trained on synthscenes v3 with EW (six dense tasks; bundled, 2.5 MB).",
    "invpt_tiny.synthscenes": "invpt_tiny trained on synthscenes v3 with DB-MTL (six dense tasks; bundled, 1.6 MB).",
    "mmoe_tiny.synthscenes": "mmoe_tiny trained on synthscenes v3 with DB-MTL (six dense tasks; bundled, 1.9 MB).",
    "mtan_tiny.synthscenes": "mtan_tiny (output stride 8) trained on synthscenes v3 with EW (six dense tasks; "
                             "bundled, 2.1 MB).",
    "mtinet_tiny.synthscenes": "mtinet_tiny (task widths 4-32) trained on synthscenes v3 with EW (six dense tasks; "
                               "bundled, 3.0 MB).",
    "nddr_tiny.synthscenes": "nddr_tiny (width 10) trained on synthscenes v3 with EW (six dense tasks; bundled, "
                             "2.1 MB).",
    "padnet_tiny.synthscenes": "padnet_tiny trained on synthscenes v3 with IUS (six dense tasks; bundled, 1.9 MB).",
    "ple_tiny.synthscenes": "ple_tiny (width 10) trained on synthscenes v3 with EW (six dense tasks; bundled, 1.8 MB).",
    "squadnet_tiny.synthscenes": "squadnet_tiny (width 16, light heads) trained on synthscenes (six dense tasks; "
                                 "bundled, 4.5 MB).",
}

_ARCH_DOC = """{description}

Keyword arguments go to ``mtlzoo.create_model("{name}", ...)``: ``tasks`` (a preset name such as
"nyud" or a list of Task / dict; required unless pretrained) and the model's options.
``pretrained=True`` loads the tag marked default among its pretrained weights ({weights}) from
the Hugging Face cache or the copy bundled under weights/, without network when they are there.
"""

_TAG_DOC = """{description}

Pretrained weights "{model}" (architecture "{arch}"), loaded from the Hugging Face cache or the
copy bundled under weights/. ``pretrained=False`` builds the same architecture and tasks with
random weights; ``tasks=`` changes the heads (kept tasks keep their trained weights).
"""


def _architecture_entry(name, description):
    def entry(pretrained=False, **kwargs):
        import mtlzoo

        return mtlzoo.create_model(name, pretrained=pretrained, **kwargs)

    tags = sorted(model for model in _PRETRAINED if model.partition(".")[0] == name)
    entry.__doc__ = _ARCH_DOC.format(description=description, name=name,
                                     weights=", ".join(tags) if tags else "none published yet")
    return entry


def _tag_entry(model, description):
    arch = model.partition(".")[0]

    def entry(pretrained=True, **kwargs):
        import mtlzoo

        if pretrained:
            return mtlzoo.create_model(model, pretrained=True, **kwargs)
        from mtlzoo.models.pretrained import PRETRAINED_CFGS

        cfg = PRETRAINED_CFGS.get(model)
        return mtlzoo.create_model(arch, **{"tasks": cfg.tasks, **cfg.model_kwargs, **kwargs})

    entry.__doc__ = _TAG_DOC.format(description=description, model=model, arch=arch)
    return entry


def _define_entries():
    entries = {name: _architecture_entry(name, text) for name, text in _ARCHITECTURES.items()}
    entries.update({model.replace(".", "__"): _tag_entry(model, text) for model, text in _PRETRAINED.items()})
    for hub_name, entry in entries.items():
        entry.__name__ = entry.__qualname__ = hub_name
        globals()[hub_name] = entry


_define_entries()


def from_pretrained(name_or_path, **kwargs):
    """Load any mtlzoo checkpoint: a local folder written by ``save_pretrained``, ``hf-hub:org/name[@revision]``,
    or a pretrained name such as ``squadnet_tiny.synthscenes`` (see ``mtlzoo.from_pretrained``)."""
    import mtlzoo

    return mtlzoo.from_pretrained(name_or_path, **kwargs)
