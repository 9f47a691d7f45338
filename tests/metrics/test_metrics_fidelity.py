"""PSNR/SSIM against a reference written from BasicSR's formulas (numpy + cv2, as BasicSR does)."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from ggt_datasets.metrics import psnr, ssim, to_tensor

TOL = 1e-6


# ---- reference: BasicSR's calculate_psnr / calculate_ssim re-derived (HWC, BGR, uint8) ----
def _ref_y(img: np.ndarray) -> np.ndarray:
    """BasicSR's to_y_channel on a uint8 BGR (or 1-channel) image, float32 steps included."""
    img = img.astype(np.float32) / 255.0
    if img.ndim == 3 and img.shape[2] == 3:
        y = np.dot(img, [24.966, 128.553, 65.481]) + 16.0
        img = (y / 255.0).astype(np.float32)[..., None]  # _convert_output_type_range
    return img * 255.0


def _ref_prepare(a, b, crop_border, test_y):
    a = a[..., None] if a.ndim == 2 else a
    b = b[..., None] if b.ndim == 2 else b
    if crop_border:
        a = a[crop_border:-crop_border, crop_border:-crop_border, ...]
        b = b[crop_border:-crop_border, crop_border:-crop_border, ...]
    if test_y:
        a, b = _ref_y(a), _ref_y(b)
    return a.astype(np.float64), b.astype(np.float64)


def ref_psnr(a, b, crop_border=0, test_y=False):
    a, b = _ref_prepare(a, b, crop_border, test_y)
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0 * 255.0 / mse)


def _ref_ssim_1ch(a, b):
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    k = cv2.getGaussianKernel(11, 1.5)
    win = np.outer(k, k.transpose())
    mu1 = cv2.filter2D(a, -1, win)[5:-5, 5:-5]
    mu2 = cv2.filter2D(b, -1, win)[5:-5, 5:-5]
    s1 = cv2.filter2D(a**2, -1, win)[5:-5, 5:-5] - mu1**2
    s2 = cv2.filter2D(b**2, -1, win)[5:-5, 5:-5] - mu2**2
    s12 = cv2.filter2D(a * b, -1, win)[5:-5, 5:-5] - mu1 * mu2
    m = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s1 + s2 + c2))
    return m.mean()


def ref_ssim(a, b, crop_border=0, test_y=False):
    a, b = _ref_prepare(a, b, crop_border, test_y)
    return float(np.mean([_ref_ssim_1ch(a[..., i], b[..., i]) for i in range(a.shape[2])]))


# ---- degradations of real photos ----
def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert(img.ndim == 2 and "L" or "RGB"))


def _degrade(img: np.ndarray, kind: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "noise":
        return np.clip(img + rng.normal(0, 12, img.shape), 0, 255).round().astype(np.uint8)
    if kind == "blur":
        return cv2.GaussianBlur(img, (7, 7), 2.0)
    return _jpeg(img, 20)


def _rgb_t(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float() / 255.0


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee"])
@pytest.mark.parametrize("kind", ["noise", "blur", "jpeg"])
@pytest.mark.parametrize("crop_border,test_y", [(0, False), (0, True), (4, False), (4, True)])
def test_matches_basicsr_on_real_pairs(real_photo, name, kind, crop_border, test_y):
    hq = real_photo(name)
    lq = _degrade(hq, kind)
    bgr_hq, bgr_lq = hq[..., ::-1].copy(), lq[..., ::-1].copy()  # BasicSR reads BGR with cv2
    want_p = ref_psnr(bgr_lq, bgr_hq, crop_border, test_y)
    want_s = ref_ssim(bgr_lq, bgr_hq, crop_border, test_y)
    got_p = float(psnr(_rgb_t(lq), _rgb_t(hq), crop_border=crop_border, test_y_channel=test_y))
    got_s = float(ssim(_rgb_t(lq), _rgb_t(hq), crop_border=crop_border, test_y_channel=test_y))
    assert abs(got_p - want_p) <= TOL, (got_p, want_p)
    assert abs(got_s - want_s) <= TOL, (got_s, want_s)
    assert 10 < got_p < 45 and 0.2 < got_s < 1.0  # a real degradation, not a trivial pair


def test_batched_equals_one_by_one_and_odd_sizes(real_photo):
    hqs = [real_photo(n, 201) for n in ("astronaut", "rocket", "hubble_deep_field")]
    lqs = [_degrade(h, "noise", seed=i) for i, h in enumerate(hqs)]
    a = torch.cat([_rgb_t(x) for x in lqs])
    b = torch.cat([_rgb_t(x) for x in hqs])
    batch_p = psnr(a, b, crop_border=3, test_y_channel=True)
    batch_s = ssim(a, b, crop_border=3, test_y_channel=True)
    for i, (lq, hq) in enumerate(zip(lqs, hqs, strict=True)):
        bl, bh = lq[..., ::-1].copy(), hq[..., ::-1].copy()
        assert abs(float(batch_p[i]) - ref_psnr(bl, bh, 3, True)) <= TOL
        assert abs(float(batch_s[i]) - ref_ssim(bl, bh, 3, True)) <= TOL
    # odd, non-square sizes
    hq = real_photo("coffee")[:147, :233]
    lq = _degrade(hq, "blur")
    bl, bh = lq[..., ::-1].copy(), hq[..., ::-1].copy()
    for y in (False, True):
        assert abs(float(ssim(_rgb_t(lq), _rgb_t(hq), test_y_channel=y)) - ref_ssim(bl, bh, 0, y)) <= TOL
        assert abs(float(psnr(_rgb_t(lq), _rgb_t(hq), test_y_channel=y)) - ref_psnr(bl, bh, 0, y)) <= TOL


def test_grayscale_and_rgba_files_match_cv2_imread(real_photo, tmp_path):
    """Files as BasicSR reads them: cv2.imread(IMREAD_COLOR) makes gray 3-channel, drops alpha."""
    hq = real_photo("astronaut", 256)
    lq = _degrade(hq, "jpeg")
    gray_hq, gray_lq = cv2.cvtColor(hq, cv2.COLOR_RGB2GRAY), cv2.cvtColor(lq, cv2.COLOR_RGB2GRAY)
    Image.fromarray(gray_hq, "L").save(tmp_path / "g_hq.png")
    Image.fromarray(gray_lq, "L").save(tmp_path / "g_lq.png")
    alpha = np.full(hq.shape[:2] + (1,), 128, np.uint8)
    Image.fromarray(np.concatenate([hq, alpha], -1), "RGBA").save(tmp_path / "a_hq.png")
    Image.fromarray(np.concatenate([lq, alpha], -1), "RGBA").save(tmp_path / "a_lq.png")
    for stem in ("g", "a"):
        p_lq, p_hq = tmp_path / f"{stem}_lq.png", tmp_path / f"{stem}_hq.png"
        bl, bh = cv2.imread(str(p_lq)), cv2.imread(str(p_hq))
        t_lq, t_hq = to_tensor(p_lq), to_tensor(p_hq)
        assert t_lq.shape == (1, 3, 256, 256)
        for y in (False, True):
            assert abs(float(psnr(t_lq, t_hq, test_y_channel=y)) - ref_psnr(bl, bh, 0, y)) <= TOL
            assert abs(float(ssim(t_lq, t_hq, test_y_channel=y)) - ref_ssim(bl, bh, 0, y)) <= TOL


def test_one_channel_tensor_is_its_own_y(real_photo):
    hq = cv2.cvtColor(real_photo("chelsea"), cv2.COLOR_RGB2GRAY)
    lq = _degrade(hq, "noise")
    a = torch.from_numpy(lq)[None, None].float() / 255
    b = torch.from_numpy(hq)[None, None].float() / 255
    for y in (False, True):
        assert abs(float(psnr(a, b, test_y_channel=y)) - ref_psnr(lq, hq, 0, y)) <= TOL
        assert abs(float(ssim(a, b, test_y_channel=y)) - ref_ssim(lq, hq, 0, y)) <= TOL


def test_float_inputs_are_quantised_like_tensor2img(real_photo):
    hq = real_photo("rocket", 128)
    b = _rgb_t(hq)
    a = (b + 0.3 / 255).clamp(0, 1)  # off-grid floats round back to the same 8-bit levels
    assert float(psnr(a, b)) == float("inf")
    assert float(psnr(a, b, quantize=False)) < 60
    assert float(ssim(a, b)) == pytest.approx(1.0, abs=1e-12)


def test_uint8_tensors_are_taken_as_levels(real_photo):
    hq = real_photo("chelsea")
    lq = _degrade(hq, "jpeg")
    u_lq, u_hq = to_tensor(lq, uint8=True), to_tensor(hq, uint8=True)
    assert u_lq.dtype == torch.uint8
    for y in (False, True):
        assert float(psnr(u_lq, u_hq, test_y_channel=y)) == float(psnr(_rgb_t(lq), _rgb_t(hq), test_y_channel=y))
        assert float(ssim(u_lq, u_hq, 3, y)) == float(ssim(_rgb_t(lq), _rgb_t(hq), 3, y))


def test_y_channel_differs_from_rgb_and_identical_is_inf(real_photo):
    hq = real_photo("coffee", 128)
    lq = _degrade(hq, "noise")
    assert float(psnr(_rgb_t(lq), _rgb_t(hq), test_y_channel=True)) != pytest.approx(
        float(psnr(_rgb_t(lq), _rgb_t(hq))), abs=0.1
    )
    assert float(psnr(_rgb_t(hq), _rgb_t(hq))) == float("inf")


@pytest.mark.parametrize(
    "a,b,match",
    [
        (torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 31), "differ in shape"),
        (torch.rand(1, 3, 32, 32) * 255 + 11, torch.rand(1, 3, 32, 32), "divide 0-255"),
        (torch.rand(1, 2, 32, 32), torch.rand(1, 2, 32, 32), "channels"),
        (torch.randint(0, 255, (1, 3, 32, 32)), torch.randint(0, 255, (1, 3, 32, 32)), "uint8"),
        (np.zeros((32, 32, 3)), np.zeros((32, 32, 3)), "to_tensor"),
    ],
)
def test_bad_inputs_raise_value_error(a, b, match):
    with pytest.raises(ValueError, match=match):
        psnr(a, b)


def test_bad_crop_border_and_tiny_ssim():
    x = torch.rand(1, 3, 20, 20)
    with pytest.raises(ValueError, match="crop_border"):
        psnr(x, x, crop_border=10)
    with pytest.raises(ValueError, match="crop_border"):
        psnr(x, x, crop_border=-1)
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(x, x, crop_border=5)


def test_half_precision_and_unquantised_paths(real_photo):
    hq = real_photo("rocket", 160)
    lq = _degrade(hq, "blur")
    a, b = _rgb_t(lq), _rgb_t(hq)
    for y in (False, True):
        want = float(ssim(a, b, 0, y))
        assert float(ssim(a.to(torch.bfloat16), b.to(torch.bfloat16), 0, y)) == pytest.approx(want, abs=0.02)
        # unquantised floats from uint8 levels: the same values up to float rounding
        assert float(ssim(a, b, 0, y, quantize=False)) == pytest.approx(want, abs=1e-5)
        assert float(psnr(a, b, 0, y, quantize=False)) == pytest.approx(float(psnr(a, b, 0, y)), abs=1e-4)


def test_torch_path_used_on_gpus_matches_the_cpu_path(real_photo):
    """GPUs run the torch steps (_to_255, _y_channel, shifted-slice filter); check them on CPU."""
    from ggt_datasets.metrics import fidelity as F

    hq = real_photo("coffee")[:131, :177]
    lq = _degrade(hq, "noise")
    a, b = _rgb_t(lq), _rgb_t(hq)
    for y in (False, True):
        na, nb = F._prepare(a, b, 2, y, True)  # numpy, the CPU path
        ta, tb = F._to_255(a[..., 2:-2, 2:-2], True), F._to_255(b[..., 2:-2, 2:-2], True)
        if y:
            ta, tb = F._y_channel(ta, True), F._y_channel(tb, True)
        ta, tb = F._float64(ta), F._float64(tb)
        assert torch.equal(ta, torch.from_numpy(na)) and torch.equal(tb, torch.from_numpy(nb))
        assert abs(float(F._ssim_255(ta, tb)) - float(F._ssim_255(na, nb))) <= 1e-12


def test_overshoot_is_clamped_like_tensor2img(real_photo):
    hq = _rgb_t(real_photo("astronaut", 64))
    over = hq * 1.6 - 0.3  # a restorer's output running outside [0, 1]
    assert float(psnr(over, hq)) == float(psnr(over.clamp(0, 1), hq))


def test_fast_quantisation_equals_tensor2img_on_every_level_and_its_neighbours():
    """_quantize_np (cv2) must round exactly like numpy: float32, clamp, * 255, round half to even."""
    from ggt_datasets.metrics import fidelity as F

    quarter = (np.arange(0, 256 * 4, dtype=np.float32) / 4) / 255  # levels, halves and quarters
    up, down = np.nextafter(quarter, np.float32(2)), np.nextafter(quarter, np.float32(-1))
    rng = np.random.default_rng(3)
    values = np.concatenate([quarter, up, down, rng.uniform(-0.5, 1.5, 4000).astype(np.float32)])
    for dtype in (np.float32, np.float64):
        x = values.astype(dtype).reshape(1, 1, -1, 8)
        f = x.astype(np.float32)
        want = np.round(np.clip(f, 0, 1) * np.float32(255)).astype(np.uint8)
        assert np.array_equal(F._quantize_np(x), want)


def test_memory_layouts_give_identical_values(real_photo):
    """CHW views of HWC memory (to_tensor's), channels-last batches and contiguous batches agree exactly."""
    hqs = [real_photo(n, 96) for n in ("chelsea", "coffee")]
    lqs = [_degrade(h, "noise") for h in hqs]
    views = [(to_tensor(lq), to_tensor(hq)) for lq, hq in zip(lqs, hqs, strict=True)]
    a, b = torch.cat([v[0] for v in views]).contiguous(), torch.cat([v[1] for v in views]).contiguous()
    cl_a, cl_b = a.contiguous(memory_format=torch.channels_last), b.contiguous(memory_format=torch.channels_last)
    for y in (False, True):
        want = ssim(a, b, test_y_channel=y)
        assert torch.equal(ssim(cl_a, cl_b, test_y_channel=y), want)
        assert torch.equal(torch.cat([ssim(p, q, test_y_channel=y) for p, q in views]), want)
        assert torch.equal(ssim((a * 255).round().to(torch.uint8), (b * 255).round().to(torch.uint8), test_y_channel=y),
                           want)
