"""Identity-Guided Pedestrian Generation (IPG), paper §3.2.2: IFR, Pose Guider, reference attention, pipeline.

The package exports nothing itself (importing it loads no model library); import the module you need:

=====================================  ==============================================================================
module                                 what it holds
=====================================  ==============================================================================
:mod:`~pose2id_demo.ipg.pipeline`      ``Pose2IDPipeline`` (check inputs → encode → denoise → decode),
                                       ``load_embedded(device)`` (the shipped tiny model), ``make_scheduler``
:mod:`~pose2id_demo.ipg.official`      ``load_official(source, device, reid=...)``: the released SD1.5-based weights,
                                       ``"hub"`` (:mod:`~pose2id_demo.ipg.hub`) or a folder
:mod:`~pose2id_demo.ipg.configs`       the registry of presets (``tiny``, ``tiny-wide``, ``sd15``) and
                                       ``build_components``
:mod:`~pose2id_demo.ipg.ifr`           IFR, eq. 5: ReID feature → identity tokens
:mod:`~pose2id_demo.ipg.pose_encoder`  the Pose Guider, eq. 24
:mod:`~pose2id_demo.ipg.unet`          the denoising UNet ε_θ (eq. 4): pose features added after ``conv_in``
:mod:`~pose2id_demo.ipg.train`         the training script (``python -m pose2id_demo.ipg.train``)
=====================================  ==============================================================================
"""
