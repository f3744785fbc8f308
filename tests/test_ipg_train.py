"""IPG training pieces: loss target, random erasing, and bit-exact resume from a checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel

from pose2id_demo.ipg.checkpoint import TRAINED, load_checkpoint, save_checkpoint
from pose2id_demo.ipg.ifr import IFR
from pose2id_demo.ipg.pairs import random_erasing
from pose2id_demo.ipg.pipeline import make_scheduler
from pose2id_demo.ipg.pose_encoder import PoseGuider
from pose2id_demo.ipg.reference_attention import reference_attention
from pose2id_demo.ipg.train import lr_factor, training_loss
from pose2id_demo.ipg.unet import PoseConditionedUNet2DConditionModel
from pose2id_demo.ipg.vae import PixelUnshuffleVAE

UNET = dict(sample_size=(8, 4), in_channels=48, out_channels=48, block_out_channels=(16, 32), layers_per_block=1,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=16, attention_head_dim=2,
            norm_num_groups=8)


def tiny_models(seed: int = 0) -> dict:
    torch.manual_seed(seed)
    return {"reference_unet": UNet2DConditionModel(**UNET),
            "denoising_unet": PoseConditionedUNet2DConditionModel(**UNET),
            "pose_guider": PoseGuider(16, 3, (8, 16, 16)), "ifr": IFR(in_dim=6, num_tokens=2, dim=16),
            "vae": PixelUnshuffleVAE(factor=4, scaling_factor=2.0, sample_size=(32, 16))}


def fake_batch(rng: np.random.Generator):
    b = 2
    return (torch.from_numpy(rng.uniform(-1, 1, (b, 3, 32, 16)).astype(np.float32)),
            torch.from_numpy(rng.uniform(-1, 1, (b, 3, 32, 16)).astype(np.float32)),
            torch.from_numpy(rng.uniform(0, 1, (b, 3, 32, 16)).astype(np.float32)),
            torch.from_numpy(rng.normal(size=(b, 6)).astype(np.float32)))


def run_steps(m, ema, opt, rng, gen, n):
    sched = make_scheduler()
    params = [p for k in TRAINED for p in m[k].parameters()]
    for _ in range(n):
        loss = training_loss(m, sched, *fake_batch(rng), gen, noise_offset=0.05, snr_gamma=0.0, scaling=2.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            for k in TRAINED:
                torch._foreach_lerp_(list(ema[k].parameters()), list(m[k].parameters()), 0.1)
    return params


@pytest.mark.slow
def test_resume_is_bit_exact(tmp_path):
    def setup():
        m, ema = tiny_models(), tiny_models()
        opt = torch.optim.AdamW([p for k in TRAINED for p in m[k].parameters()], lr=1e-3, weight_decay=1e-2)
        return m, ema, opt, np.random.default_rng(0), torch.Generator().manual_seed(0)

    m, ema, opt, rng, gen = setup()
    run_steps(m, ema, opt, rng, gen, 2)
    save_checkpoint(tmp_path, m, ema, opt, 2, 1.0, rng, gen, {})
    run_steps(m, ema, opt, rng, gen, 2)
    straight = {k: v.clone() for k, v in m["denoising_unet"].state_dict().items()}
    straight_ema = {k: v.clone() for k, v in ema["ifr"].state_dict().items()}

    m2, ema2, opt2, rng2, gen2 = setup()
    rng2 = np.random.default_rng(12345)  # overwritten by the checkpoint
    state = load_checkpoint(tmp_path, m2, ema2, opt2, rng2, gen2)
    assert state["step"] == 2
    run_steps(m2, ema2, opt2, rng2, gen2, 2)
    for k, v in m2["denoising_unet"].state_dict().items():
        assert torch.equal(v, straight[k]), k
    for k, v in ema2["ifr"].state_dict().items():
        assert torch.equal(v, straight_ema[k]), k


def test_resume_drops_the_loss_rows_after_the_checkpoint(tmp_path):
    # a run stopped after its checkpoint at step 3 had logged steps 4-5; the resumed run trains them again
    from pose2id_demo.ipg.checkpoint import truncate_loss_log

    log = tmp_path / "loss.csv"
    log.write_text("step,loss\n1,0.5\n2,0.4\n3,0.3\n4,0.2\n5,0.1\n")
    truncate_loss_log(log, 3)
    assert log.read_text() == "step,loss\n1,0.5\n2,0.4\n3,0.3\n"
    truncate_loss_log(log, 3)  # nothing after the step: unchanged
    assert log.read_text() == "step,loss\n1,0.5\n2,0.4\n3,0.3\n"
    truncate_loss_log(tmp_path / "absent.csv", 3)  # a first run has no log yet
    assert not (tmp_path / "absent.csv").exists()


def test_training_loss_reaches_every_trained_module():
    """The loss back-propagates into the reference UNet (through reference attention), IFR and Pose Guider."""
    m = tiny_models()
    loss = training_loss(m, make_scheduler(), *fake_batch(np.random.default_rng(0)), torch.Generator().manual_seed(0),
                         noise_offset=0.05, snr_gamma=5.0, scaling=2.0)
    assert torch.isfinite(loss)
    loss.backward()
    ref_attn = m["reference_unet"].down_blocks[0].attentions[0].transformer_blocks[0].attn1.to_q.weight
    assert ref_attn.grad is not None and ref_attn.grad.abs().sum() > 0
    assert m["ifr"].proj_motion.weight.grad.abs().sum() > 0
    assert m["pose_guider"].conv_out.weight.grad.abs().sum() > 0  # zero-init layer still learns
    assert m["denoising_unet"].conv_in.weight.grad.abs().sum() > 0


def test_random_erasing():
    rng = np.random.default_rng(0)
    img = np.zeros((64, 32, 3), np.float32)
    changed = [not np.array_equal(random_erasing(img, rng), img) for _ in range(200)]
    assert 0.35 < np.mean(changed) < 0.65  # p = 0.5
    out = random_erasing(img, np.random.default_rng(1), p=1.0)
    ys, xs = np.nonzero(np.any(out != 0, axis=2))
    area = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
    assert 0.02 * 64 * 32 * 0.8 <= area <= 0.2 * 64 * 32 * 1.2
    assert np.count_nonzero(np.any(out != 0, axis=2)) == area  # one filled rectangle
    assert np.array_equal(img, np.zeros_like(img))  # input untouched


def test_lr_factor_warmup_constant_and_cosine_anneal():
    import math

    warm, start, n, lo = 200, 3000, 1000, 0.05
    f = [lr_factor(s, warm, start, n, lo) for s in range(0, 5000)]
    assert f[0] == pytest.approx(1 / warm) and f[warm - 1] == 1.0
    assert all(v == 1.0 for v in f[warm - 1:start])  # constant until the anneal
    for s in (start, start + 137, start + n // 2, start + 999, start + n, 4999):  # cosine, written out directly
        u = min(1.0, (s - start) / n)
        assert f[s] == pytest.approx(lo + (1 - lo) * (1 + math.cos(math.pi * u)) / 2)
    assert f[start + n // 2] == pytest.approx((1 + lo) / 2)
    assert all(a >= b for a, b in zip(f[start:], f[start + 1:]))  # monotone decay, then held at the floor
    assert f[-1] == pytest.approx(lo)
    assert [lr_factor(s, warm, None, n, lo) for s in (warm, 10_000)] == [1.0, 1.0]  # no anneal: constant


def test_checkpoint_survives_an_interrupted_swap(tmp_path):
    """A save killed between its two renames leaves checkpoint.old/, which resume then uses."""
    from pose2id_demo.ipg.checkpoint import checkpoint_dir

    m, ema = tiny_models(), tiny_models()
    opt = torch.optim.AdamW([p for k in TRAINED for p in m[k].parameters()], lr=1e-3)
    rng, gen = np.random.default_rng(0), torch.Generator().manual_seed(0)
    run_steps(m, ema, opt, rng, gen, 1)
    save_checkpoint(tmp_path, m, ema, opt, 1, 1.0, rng, gen, {"segments": [{"device": "cpu"}]})
    assert checkpoint_dir(tmp_path) == tmp_path / "checkpoint"
    (tmp_path / "checkpoint").rename(tmp_path / "checkpoint.old")  # as if killed after the first rename
    assert checkpoint_dir(tmp_path) == tmp_path / "checkpoint.old"
    m2, ema2 = tiny_models(seed=1), tiny_models(seed=1)
    opt2 = torch.optim.AdamW([p for k in TRAINED for p in m2[k].parameters()], lr=1e-3)
    state = load_checkpoint(tmp_path, m2, ema2, opt2, np.random.default_rng(5), torch.Generator())
    assert state["step"] == 1 and state["segments"] == [{"device": "cpu"}]
    for k, v in m["ifr"].state_dict().items():
        assert torch.equal(v, m2["ifr"].state_dict()[k])
    save_checkpoint(tmp_path, m, ema, opt, 2, 2.0, rng, gen, {})  # the next save cleans up
    assert checkpoint_dir(tmp_path) == tmp_path / "checkpoint" and not (tmp_path / "checkpoint.old").exists()


def test_training_loss_under_bf16_autocast_is_close_to_fp32():
    m = tiny_models()
    batch = fake_batch(np.random.default_rng(0))
    l32 = training_loss(m, make_scheduler(), *batch, torch.Generator().manual_seed(0), 0.05, 0.0, 2.0)
    l16 = training_loss(m, make_scheduler(), *batch, torch.Generator().manual_seed(0), 0.05, 0.0, 2.0,
                        autocast_dtype=torch.bfloat16)
    assert l16.dtype == torch.float32 and torch.isfinite(l16)
    assert float(l16) == pytest.approx(float(l32), rel=0.05)


def pair_data(directions, ref_sets, trg_sets, pair_views):
    from pose2id_demo.ipg.pairs import PairData

    d = PairData.__new__(PairData)  # the sampler's state only (no images)
    d.directions = np.asarray(directions)
    d.ref_sets = [np.asarray(r) for r in ref_sets]
    d.trg_sets = [np.asarray(t) for t in trg_sets]
    d.pair_views = pair_views
    return d


def test_pair_sampler_view_statistics():
    """same_view_rate is the exact P(reference faces the target's way) of the sampler, by enumeration."""
    rng = np.random.default_rng(0)
    dirs = rng.integers(0, 3, 40)  # few directions: many same-view pairs
    ids = np.repeat(np.arange(8), 5)
    ref_sets = [np.flatnonzero(ids == i) for i in range(8)]
    trg_sets = [r[1:] for r in ref_sets]
    for views in ("any", "different"):
        d = pair_data(dirs, ref_sets, trg_sets, views)
        brute = 0.0
        for i in range(8):
            for t in trg_sets[i]:
                c = [r for r in ref_sets[i] if r != t]
                if views == "different" and any(dirs[r] != dirs[t] for r in c):
                    c = [r for r in c if dirs[r] != dirs[t]]
                brute += np.mean([dirs[r] == dirs[t] for r in c]) / len(trg_sets[i]) / 8
        assert d.same_view_rate() == pytest.approx(brute)
        if views == "different":
            for i in range(8):
                for t in trg_sets[i]:
                    c = d.reference_choices(i, int(t))
                    assert t not in c
                    if any(dirs[r] != dirs[t] for r in ref_sets[i] if r != t):
                        assert np.all(dirs[c] != dirs[t])


def test_init_from_pipeline_loads_only_matching_architectures(tmp_path):
    from pose2id_demo.ipg.train import init_from_pipeline

    src = tiny_models(seed=3)
    for n in TRAINED:
        src[n].save_pretrained(tmp_path / n, safe_serialization=True)
    m = tiny_models(seed=4)
    m["pose_guider"] = PoseGuider(16, 3, (8, 8, 16, 16))  # one more stage: another architecture
    fresh = {k: v.clone() for k, v in m["pose_guider"].state_dict().items()}
    init_from_pipeline(m, tmp_path)
    for n in ("reference_unet", "denoising_unet", "ifr"):
        for k, v in src[n].state_dict().items():
            assert torch.equal(m[n].state_dict()[k], v), (n, k)
    for k, v in m["pose_guider"].state_dict().items():  # untouched, conv_out still zero
        assert torch.equal(v, fresh[k]), k
    assert float(m["pose_guider"].conv_out.weight.abs().sum()) == 0.0


def test_batch_mixes_rendered_pairs_at_the_asked_share():
    """render_pairs P: a share ~P of the batch's targets are the pool's renders with their targets' skeletons
    (reference unflipped); P = 0 draws the same stream as a sampler without a pool."""
    from types import SimpleNamespace

    rng = np.random.default_rng(0)
    n = 40
    ids = np.repeat(np.arange(8), 5)
    ref_sets = [np.flatnonzero(ids == i) for i in range(8)]
    d = pair_data(rng.integers(0, 8, n), ref_sets, [r[1:] for r in ref_sets], "any")
    d.images = rng.integers(0, 256, (n, 8, 4, 3), dtype=np.uint8)
    d.skeletons = rng.integers(0, 256, (n, 8, 4, 3), dtype=np.uint8)
    d.feats, d.feats_flip, d.zero_feat = rng.normal(size=(n, 6)), rng.normal(size=(n, 6)), np.zeros(6)
    pool = rng.integers(0, 256, (n * 2, 8, 4, 3), dtype=np.uint8)
    target_of = np.stack([rng.choice(n, 2, replace=False) for _ in range(n)])
    d.rendered = SimpleNamespace(target_of=target_of, image_of=lambda r, j: pool[2 * r + j])
    d.render_pairs = 0.0
    a = d.batch(np.random.default_rng(5), 16, 0.0)
    d.rendered = None
    b = d.batch(np.random.default_rng(5), 16, 0.0)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    d.rendered = SimpleNamespace(target_of=target_of, image_of=lambda r, j: pool[2 * r + j])
    for share in (1.0, 0.5):
        d.render_pairs = share
        _, trg, skel, feats = d.batch(np.random.default_rng(1), 400, 0.0)
        trg_u8 = ((trg.permute(0, 2, 3, 1).numpy() + 1) * 127.5).round().astype(np.uint8)
        sk_u8 = (skel.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
        hits = 0
        for k in range(400):
            r = int(np.flatnonzero(np.all(np.isclose(d.feats, feats[k].numpy()[None]), axis=1))[0]) \
                if np.any(np.all(np.isclose(d.feats, feats[k].numpy()[None]), axis=1)) else None
            rendered = [j for j in range(2) if r is not None and np.array_equal(trg_u8[k], pool[2 * r + j])]
            if rendered:
                hits += 1
                assert np.array_equal(sk_u8[k], d.skeletons[target_of[r, rendered[0]]])
        assert abs(hits / 400 - share) < 0.1


def test_identity_loss_adds_the_reid_distance_of_the_implied_clean_image():
    """identity_weight w: loss = v-MSE + w · mean(ᾱ_t (1 − cos(f(decode(x̂0)), f(target)))), recomputed here by
    hand from the same noise draw; its gradient reaches the denoising UNet through the frozen decoder and ReID
    model, which themselves get none."""
    from types import SimpleNamespace

    m = tiny_models()
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    net.requires_grad_(False)
    reid = SimpleNamespace(model=net, normalize=lambda x: (x - 0.5) / 0.25)
    batch = fake_batch(np.random.default_rng(0))
    sched = make_scheduler()
    kw = dict(noise_offset=0.05, snr_gamma=0.0, scaling=2.0)
    plain = training_loss(m, sched, *batch, torch.Generator().manual_seed(3), **kw)
    with_id = training_loss(m, sched, *batch, torch.Generator().manual_seed(3), identity_weight=0.7, reid_model=reid,
                            **kw)
    # by hand: the same draws as training_loss
    ref, trg, skel, feats = batch
    gen = torch.Generator().manual_seed(3)
    vae = m["vae"]
    z0 = vae.encode(trg).latent_dist.sample() * 2.0
    noise = torch.randn(z0.shape, generator=gen) + 0.05 * torch.randn((z0.shape[0], z0.shape[1], 1, 1), generator=gen)
    t = torch.randint(0, sched.config.num_train_timesteps, (z0.shape[0],), generator=gen)
    zt = sched.add_noise(z0, noise, t)
    with torch.no_grad(), reference_attention(m["reference_unet"], m["denoising_unet"]):
        tokens = m["ifr"](feats)
        m["reference_unet"](vae.encode(ref).latent_dist.mean * 2.0, torch.zeros_like(t), encoder_hidden_states=tokens)
        v = m["denoising_unet"](zt, t, encoder_hidden_states=tokens, pose_cond_fea=m["pose_guider"](skel)).sample
    ac = sched.alphas_cumprod[t].double()
    a, b = ac.sqrt().view(-1, 1, 1, 1).float(), (1 - ac).sqrt().view(-1, 1, 1, 1).float()
    x0 = vae.decode((a * zt - b * v) / 2.0).sample
    fg = F.normalize(net(reid.normalize(((x0 + 1) / 2).clamp(0, 1))), dim=1)
    ft = F.normalize(net(reid.normalize((trg + 1) / 2)), dim=1)
    want = float(plain) + 0.7 * float((ac * (1 - (fg * ft).sum(1).double())).mean())
    assert float(with_id) == pytest.approx(want, rel=1e-4, abs=1e-6)
    assert float(with_id) > float(plain)
    with_id.backward()
    assert m["denoising_unet"].conv_out.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in net.parameters())


@pytest.fixture(scope="module")
def micro_root(tmp_path_factory):
    """A SynthPed root with keypoint jsons: 6 train identities × 4 images, one test identity."""
    from pose2id_demo.data import synthped as sp

    items = sp.plan(0, num_train_ids=6, num_test_ids=1, train_per_id=4, num_distractors=0, num_junk=0)
    return sp.render_benchmark(tmp_path_factory.mktemp("micro") / "root", items=items)


@pytest.fixture()
def micro_preset(monkeypatch, tmp_path):
    """A registered preset small enough for a test (32 × 16 images) and a random autoencoder folder."""
    from pose2id_demo.ipg.autoencoder import TinyAutoencoderKL
    from pose2id_demo.ipg.configs import PRESETS, TINY

    unet = dict(UNET, sample_size=(8, 4), in_channels=4, out_channels=4)
    monkeypatch.setitem(PRESETS, "micro", TINY.replace(name="micro", unet=unet, ifr_tokens=2, ifr_dim=16,
                                                       pose_widths=(8, 16, 16), image_size=(32, 16), batch_size=2))
    torch.manual_seed(0)
    ae = TinyAutoencoderKL(latent_channels=4, block_out_channels=(8, 8, 8), sample_size=(32, 16))
    ae.save_pretrained(tmp_path / "ae")
    return tmp_path / "ae"


@pytest.mark.slow
def test_main_resumes_bit_exactly_and_keeps_milestones(micro_root, micro_preset, tmp_path):
    """The script end to end: 4 steps straight equal 2 steps, a stop, and ``--resume`` to 4 — weights, EMA,
    optimizer, RNG states and loss log; milestones hold the EMA pipeline of their step; the run's state
    records its preset, so a resume rebuilds the architecture the run started with."""
    from safetensors.torch import load_file

    from pose2id_demo.ipg.pipeline import Pose2IDPipeline
    from pose2id_demo.ipg.train import main

    common = ["--data", str(micro_root), "--config", "micro", "--vae", str(micro_preset), "--seed", "3",
              "--sample-minutes", "0", "--anneal-start", "1", "--anneal-steps", "2", "--identity-weight", "0.5",
              "--milestone-every", "2", "--log-every", "1"]
    assert main(common + ["--out", str(tmp_path / "a"), "--max-steps", "4"]) == 0
    assert main(common + ["--out", str(tmp_path / "b"), "--max-steps", "2"]) == 0
    assert main(common + ["--out", str(tmp_path / "b"), "--max-steps", "4", "--resume"]) == 0
    for f in ("model", "ema", "optimizer", "rng"):
        a, b = (load_file(tmp_path / d / "checkpoint" / f"{f}.safetensors") for d in "ab")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), f
    assert (tmp_path / "a" / "loss.csv").read_text() == (tmp_path / "b" / "loss.csv").read_text()
    state = json.loads((tmp_path / "b" / "checkpoint" / "state.json").read_text())
    assert state["step"] == 4 and [s["last_step"] for s in state["segments"]] == [2, 4]
    assert state["preset"]["name"] == "micro" and state["preset"]["image_size"] == [32, 16]
    ema = load_file(tmp_path / "a" / "checkpoint" / "ema.safetensors")
    pipe = Pose2IDPipeline.from_pretrained(tmp_path / "a" / "milestones" / "step_000004")
    for k, v in pipe.denoising_unet.state_dict().items():
        assert torch.equal(v, ema["denoising_unet." + k]), k
    marks = [json.loads((tmp_path / "a" / "milestones" / f"step_00000{k}" / "milestone.json").read_text())
             for k in (2, 4)]
    assert [m["step"] for m in marks] == [2, 4] and 0 <= marks[0]["cpu_minutes"] <= marks[1]["cpu_minutes"]
