"""raysweep.augment: exact normalization, content-preserving crop/flip, seeded reproducibility."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from raysweep.augment import AUGMENTATIONS, CROP_PADDING, BatchTransform, random_crop, random_flip

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
MEAN, STD = (0.1, 0.5, 0.9), (0.2, 0.25, 0.3)


def batch(b: int = 16, c: int = 3, h: int = 12, w: int = 12, device: str = "cpu") -> torch.Tensor:
    """Random uint8 images with no symmetry, so a flip or shift is always detectable."""
    generator = torch.Generator().manual_seed(123)
    x = torch.randint(1, 256, (b, c, h, w), dtype=torch.uint8, generator=generator)
    return x.to(device)


def normalized(x: torch.Tensor, mean=MEAN, std=STD) -> torch.Tensor:
    m = torch.tensor(mean, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, -1, 1, 1)
    return (x.float() / 255.0 - m) / s


def seeded(device: str, seed: int = 0) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


@pytest.mark.parametrize("device", DEVICES)
def test_normalization_matches_the_formula_exactly(device) -> None:
    x = batch(device=device)
    transform = BatchTransform(MEAN, STD, [], device)
    for train in (False, True):
        out = transform(x, train=train)
        assert out.dtype == torch.float32 and out.shape == x.shape and out.device == x.device
        assert out.is_contiguous()
        assert torch.equal(out, normalized(x))


@pytest.mark.parametrize("device", DEVICES)
def test_eval_batches_are_never_augmented(device) -> None:
    x = batch(device=device)
    transform = BatchTransform(MEAN, STD, ["crop", "flip"], device)
    assert torch.equal(transform(x, train=False, generator=seeded(device)), normalized(x))
    assert not torch.equal(transform(x, train=True, generator=seeded(device)), normalized(x))


def shifted_candidates(image: torch.Tensor, padding: int) -> list[tuple[int, int, torch.Tensor]]:
    """Every crop of the zero-padded image: the image shifted by (dy - p, dx - p), zeros shown."""
    h, w = image.shape[-2:]
    padded = F.pad(image, (padding,) * 4)
    return [
        (dy, dx, padded[:, dy : dy + h, dx : dx + w])
        for dy in range(2 * padding + 1)
        for dx in range(2 * padding + 1)
    ]


@pytest.mark.parametrize("device", DEVICES)
def test_crop_is_a_zero_padded_shift_with_a_per_image_offset(device) -> None:
    x = batch(b=32, h=10, w=10, device=device)
    out = random_crop(x, CROP_PADDING, seeded(device))
    assert out.shape == x.shape and out.dtype == torch.uint8
    offsets = set()
    for original, cropped in zip(x, out, strict=True):
        matches = [
            (dy, dx)
            for dy, dx, candidate in shifted_candidates(original, CROP_PADDING)
            if torch.equal(candidate, cropped)
        ]
        assert len(matches) == 1  # the crop is exactly one shift of the padded original
        offsets.add(matches[0])
    assert len(offsets) > 5  # offsets differ per image
    assert all(0 <= dy <= 8 and 0 <= dx <= 8 for dy, dx in offsets)


def test_crop_of_an_unshifted_offset_is_the_original() -> None:
    x = batch(b=256, h=6, w=6)
    out = random_crop(x, CROP_PADDING, seeded("cpu"))
    unchanged = [torch.equal(a, b) for a, b in zip(x, out, strict=True)]
    assert any(unchanged)  # offset (4, 4) happens, 1 in 81 per image


@pytest.mark.parametrize("device", DEVICES)
def test_flip_mirrors_exactly_the_chosen_images(device) -> None:
    x = batch(b=64, device=device)
    out = random_flip(x, seeded(device))
    flipped = [torch.equal(o, i.flip(-1)) for o, i in zip(out, x, strict=True)]
    kept = [torch.equal(o, i) for o, i in zip(out, x, strict=True)]
    assert all(f != k for f, k in zip(flipped, kept, strict=True))  # each one or the other
    assert 16 < sum(flipped) < 48  # about half


@pytest.mark.parametrize("device", DEVICES)
def test_seeded_generator_reproduces_the_batch(device) -> None:
    x = batch(b=32, device=device)
    transform = BatchTransform(MEAN, STD, ["crop", "flip"], device)
    a = transform(x, train=True, generator=seeded(device, 7))
    b = transform(x, train=True, generator=seeded(device, 7))
    c = transform(x, train=True, generator=seeded(device, 8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("device", DEVICES)
def test_augmented_output_is_a_normalized_flip_and_crop(device) -> None:
    x = batch(b=8, device=device)
    out = BatchTransform((0.0,) * 3, (1.0,) * 3, ["flip", "crop"], device)(
        x, train=True, generator=seeded(device)
    )
    restored = (out * 255.0).round().to(torch.uint8)
    for original, image in zip(x, restored, strict=True):
        candidates = shifted_candidates(original, 4) + shifted_candidates(original.flip(-1), 4)
        assert any(torch.equal(candidate, image) for _, _, candidate in candidates)


@pytest.mark.parametrize("device", DEVICES)
def test_channels_last_output(device) -> None:
    x = batch(device=device)
    plain = BatchTransform(MEAN, STD, ["crop", "flip"], device)
    last = BatchTransform(MEAN, STD, ["crop", "flip"], device, channels_last=True)
    a = plain(x, train=True, generator=seeded(device))
    b = last(x, train=True, generator=seeded(device))
    assert b.is_contiguous(memory_format=torch.channels_last) and not b.is_contiguous()
    assert torch.equal(a, b)
    assert last(x, train=False).is_contiguous(memory_format=torch.channels_last)


def test_single_channel_batches() -> None:
    x = batch(c=1)
    transform = BatchTransform((0.5,), (0.25,), ["crop"], "cpu")
    out = transform(x, train=False)
    assert torch.equal(out, normalized(x, (0.5,), (0.25,)))


def test_bad_arguments_raise_value_errors() -> None:
    with pytest.raises(ValueError, match="unknown augmentation"):
        BatchTransform(MEAN, STD, ["crop", "rotate"], "cpu")
    with pytest.raises(ValueError, match="std"):
        BatchTransform(MEAN, (0.2, 0.0, 0.3), [], "cpu")
    with pytest.raises(ValueError, match="channels"):
        BatchTransform(MEAN, STD[:2], [], "cpu")
    transform = BatchTransform(MEAN, STD, [], "cpu")
    with pytest.raises(ValueError, match="uint8"):
        transform(batch().float(), train=False)
    with pytest.raises(ValueError, match="channels"):
        transform(batch(c=1), train=False)
    assert AUGMENTATIONS == ("crop", "flip")
