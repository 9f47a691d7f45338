"""PairedImageDataset / IterablePairedDataset items, collation, workers, sharding and resume."""

from __future__ import annotations

import io
from collections import Counter

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from ggt_datasets import schema
from ggt_datasets.images import load_rgb
from ggt_datasets.loaders import (
    IterablePairedDataset,
    PairedImageDataset,
    PairedTransformConfig,
    collate_pairs,
    make_dataloader,
    set_epoch,
)

CROP = PairedTransformConfig(crop_size=32)


def ids_of(loader) -> list[str]:
    return [i for batch in loader for i in batch["id"]]


def test_item_is_float_rgb_chw_and_matches_the_stored_image(pairs):
    rows = pairs.to_dict()
    jpeg = io.BytesIO()
    Image.open(io.BytesIO(rows["hq"][5]["bytes"])).save(jpeg, format="JPEG")
    rows["hq"][5] = {"bytes": jpeg.getvalue(), "path": None}  # a JPEG goes the Pillow way
    data = datasets.Dataset.from_dict(rows, features=schema.FEATURES)
    ds = PairedImageDataset(data)  # no transform: whole images
    for index in (3, 5):
        item = ds[index]
        assert set(item) == {"lq", "hq", "category", "id"}
        assert item["id"] == f"p{index:03d}" and item["category"] == schema.CATEGORIES[index % 6]
        for side in ("lq", "hq"):
            x = item[side]
            assert x.dtype == torch.float32 and x.shape == (3, 64, 64) and x.is_contiguous()
            expected = load_rgb(rows[side][index]["bytes"])  # Pillow, the reference policy
            assert torch.equal((x * 255).round().to(torch.uint8).permute(1, 2, 0), torch.from_numpy(np.array(expected)))
        assert not torch.equal(item["lq"], item["hq"])


def test_identical_pair_rows_give_identical_crops(pairs):
    rows = pairs.to_dict()
    rows["lq"] = rows["hq"]
    ds = PairedImageDataset(datasets.Dataset.from_dict(rows, features=schema.FEATURES), CROP, crops_per_image=4)
    for item in ds[0] + ds[1]:
        assert torch.equal(item["lq"], item["hq"])


def test_crops_per_image_and_collate(pairs):
    ds = PairedImageDataset(pairs, CROP, crops_per_image=3)
    items = [ds[0], ds[1]]
    assert isinstance(items[0], list) and len(items[0]) == 3
    batch = collate_pairs(items)
    assert batch["lq"].shape == (6, 3, 32, 32) and batch["hq"].shape == (6, 3, 32, 32)
    assert batch["id"] == ["p000"] * 3 + ["p001"] * 3
    # the three crops of one pair are (almost surely) different regions
    assert not torch.equal(batch["hq"][0], batch["hq"][1]) or not torch.equal(batch["hq"][1], batch["hq"][2])


def test_skip_policy_drops_items_and_bad_input_is_named(pair_factory):
    ds = PairedImageDataset(pair_factory(4, 24), PairedTransformConfig(crop_size=32, small_images="skip"))
    assert ds[0] is None and collate_pairs([ds[0], ds[1]]) is None
    with pytest.raises(ValueError, match=r"'p000'.*smaller"):
        PairedImageDataset(pair_factory(2, 24), CROP)[0]
    with pytest.raises(ValueError, match="no column.*hq"):
        PairedImageDataset(pair_factory(2, 24).remove_columns("hq"))
    with pytest.raises(ValueError, match="different sizes.*set a crop_size"):
        collate_pairs([PairedImageDataset(pair_factory(1, 24))[0], PairedImageDataset(pair_factory(1, 32))[0]])


def test_corrupt_image_bytes_name_the_item(pairs):
    rows = pairs.to_dict()
    rows["hq"][1] = {"bytes": b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "path": None}
    ds = PairedImageDataset(datasets.Dataset.from_dict(rows, features=schema.FEATURES), CROP)
    with pytest.raises(ValueError, match="p001 hq"):
        ds[1]


def test_dataloader_two_workers_covers_each_pair_once(pairs):
    ds = PairedImageDataset(pairs, CROP)
    loader = make_dataloader(ds, batch_size=4, num_workers=2, drop_last=False, seed=0)
    batches = list(loader)
    assert all(b["lq"].shape == (4, 3, 32, 32) for b in batches)
    assert sorted(i for b in batches for i in b["id"]) == sorted(pairs["id"])
    # seeded: the same order again; a new epoch reshuffles
    assert ids_of(make_dataloader(ds, batch_size=4, num_workers=0, drop_last=False, seed=0)) == [
        i for b in batches for i in b["id"]
    ]
    set_epoch(loader, 1)
    assert ids_of(loader) != [i for b in batches for i in b["id"]]


def test_resume_from_a_step_replays_the_same_stream(pairs):
    ds = PairedImageDataset(pairs, CROP, crops_per_image=2)
    full = ids_of(make_dataloader(ds, batch_size=4, num_workers=0, seed=5, epoch=2))
    resumed = ids_of(make_dataloader(ds, batch_size=4, num_workers=0, seed=5, epoch=2, start_step=3))
    assert resumed == full[3 * 4 :] and len(resumed) > 0
    with pytest.raises(ValueError, match="multiple of crops_per_image"):
        make_dataloader(ds, batch_size=3)


def test_ranks_split_map_style_without_overlap(pairs):
    ds = PairedImageDataset(pairs, CROP)
    shares = [
        ids_of(make_dataloader(ds, batch_size=2, num_workers=0, rank=r, world_size=3, drop_last=False))
        for r in range(3)
    ]
    assert sorted(sum(shares, [])) == sorted(pairs["id"])


@pytest.mark.parametrize("num_shards, world_size", [(4, 1), (4, 2), (3, 2)])
def test_iterable_splits_across_ranks_and_workers_without_duplicates_or_gaps(pair_factory, num_shards, world_size):
    data = pair_factory(24, 24)
    seen: list[str] = []
    for rank in range(world_size):
        stream = data.to_iterable_dataset(num_shards=num_shards)
        it = IterablePairedDataset(stream, PairedTransformConfig(crop_size=16), rank=rank, world_size=world_size)
        workers = 2 if num_shards // world_size >= 2 else 1
        seen += ids_of(make_dataloader(it, batch_size=2, num_workers=workers, drop_last=False))
    assert Counter(seen) == Counter(data["id"])


def test_iterable_from_parquet_streaming_and_resume(tmp_path, pair_factory):
    data = pair_factory(16, 24)
    files = []
    for k in range(4):
        path = tmp_path / f"train-{k:05d}-of-00004.parquet"
        data.shard(4, k, contiguous=True).to_parquet(str(path))
        files.append(str(path))
    stream = datasets.load_dataset("parquet", data_files=files, split="train", streaming=True)
    it = IterablePairedDataset(stream, PairedTransformConfig(crop_size=16), rank=0, world_size=1)
    assert it.n_shards == 4
    full = ids_of(make_dataloader(it, batch_size=2, num_workers=2))
    assert sorted(full) == sorted(data["id"])

    def resumed(workers: int, step: int) -> list[str]:
        stream = datasets.load_dataset("parquet", data_files=files, split="train", streaming=True)
        it = IterablePairedDataset(stream, PairedTransformConfig(crop_size=16), rank=0, world_size=1)
        return ids_of(make_dataloader(it, batch_size=2, num_workers=workers, start_step=step))

    # each worker continues exactly where it stopped: nothing repeated, nothing lost ...
    assert Counter(resumed(2, 3)) == Counter(full) - Counter(full[: 3 * 2])
    # ... and with one reader the order is the same too
    single = resumed(0, 0)
    assert resumed(0, 3) == single[3 * 2 :]


def test_iterable_reads_rank_from_the_environment(monkeypatch, pair_factory):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    it = IterablePairedDataset(pair_factory(4, 24).to_iterable_dataset(num_shards=2))
    assert (it.rank, it.world_size) == (1, 2)
    assert len(list(it)) == 2
    with pytest.raises(ValueError, match="rank"):
        IterablePairedDataset(pair_factory(2, 24).to_iterable_dataset(), rank=2, world_size=2)
    with pytest.raises(ValueError, match="PairedImageDataset"):
        IterablePairedDataset(pair_factory(2, 24))


def test_loads_the_built_dataset(built_dir):
    ds = datasets.load_dataset(str(built_dir), "all", split="train")
    pairs = PairedImageDataset(ds, PairedTransformConfig(crop_size=32))
    batch = next(iter(make_dataloader(pairs, batch_size=6, num_workers=0)))
    assert batch["lq"].shape == (6, 3, 32, 32)
    assert set(batch["category"]) <= set(schema.CATEGORIES)
    assert np.isclose(float(batch["hq"].max()), 1.0, atol=0.5) and float(batch["hq"].min()) >= 0.0


def test_workers_get_the_memory_mapped_table_not_a_copy(built_dir):
    import pickle

    ds = datasets.load_dataset(str(built_dir), "all", split="train")
    image_bytes = sum(
        len(cell["bytes"]) for side in ("lq", "hq") for cell in ds.cast_column(side, datasets.Image(decode=False))[side]
    )
    pickled = len(pickle.dumps(PairedImageDataset(ds, CROP)))  # what spawn/forkserver workers receive
    assert pickled < image_bytes / 10, (pickled, image_bytes)
