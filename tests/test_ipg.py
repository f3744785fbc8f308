"""IPG components and pipeline on tiny random-initialised models (diffusers-style tests)."""

from __future__ import annotations

import json

import numpy as np
import PIL.Image
import pytest
import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel

from pose2id_demo.ipg.ifr import IFR
from pose2id_demo.ipg.pipeline import Pose2IDPipeline, make_scheduler
from pose2id_demo.ipg.pose_encoder import PoseGuider
from pose2id_demo.ipg.reference_attention import ReferenceReadProcessor, ReferenceWriteProcessor, reference_attention
from pose2id_demo.ipg.unet import PoseConditionedUNet2DConditionModel
from pose2id_demo.ipg.vae import PixelUnshuffleVAE
from pose2id_demo.poses.keypoints import Pose

UNET = dict(sample_size=(8, 4), in_channels=48, out_channels=48, block_out_channels=(16, 32), layers_per_block=1,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32, attention_head_dim=2,
            norm_num_groups=8)


class TinyReID:
    """A stand-in ReID extractor with the backbone interface (preprocess + model)."""

    name = None
    input_size = (32, 16)

    def __init__(self) -> None:
        torch.manual_seed(123)
        self.model = torch.nn.Sequential(torch.nn.AvgPool2d(4), torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 4, 24))

    def preprocess(self, images):
        arr = np.stack([np.asarray(im.convert("RGB").resize((16, 32)), np.float32) / 127.5 - 1 for im in images])
        return torch.from_numpy(arr).permute(0, 3, 1, 2)


def make_pipe(seed: int = 0) -> Pose2IDPipeline:
    torch.manual_seed(seed)
    ref = UNet2DConditionModel(**UNET)
    den = PoseConditionedUNet2DConditionModel(**UNET)
    guider = PoseGuider(conditioning_embedding_channels=16, block_out_channels=(8, 16, 16))
    for p in guider.conv_out.parameters():  # non-zero so that poses matter in the untrained model
        torch.nn.init.normal_(p, std=0.1)
    ifr = IFR(in_dim=24, num_tokens=4, dim=32)
    vae = PixelUnshuffleVAE(factor=4, scaling_factor=2.0, sample_size=(32, 16))
    pipe = Pose2IDPipeline(ref, den, guider, ifr, vae, make_scheduler(), reid=TinyReID())
    pipe.set_progress_bar_config(disable=True)
    return pipe


def make_pose(shift: float = 0.0) -> Pose:
    kp = np.zeros((18, 3), np.float32)
    kp[:, 0] = np.linspace(10, 50, 18) + shift
    kp[:, 1] = np.linspace(10, 120, 18)
    kp[:, 2] = 1
    return Pose(kp, 64, 128)


def make_image(seed: int) -> PIL.Image.Image:
    return PIL.Image.fromarray(np.random.default_rng(seed).integers(0, 256, (128, 64, 3), dtype=np.uint8))


# ----------------------------------------------------------------------------- components
def test_ifr_is_layernorm_of_linear():
    torch.manual_seed(0)
    ifr = IFR(in_dim=10, num_tokens=3, dim=8)
    f = torch.randn(5, 10)
    h = ifr(f)
    assert h.shape == (5, 3, 8)
    ref = (f @ ifr.proj_motion.weight.T + ifr.proj_motion.bias).reshape(5, 3, 8)
    ref = (ref - ref.mean(-1, keepdim=True)) / torch.sqrt(ref.var(-1, unbiased=False, keepdim=True) + 1e-5)
    assert torch.allclose(h, ref * ifr.norm_motion.weight + ifr.norm_motion.bias, atol=1e-5)
    assert set(ifr.state_dict()) == {"proj_motion.weight", "proj_motion.bias", "norm_motion.weight", "norm_motion.bias"}
    with pytest.raises(ValueError):
        ifr(torch.randn(5, 11))


def test_pose_guider_structure_and_forward():
    g = PoseGuider(conditioning_embedding_channels=320)
    keys = set(g.state_dict())
    assert {k.split(".")[0] for k in keys} == {"conv_in", "blocks", "conv_out"}
    assert len(g.blocks) == 6 and [b.stride[0] for b in g.blocks] == [1, 2, 1, 2, 1, 2]
    assert g.conv_in.in_channels == 3 and g.conv_in.out_channels == 16
    assert [b.out_channels for b in g.blocks] == [16, 32, 32, 64, 64, 128]
    x = torch.rand(2, 3, 64, 32)
    assert torch.count_nonzero(g(x)) == 0  # zero-initialised conv_out
    torch.nn.init.normal_(g.conv_out.weight)
    y = g(x)
    assert y.shape == (2, 320, 8, 4)
    e = F.silu(g.conv_in(x))
    for conv in g.blocks:
        e = F.silu(conv(e))
    assert torch.allclose(y, g.conv_out(e))


def test_pixel_unshuffle_vae_is_lossless_and_matches_reshape():
    vae = PixelUnshuffleVAE(factor=4)
    x = torch.rand(2, 3, 64, 32) * 2 - 1
    z = vae.encode(x).latent_dist.mean
    assert z.shape == (2, 48, 16, 8)
    assert torch.equal(vae.encode(x).latent_dist.sample(), z)  # zero variance
    # brute force: latent channel c*16 + i*4 + j at (u, v) is pixel (c, 4u + i, 4v + j)
    c, i, j, u, v = 2, 1, 3, 5, 6
    assert z[1, c * 16 + i * 4 + j, u, v] == x[1, c, 4 * u + i, 4 * v + j]
    assert torch.equal(vae.decode(z).sample, x)
    with pytest.raises(ValueError):
        vae.encode(torch.zeros(1, 3, 30, 32))


def test_pose_unet_adds_embedding_after_conv_in():
    torch.manual_seed(0)
    unet = PoseConditionedUNet2DConditionModel(**UNET)
    x, e = torch.randn(2, 48, 8, 4), torch.randn(2, 3, 32)
    pose = torch.randn(2, 16, 8, 4)
    feats = {}

    def grab(module, args, kwargs):
        feats["in"] = args[0] if args else kwargs["hidden_states"]

    unet.down_blocks[0].register_forward_pre_hook(grab, with_kwargs=True)
    unet(x, 5, e, pose_cond_fea=pose)
    assert torch.allclose(feats["in"], F.conv2d(x, unet.conv_in.weight, unet.conv_in.bias, padding=1) + pose, atol=1e-6)
    assert unet.conv_in.pose_residual is None  # cleared after the call
    assert torch.allclose(unet(x, 5, e).sample, unet(x, 5, e, pose_cond_fea=torch.zeros_like(pose)).sample)
    assert set(unet.state_dict()) == set(UNet2DConditionModel(**UNET).state_dict())


def test_reference_read_processor_matches_brute_force_attention():
    torch.manual_seed(0)
    ref_unet, den_unet = UNet2DConditionModel(**UNET), PoseConditionedUNet2DConditionModel(**UNET)
    before_r = {k: type(v) for k, v in den_unet.attn_processors.items()}
    before_w = {k: type(v) for k, v in ref_unet.attn_processors.items()}
    captured = {}
    attn = den_unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1
    attn.register_forward_hook(lambda m, a, kw, out: captured.update(h=kw.get("hidden_states", a[0] if a else None),
                                                                     out=out), with_kwargs=True)
    x, e = torch.randn(2, 48, 8, 4), torch.randn(2, 3, 32)
    with reference_attention(ref_unet, den_unet) as bank:
        assert all(isinstance(p, ReferenceWriteProcessor) for k, p in ref_unet.attn_processors.items() if "attn1" in k)
        assert all(isinstance(p, ReferenceReadProcessor) for k, p in den_unet.attn_processors.items() if "attn1" in k)
        assert not any(isinstance(p, ReferenceReadProcessor)
                       for k, p in den_unet.attn_processors.items() if "attn2" in k)
        ref_unet(torch.randn(1, 48, 8, 4), 0, e[:1])
        name = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor"
        stored = bank.states[name]
        den_unet(x, 10, e)
    assert len(bank) == 0
    h = captured["h"]
    kv = torch.cat([h, stored.expand(2, -1, -1)], dim=1)  # bank batch 1 serves both samples
    q, k, v = attn.to_q(h), attn.to_k(kv), attn.to_v(kv)
    heads = attn.heads
    q, k, v = (t.view(2, t.shape[1], heads, -1).transpose(1, 2) for t in (q, k, v))
    w = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, dim=-1)
    ref_out = attn.to_out[0]((w @ v).transpose(1, 2).reshape(2, h.shape[1], -1))
    assert torch.allclose(captured["out"], ref_out, atol=1e-5)
    assert {k: type(v) for k, v in den_unet.attn_processors.items()} == before_r
    assert {k: type(v) for k, v in ref_unet.attn_processors.items()} == before_w


# ----------------------------------------------------------------------------- pipeline
@pytest.fixture(scope="module")
def pipe() -> Pose2IDPipeline:
    return make_pipe()


@pytest.mark.slow
def test_pipeline_shapes_determinism_and_callback(pipe):
    steps = []
    out = pipe(make_image(0), [make_pose(), make_pose(5)], num_inference_steps=2, seed=7,
               callback_on_step_end=lambda p, i, t, kw: steps.append((i, kw["latents"].shape)))
    assert len(out.images) == 2 and out.images[0].size == (16, 32)
    assert steps == [(0, (2, 48, 8, 4)), (1, (2, 48, 8, 4))]
    again = pipe(make_image(0), [make_pose(), make_pose(5)], num_inference_steps=2, seed=7, output_type="np").images
    assert np.array_equal(np.asarray(out.images[0]), (again[0] * 255).round().astype(np.uint8))
    other = pipe(make_image(0), [make_pose()], num_inference_steps=2, seed=8, output_type="np").images
    assert not np.allclose(other[0], again[0])
    assert not np.allclose(again[0], again[1])  # poses matter


@pytest.mark.slow
def test_pipeline_batch_equals_single(pipe):
    poses = [make_pose(), make_pose(4), make_pose(-4)]
    batch = pipe(make_image(1), poses, num_inference_steps=2, seed=[3, 4, 5], output_type="np").images
    for i, p in enumerate(poses):
        single = pipe(make_image(1), [p], num_inference_steps=2, seed=3 + i, output_type="np").images
        np.testing.assert_allclose(single[0], batch[i], atol=1e-4)


def test_pipeline_accepts_skeleton_images(pipe):
    from pose2id_demo.ipg.pipeline import render_pose

    ph, pw = pipe.pose_size
    skel = PIL.Image.fromarray(render_pose(make_pose(), pw, ph))
    a = pipe(make_image(0), [make_pose()], num_inference_steps=2, output_type="np").images
    b = pipe(make_image(0), [skel], num_inference_steps=2, output_type="np").images
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_use_ifr_and_reference_change_the_output(pipe):
    kw = dict(num_inference_steps=2, seed=1, output_type="np")
    on = pipe(make_image(0), [make_pose()], use_ifr=True, **kw).images
    off = pipe(make_image(0), [make_pose()], use_ifr=False, **kw).images
    assert np.abs(on - off).max() > 1e-3
    other_ref = pipe(make_image(5), [make_pose()], use_ifr=False, **kw).images  # same (zero) identity tokens
    assert np.abs(other_ref - off).max() > 1e-3  # so the difference comes from reference attention
    # guidance_scale=1 with IFR on equals the conditional branch alone; and IFR off ignores the scale
    off2 = pipe(make_image(0), [make_pose()], use_ifr=False, guidance_scale=7.0, **kw).images
    np.testing.assert_allclose(off, off2, atol=1e-6)
    assert all(not isinstance(p, ReferenceReadProcessor) for p in pipe.denoising_unet.attn_processors.values())


def test_check_inputs(pipe):
    with pytest.raises(ValueError):
        pipe(make_image(0), [], num_inference_steps=2)
    with pytest.raises(ValueError):
        pipe(make_image(0), ["left"], num_inference_steps=2)
    with pytest.raises(ValueError):
        pipe(make_image(0), [make_pose()], guidance_scale=0.5)
    with pytest.raises(ValueError):
        pipe(make_image(0), [make_pose()], seed=[1, 2])


@pytest.mark.slow
def test_save_load_round_trip(pipe, tmp_path):
    pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["denoising_unet"] == "PoseConditionedUNet2DConditionModel" and index["vae"] == "PixelUnshuffleVAE"
    assert (tmp_path / "ifr" / "diffusion_pytorch_model.safetensors").exists()
    loaded = Pose2IDPipeline.from_pretrained(tmp_path, reid=pipe.reid)
    loaded.set_progress_bar_config(disable=True)
    assert loaded.scheduler.config.prediction_type == "v_prediction"
    assert loaded.scheduler.config.rescale_betas_zero_snr and loaded.scheduler.config.timestep_spacing == "trailing"
    kw = dict(num_inference_steps=2, seed=2, output_type="np")
    np.testing.assert_allclose(pipe(make_image(0), [make_pose()], **kw).images,
                               loaded(make_image(0), [make_pose()], **kw).images, atol=1e-5)


@pytest.mark.slow
def test_pipeline_many_references_equal_separate_calls(pipe):
    poses = [make_pose(), make_pose(4)]
    kw = dict(num_inference_steps=2, seed=9, output_type="np")
    both = pipe([make_image(0), make_image(1)], poses, **kw).images
    assert len(both) == 4
    for r in range(2):
        single = pipe(make_image(r), poses, **kw).images
        np.testing.assert_allclose(both[2 * r:2 * r + 2], single, atol=1e-4)


def test_tiny_autoencoder_interface_and_round_trip(tmp_path):
    from pose2id_demo.ipg.autoencoder import TinyAutoencoderKL
    from pose2id_demo.ipg.pipeline import load_vae, vae_scale_factor

    torch.manual_seed(0)
    ae = TinyAutoencoderKL(latent_channels=8, block_out_channels=(8, 16, 16), scaling_factor=0.7).eval()
    x = torch.rand(2, 3, 64, 32) * 2 - 1
    post = ae.encode(x).latent_dist
    assert post.mean.shape == (2, 8, 16, 8) and vae_scale_factor(ae) == 4
    assert ae.decode(post.mean).sample.shape == x.shape
    ae.save_pretrained(tmp_path)
    back = load_vae(tmp_path)
    assert isinstance(back, TinyAutoencoderKL) and back.config.scaling_factor == 0.7
    assert torch.equal(back.decode(post.mean).sample, ae.decode(post.mean).sample)


def test_autoencoder_cli_shape_flags_train_and_save(tmp_path):
    """The autoencoder CLI builds the asked-for latent and widths, trains (the loss falls on a fixed batch of
    tiny random images) and saves a folder the pipeline's loader reads back."""
    import json

    import PIL.Image

    from pose2id_demo.ipg.autoencoder import load_train_images, main
    from pose2id_demo.ipg.pipeline import load_vae

    rng = np.random.default_rng(3)
    root = tmp_path / "market"
    for folder in ("bounding_box_train", "query", "bounding_box_test"):
        (root / folder).mkdir(parents=True)
        for k in range(4):
            img = (rng.random((16, 8, 3)) * 255).astype(np.uint8).repeat(8, 0).repeat(8, 1)  # 128×64 blocks
            PIL.Image.fromarray(img).save(root / folder / f"{k + 1:04d}_c{k % 2 + 1}s1_{k:06d}_00.jpg")
    out = tmp_path / "ae"
    assert main(["--data", str(root), "--out", str(out), "--max-steps", "60", "--batch-size", "4",
                 "--latent-channels", "4", "--widths", "8", "12", "16"]) == 0
    ae = load_vae(out)
    assert ae.config.latent_channels == 4 and tuple(ae.config.block_out_channels) == (8, 12, 16)
    info = json.loads((out / "train_info.json").read_text())
    assert info["steps"] == 60 and np.isfinite(info["psnr_db"])
    x = torch.from_numpy(load_train_images(root)).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        z = ae.encode(x).latent_dist.mean
        trained = torch.nn.functional.mse_loss(ae.decode(z).sample, x)
        fresh = type(ae)(latent_channels=4, block_out_channels=(8, 12, 16))
        untrained = torch.nn.functional.mse_loss(fresh.decode(fresh.encode(x).latent_dist.mean).sample, x)
    assert z.shape == (4, 4, 16, 8) and trained < untrained


def test_upsampling_decoder_keeps_the_latent_space_and_doubles_the_output(tmp_path):
    """decoder_from: the encoder and the ten shared decoder layers are the trained model's (so a generator
    trained in its latent space still applies), the output is twice the input; the folder round-trips and
    a pipeline with it reports the larger output size."""
    from pose2id_demo.ipg.autoencoder import TinyAutoencoderKL, decoder_from
    from pose2id_demo.ipg.pipeline import load_vae

    torch.manual_seed(0)
    ae = TinyAutoencoderKL(latent_channels=4, block_out_channels=(8, 16, 16)).eval()
    up = decoder_from(ae, 2).eval()
    x = torch.rand(2, 3, 64, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(up.encode(x).latent_dist.mean, ae.encode(x).latent_dist.mean)
        z = ae.encode(x).latent_dist.mean
        assert up.decode(z).sample.shape == (2, 3, 128, 64)
        assert torch.equal(up.decoder[:10](z), ae.decoder[:10](z))
    assert torch.equal(up.decoder[-1].weight, ae.decoder[-1].weight)
    with pytest.raises(ValueError, match="decoder_upsample"):
        TinyAutoencoderKL(decoder_upsample=3)
    up.save_pretrained(tmp_path / "up")
    back = load_vae(tmp_path / "up")
    assert back.config.decoder_upsample == 2
    with torch.no_grad():
        assert torch.equal(back.decode(z).sample, up.decode(z).sample)


def test_autoencoder_cli_trains_a_larger_decoder_with_the_encoder_frozen(tmp_path):
    """``--from AE --decoder-upsample 2``: the saved model's encoder is AE's bit for bit, its decoder maps
    the 64×32 latent to 128×64 and fits the full-size images better than before training."""
    import json

    import PIL.Image

    from pose2id_demo.ipg.autoencoder import TinyAutoencoderKL, decoder_from, load_train_images, main
    from pose2id_demo.ipg.pipeline import load_vae

    rng = np.random.default_rng(4)
    root = tmp_path / "market"
    for folder in ("bounding_box_train", "query", "bounding_box_test"):
        (root / folder).mkdir(parents=True)
        for k in range(4):
            img = (rng.random((32, 16, 3)) * 255).astype(np.uint8).repeat(4, 0).repeat(4, 1)
            PIL.Image.fromarray(img).save(root / folder / f"{k + 1:04d}_c{k % 2 + 1}s1_{k:06d}_00.jpg")
    torch.manual_seed(0)
    TinyAutoencoderKL(latent_channels=4, block_out_channels=(8, 12, 16)).save_pretrained(tmp_path / "ae")
    src = load_vae(tmp_path / "ae")
    assert main(["--data", str(root), "--out", str(tmp_path / "up"), "--from", str(tmp_path / "ae"),
                 "--decoder-upsample", "2", "--max-steps", "40", "--batch-size", "4"]) == 0
    up = load_vae(tmp_path / "up")
    assert up.config.decoder_upsample == 2
    for k, v in src.encoder.state_dict().items():
        assert torch.equal(v, up.encoder.state_dict()[k]), k
    info = json.loads((tmp_path / "up" / "train_info.json").read_text())
    assert info["steps"] == 40 and info["decoder_upsample"] == 2
    x = torch.from_numpy(load_train_images(root)).permute(0, 3, 1, 2).float() / 127.5 - 1
    y = torch.from_numpy(load_train_images(root, (128, 64))).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        z = src.encode(x).latent_dist.mean
        trained = torch.nn.functional.mse_loss(up.decode(z).sample, y)
        before = torch.nn.functional.mse_loss(decoder_from(src, 2).decode(z).sample, y)
    assert trained < before
    # a run stopped at step 15 and resumed to 40 on the same schedule ends bit for bit where the straight run did
    common = ["--data", str(root), "--from", str(tmp_path / "ae"), "--decoder-upsample", "2", "--batch-size", "4",
              "--schedule-steps", "40"]
    assert main(common + ["--out", str(tmp_path / "split"), "--max-steps", "15"]) == 0
    assert json.loads((tmp_path / "split" / "train_info.json").read_text())["steps"] == 15
    torch.manual_seed(12345)  # the resumed run must take its RNG states from the checkpoint, not from here
    assert main(common + ["--out", str(tmp_path / "split"), "--max-steps", "40", "--resume"]) == 0
    resumed = load_vae(tmp_path / "split")
    for k, v in up.decoder.state_dict().items():
        assert torch.equal(v, resumed.decoder.state_dict()[k]), k


@pytest.mark.slow
def test_load_embedded_generates():
    from pose2id_demo.ipg.pipeline import load_embedded

    emb = load_embedded()
    assert emb.image_size == (64, 32) and emb.reid.name == "synthped-reid"
    assert emb.output_size == (128, 64)  # SynthPed's native crop size, through the 2x decoder
    assert emb.scheduler.config.prediction_type == "v_prediction"
    out = emb(make_image(0), [make_pose(), make_pose(3)], num_inference_steps=2, seed=42).images
    assert [im.size for im in out] == [(64, 128), (64, 128)]
    assert np.asarray(out[0]).std() > 1  # not a blank image


def test_diagnosis_knobs_reference_attention_off_and_pose_scale(pipe):
    """use_reference_attention=False: the reference no longer matters (IFR off); pose_scale=0 equals a
    Pose Guider whose output is zero, and pose_scale=1 is the default."""
    kw = dict(num_inference_steps=2, seed=1, output_type="np", use_ifr=False)
    a = pipe(make_image(0), [make_pose()], use_reference_attention=False, **kw).images
    b = pipe(make_image(5), [make_pose()], use_reference_attention=False, **kw).images
    np.testing.assert_allclose(a, b, atol=1e-6)
    ref = pipe(make_image(0), [make_pose()], **kw).images
    np.testing.assert_allclose(pipe(make_image(0), [make_pose()], pose_scale=1.0, **kw).images, ref, atol=1e-6)
    zero = pipe(make_image(0), [make_pose()], pose_scale=0.0, **kw).images
    conv = pipe.pose_guider.conv_out
    saved = conv.weight.detach().clone(), conv.bias.detach().clone()
    try:
        with torch.no_grad():
            conv.weight.zero_()
            conv.bias.zero_()
        np.testing.assert_allclose(pipe(make_image(0), [make_pose()], **kw).images, zero, atol=1e-6)
    finally:
        with torch.no_grad():
            conv.weight.copy_(saved[0])
            conv.bias.copy_(saved[1])


@pytest.mark.slow
def test_export_swaps_in_an_upsampling_decoder_and_keeps_the_generator(tmp_path):
    """export_pipeline: the run's UNets / Pose Guider / IFR byte for byte, the new decoder's 2× output, and a
    refusal for an autoencoder whose encoder is not the one the generator was trained in."""
    from pose2id_demo.ipg.autoencoder import TinyAutoencoderKL, decoder_from
    from pose2id_demo.ipg.export import export_pipeline, main
    from pose2id_demo.ipg.precompute import model_hash

    torch.manual_seed(3)
    src = make_pipe()
    ae = TinyAutoencoderKL(latent_channels=48, block_out_channels=(8, 16, 16), sample_size=(32, 16)).eval()
    src = Pose2IDPipeline(src.reference_unet, src.denoising_unet, src.pose_guider, src.ifr, ae, src.scheduler,
                          reid=src.reid)
    src.save_pretrained(tmp_path / "run")
    up = decoder_from(ae, 2).eval()
    with torch.no_grad():
        for p in up.decoder.parameters():  # a "trained" decoder: differs from the copy it started as
            p.add_(0.01 * torch.randn_like(p))
    up.save_pretrained(tmp_path / "dec")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "README.md").write_text("model card")
    (tmp_path / "out" / "stale.bin").write_text("old")
    assert main(["--pipeline", str(tmp_path / "run"), "--vae", str(tmp_path / "dec"),
                 "--out", str(tmp_path / "out")]) == 0
    out = tmp_path / "out"
    assert (out / "README.md").read_text() == "model card" and not (out / "stale.bin").exists()
    for name in ("reference_unet", "denoising_unet", "pose_guider", "ifr"):
        a = (tmp_path / "run" / name / "diffusion_pytorch_model.safetensors").read_bytes()
        assert (out / name / "diffusion_pytorch_model.safetensors").read_bytes() == a
    assert model_hash(out) != model_hash(tmp_path / "run")
    loaded = Pose2IDPipeline.from_pretrained(out, reid=TinyReID())
    loaded.set_progress_bar_config(disable=True)
    assert loaded.output_size == (64, 32) and loaded.image_size == (32, 16)
    kw = dict(num_inference_steps=2, seed=4, output_type="np")
    img = loaded(make_image(1), [make_pose()], **kw).images
    assert img.shape == (1, 64, 32, 3)
    same = Pose2IDPipeline.from_pretrained(tmp_path / "run", reid=TinyReID(), vae=up)
    same.set_progress_bar_config(disable=True)
    np.testing.assert_array_equal(same(make_image(1), [make_pose()], **kw).images, img)
    torch.manual_seed(99)  # TinyReID() reseeds the global generator: make the foreign encoder really different
    other = TinyAutoencoderKL(latent_channels=48, block_out_channels=(8, 16, 16), sample_size=(32, 16))
    decoder_from(other, 2).save_pretrained(tmp_path / "foreign")
    with pytest.raises(ValueError, match="encoder"):
        export_pipeline(tmp_path / "run", tmp_path / "out2", tmp_path / "foreign")
    with pytest.raises(TypeError, match="unknown pipeline component"):
        Pose2IDPipeline.from_pretrained(out, reid=TinyReID(), unet=up)
