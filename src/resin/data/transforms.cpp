#include "resin/data/transforms.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace resin::data {

namespace {

void check_batch(const Tensor& b, const std::string& who) {
  RESIN_CHECK(b.defined(), who, ": batch is undefined");
  RESIN_CHECK(b.dtype() == DType::f32, who, ": expected an f32 batch, got ", b.dtype(),
              " (convert u8 pixels with to_float first)");
  RESIN_CHECK(b.dim() == 4, who, ": expected a batch [B, C, H, W], got shape ", b.shape(),
              " (for one image use a batch of one)");
  RESIN_CHECK(b.is_contiguous(), who, ": expected a contiguous batch, got strides ", b.strides());
}

}  // namespace

Tensor to_float(const Tensor& images, float divisor) {
  RESIN_CHECK(images.defined(), "to_float: tensor is undefined");
  RESIN_CHECK(divisor > 0, "to_float: divisor must be positive, got ", divisor);
  if (images.dtype() == DType::f32) return images;
  RESIN_CHECK(images.dtype() == DType::u8, "to_float: expected u8 or f32, got ", images.dtype());
  Tensor out = empty(images.shape(), {.dtype = DType::f32});
  float* o = out.data<float>();
  if (images.is_contiguous()) {
    const uint8_t* in = images.data<uint8_t>();
    for (int64_t i = 0, n = images.numel(); i < n; ++i) o[i] = static_cast<float>(in[i]) / divisor;
  } else {
    const std::vector<uint8_t> v = images.values<uint8_t>();
    for (size_t i = 0; i < v.size(); ++i) o[i] = static_cast<float>(v[i]) / divisor;
  }
  return out;
}

Compose::Compose(std::vector<TransformPtr> ts) : ts_(std::move(ts)) {
  for (const auto& t : ts_) RESIN_CHECK(t != nullptr, "Compose: null transform");
}

Tensor Compose::apply(Tensor batch, Generator& g) const {
  for (const auto& t : ts_) batch = t->apply(std::move(batch), g);
  return batch;
}

std::string Compose::name() const {
  std::string s = "Compose(";
  for (size_t i = 0; i < ts_.size(); ++i) s += (i ? ", " : "") + ts_[i]->name();
  return s + ")";
}

// ---- Normalize

Normalize::Normalize(std::vector<float> mean, std::vector<float> std)
    : mean_(std::move(mean)), std_(std::move(std)) {
  RESIN_CHECK(!mean_.empty() && mean_.size() == std_.size(), "Normalize: mean and std need the same ",
              "non-zero length, got ", mean_.size(), " and ", std_.size());
  for (float s : std_) RESIN_CHECK(s > 0 && std::isfinite(s), "Normalize: std must be positive, got ", s);
  for (float m : mean_) RESIN_CHECK(std::isfinite(m), "Normalize: mean must be finite, got ", m);
}

Tensor Normalize::apply(Tensor batch, Generator&) const {
  check_batch(batch, "Normalize");
  const int64_t b = batch.size(0), c = batch.size(1), hw = batch.size(2) * batch.size(3);
  RESIN_CHECK(mean_.size() == 1 || static_cast<int64_t>(mean_.size()) == c, "Normalize: ", mean_.size(),
              " mean/std values for a batch with ", c, " channels");
  float* x = batch.data<float>();
  for (int64_t i = 0; i < b; ++i) {
    for (int64_t ch = 0; ch < c; ++ch) {
      const size_t k = mean_.size() == 1 ? 0 : static_cast<size_t>(ch);
      const float m = mean_[k], s = std_[k];
      float* p = x + (i * c + ch) * hw;
      for (int64_t j = 0; j < hw; ++j) p[j] = (p[j] - m) / s;  // sub then div, as torchvision
    }
  }
  return batch;
}

// ---- RandomCrop

RandomCrop::RandomCrop(int64_t padding, float fill, int64_t out_h, int64_t out_w)
    : padding_(padding), fill_(fill), out_h_(out_h), out_w_(out_w) {
  RESIN_CHECK(padding >= 0 && out_h >= 0 && out_w >= 0, "RandomCrop: padding and sizes must be >= 0, got ",
              padding, ", ", out_h, ", ", out_w);
}

RandomCrop::Params RandomCrop::sample(Generator& g, int64_t h, int64_t w) const {
  const int64_t range_h = h + 2 * padding_ - out_h(h), range_w = w + 2 * padding_ - out_w(w);
  RESIN_CHECK(range_h >= 0 && range_w >= 0, "RandomCrop: crop ", out_h(h), "x", out_w(w),
              " is larger than the padded image ", h + 2 * padding_, "x", w + 2 * padding_);
  Params p;
  p.top = static_cast<int64_t>(g.below(static_cast<uint64_t>(range_h + 1)));
  p.left = static_cast<int64_t>(g.below(static_cast<uint64_t>(range_w + 1)));
  return p;
}

void RandomCrop::apply_params(const float* src, float* dst, int64_t c, int64_t h, int64_t w, Params p) const {
  const int64_t oh = out_h(h), ow = out_w(w);
  RESIN_CHECK(p.top >= 0 && p.left >= 0 && p.top <= h + 2 * padding_ - oh && p.left <= w + 2 * padding_ - ow,
              "RandomCrop: offset (", p.top, ", ", p.left, ") outside the padded image");
  // Source column range that lands inside the image, computed once per call: x_src = x + left - pad.
  const int64_t x_lo = std::clamp<int64_t>(padding_ - p.left, 0, ow);
  const int64_t x_hi = std::clamp<int64_t>(w + padding_ - p.left, x_lo, ow);
  for (int64_t ch = 0; ch < c; ++ch) {
    for (int64_t y = 0; y < oh; ++y) {
      float* out = dst + (ch * oh + y) * ow;
      const int64_t sy = y + p.top - padding_;
      if (sy < 0 || sy >= h) {
        std::fill(out, out + ow, fill_);
        continue;
      }
      const float* row = src + (ch * h + sy) * w;
      std::fill(out, out + x_lo, fill_);
      if (x_hi > x_lo)
        std::copy(row + (x_lo + p.left - padding_), row + (x_hi + p.left - padding_), out + x_lo);
      std::fill(out + x_hi, out + ow, fill_);
    }
  }
}

Tensor RandomCrop::apply(Tensor batch, Generator& g) const {
  check_batch(batch, "RandomCrop");
  const int64_t b = batch.size(0), c = batch.size(1), h = batch.size(2), w = batch.size(3);
  const int64_t oh = out_h(h), ow = out_w(w);
  Tensor out = empty({b, c, oh, ow}, {.dtype = DType::f32});
  const float* src = batch.data<float>();
  float* dst = out.data<float>();
  for (int64_t i = 0; i < b; ++i) {
    apply_params(src + i * c * h * w, dst + i * c * oh * ow, c, h, w, sample(g, h, w));
  }
  return out;
}

// ---- RandomHorizontalFlip

RandomHorizontalFlip::RandomHorizontalFlip(double p) : p_(p) {
  RESIN_CHECK(p >= 0 && p <= 1, "RandomHorizontalFlip: p must be in [0, 1], got ", p);
}

void RandomHorizontalFlip::apply_params(float* img, int64_t c, int64_t h, int64_t w, bool flip) {
  if (!flip) return;
  for (int64_t r = 0; r < c * h; ++r) std::reverse(img + r * w, img + (r + 1) * w);
}

Tensor RandomHorizontalFlip::apply(Tensor batch, Generator& g) const {
  check_batch(batch, "RandomHorizontalFlip");
  const int64_t b = batch.size(0), c = batch.size(1), h = batch.size(2), w = batch.size(3);
  float* x = batch.data<float>();
  for (int64_t i = 0; i < b; ++i) apply_params(x + i * c * h * w, c, h, w, sample(g));
  return batch;
}

// ---- RandomErasing

RandomErasing::RandomErasing(double p, double scale_lo, double scale_hi, double ratio_lo, double ratio_hi,
                             float value)
    : p_(p),
      scale_lo_(scale_lo),
      scale_hi_(scale_hi),
      ratio_lo_(ratio_lo),
      ratio_hi_(ratio_hi),
      value_(value) {
  RESIN_CHECK(p >= 0 && p <= 1, "RandomErasing: p must be in [0, 1], got ", p);
  RESIN_CHECK(scale_lo > 0 && scale_lo <= scale_hi && scale_hi <= 1,
              "RandomErasing: need 0 < scale_lo <= ", "scale_hi <= 1, got [", scale_lo, ", ", scale_hi, "]");
  RESIN_CHECK(ratio_lo > 0 && ratio_lo <= ratio_hi, "RandomErasing: need 0 < ratio_lo <= ratio_hi, got [",
              ratio_lo, ", ", ratio_hi, "]");
}

RandomErasing::Params RandomErasing::sample(Generator& g, int64_t h, int64_t w) const {
  Params p;
  if (!(g.uniform() < p_)) return p;
  const double area = static_cast<double>(h * w);
  const double log_lo = std::log(ratio_lo_), log_hi = std::log(ratio_hi_);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * (scale_lo_ + (scale_hi_ - scale_lo_) * g.uniform());
    const double aspect = std::exp(log_lo + (log_hi - log_lo) * g.uniform());
    const auto eh = static_cast<int64_t>(std::lround(std::sqrt(target * aspect)));
    const auto ew = static_cast<int64_t>(std::lround(std::sqrt(target / aspect)));
    if (!(eh < h && ew < w)) continue;
    p.erase = true;
    p.h = eh;
    p.w = ew;
    p.top = static_cast<int64_t>(g.below(static_cast<uint64_t>(h - eh + 1)));
    p.left = static_cast<int64_t>(g.below(static_cast<uint64_t>(w - ew + 1)));
    return p;
  }
  return p;
}

void RandomErasing::apply_params(float* img, int64_t c, int64_t h, int64_t w, const Params& p) const {
  if (!p.erase) return;
  RESIN_CHECK(p.h >= 0 && p.w >= 0 && p.top >= 0 && p.left >= 0 && p.top + p.h <= h && p.left + p.w <= w,
              "RandomErasing: rectangle (", p.top, ", ", p.left, ", ", p.h, "x", p.w, ") outside a ", h, "x",
              w, " image");
  for (int64_t ch = 0; ch < c; ++ch) {
    for (int64_t y = p.top; y < p.top + p.h; ++y) {
      float* row = img + (ch * h + y) * w;
      std::fill(row + p.left, row + p.left + p.w, value_);
    }
  }
}

Tensor RandomErasing::apply(Tensor batch, Generator& g) const {
  check_batch(batch, "RandomErasing");
  const int64_t b = batch.size(0), c = batch.size(1), h = batch.size(2), w = batch.size(3);
  float* x = batch.data<float>();
  for (int64_t i = 0; i < b; ++i) apply_params(x + i * c * h * w, c, h, w, sample(g, h, w));
  return batch;
}

}  // namespace resin::data
