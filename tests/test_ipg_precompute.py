"""pose2id_demo.ipg.precompute: resumable, shardable generation cache (no model needed: a stand-in pipe)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import PIL.Image

from pose2id_demo.ipg.precompute import generate_all, generation_seconds


class FakePipe:
    """Deterministic stand-in for Pose2IDPipeline: each generation encodes (reference pixel, pose index)."""

    def __init__(self, delay: float = 0.0):
        self.calls, self.delay = [], delay

    def __call__(self, refs, poses, num_inference_steps, guidance_scale, seed, use_ifr, output_type):
        self.calls.append(len(refs))
        time.sleep(self.delay)
        out = [np.full((4, 2, 3), (np.asarray(r)[0, 0, 0] / 255.0 + j) / 10.0) for r in refs for j in range(len(poses))]
        return SimpleNamespace(images=np.stack(out))


def _refs(tmp_path, n):
    paths = []
    for i in range(n):
        p = tmp_path / f"r{i}.png"
        PIL.Image.fromarray(np.full((8, 4, 3), i * 20, np.uint8)).save(p)
        paths.append(str(p))
    return paths


def test_shards_merge_to_the_unsharded_result_and_seconds_add_up(tmp_path):
    paths, poses = _refs(tmp_path, 7), [None, None, None]
    full = generate_all(FakePipe(), paths, poses, 2, 3.5, 42, True, tmp_path / "a" / "gen.npz", refs_per_batch=2)
    assert full.shape == (7, 3, 4, 2, 3) and full.dtype == np.uint8
    expect = np.array([[round((i * 20 / 255 + j) / 10 * 255) for j in range(3)] for i in range(7)])
    assert np.array_equal(full[..., 0, 0, 0], expect)

    cache = tmp_path / "b" / "gen.npz"
    for k in range(3):  # three shards, as --shard k/3 would write them
        generate_all(FakePipe(delay=0.05), paths[k::3], poses, 2, 3.5, 42, True,
                     cache.with_name(f"gen-shard{k}of3.npz"), refs_per_batch=2)
    merger = FakePipe()
    merged = generate_all(merger, paths, poses, 2, 3.5, 42, True, cache, refs_per_batch=2)
    assert merger.calls == []  # everything came from the shards
    assert np.array_equal(merged, full)
    secs = generation_seconds(cache)
    assert 0.05 * 4 <= secs < 5.0  # 4 batches slept 0.05 s each (3 + 2 + 2 refs, 2 per batch)

    again = FakePipe()
    generate_all(again, paths[:3], poses, 2, 3.5, 42, True, cache, refs_per_batch=2)
    assert again.calls == []  # resumed from the merged cache


def test_an_edited_reference_is_generated_again(tmp_path):
    paths, poses = _refs(tmp_path, 3), [None, None]
    cache = tmp_path / "gen.npz"
    first = generate_all(FakePipe(), paths, poses, 2, 3.5, 42, True, cache, refs_per_batch=2)
    PIL.Image.fromarray(np.full((8, 4, 3), 200, np.uint8)).save(paths[1])  # same name, new image
    again = FakePipe()
    second = generate_all(again, paths, poses, 2, 3.5, 42, True, cache, refs_per_batch=2)
    assert again.calls == [1]  # only the edited one
    assert np.array_equal(second[[0, 2]], first[[0, 2]]) and not np.array_equal(second[1], first[1])
