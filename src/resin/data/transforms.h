// Data augmentation and normalisation, applied to whole batches.
//
// Choice: transforms work on a batch, a contiguous f32 tensor [B, C, H, W] (the DataLoader collates
// samples and converts u8 pixels to f32 in [0, 1] first, see to_float). Random transforms draw each
// sample's parameters from the Generator in sample order b = 0..B-1, so a batch's result depends only
// on its contents and the generator state; the DataLoader seeds one Generator per (seed, epoch,
// batch) so the output never depends on which worker thread ran it. To transform one image, pass it
// as a batch of one ([1, C, H, W]).
//
// Each random transform exposes sample() (draw one sample's parameters) and a deterministic
// apply_params() (apply them to one image [C, H, W] in place), so the semantics can be checked and
// reused; apply() == for each b: apply_params(image b, sample(g, ...)).
//
// Thread safety: transforms are immutable after construction; apply() is const and may run
// concurrently on different batches with different generators.
//
// Order matters as in torchvision: put RandomCrop (zero = black padding) and flips before Normalize,
// and RandomErasing after Normalize (value 0 then means "the mean colour").
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "resin/core/rng.h"
#include "resin/tensor/tensor.h"

namespace resin::data {

// u8 -> f32 divided by `divisor` (default 255, giving [0, 1] exactly as torchvision's ToTensor); an f32
// input is returned unchanged (no copy). Any shape; a converted result is contiguous.
Tensor to_float(const Tensor& images, float divisor = 255.0f);

class Transform {
 public:
  virtual ~Transform() = default;
  // batch: contiguous f32 [B, C, H, W]. Returns the result (usually `batch`, modified in place; a
  // transform that changes the spatial size returns a new tensor). Throws resin::Error on bad input.
  virtual Tensor apply(Tensor batch, Generator& g) const = 0;
  virtual std::string name() const = 0;
};
using TransformPtr = std::shared_ptr<const Transform>;

// Applies transforms in order.
class Compose : public Transform {
 public:
  explicit Compose(std::vector<TransformPtr> ts);
  Tensor apply(Tensor batch, Generator& g) const override;
  std::string name() const override;

 private:
  std::vector<TransformPtr> ts_;
};

// x = (x - mean[c]) / std[c]. mean/std have 1 entry (all channels) or C entries; std > 0.
class Normalize : public Transform {
 public:
  Normalize(std::vector<float> mean, std::vector<float> std);
  Tensor apply(Tensor batch, Generator& g) const override;
  std::string name() const override { return "Normalize"; }

 private:
  std::vector<float> mean_, std_;
};

// Pads each side by `padding` pixels of value `fill`, then crops an out_h x out_w window (0 = the
// input size) at a uniformly random offset: out[c][y][x] = padded[c][y + top][x + left] with
// top in [0, H + 2*padding - out_h], left in [0, W + 2*padding - out_w].
class RandomCrop : public Transform {
 public:
  struct Params {
    int64_t top = 0, left = 0;
  };
  explicit RandomCrop(int64_t padding, float fill = 0.0f, int64_t out_h = 0, int64_t out_w = 0);
  Tensor apply(Tensor batch, Generator& g) const override;
  std::string name() const override { return "RandomCrop"; }
  // Draws top then left (each with Generator::below).
  Params sample(Generator& g, int64_t h, int64_t w) const;
  // src: [C, H, W] contiguous; dst: [C, oh, ow] contiguous (must not alias src).
  void apply_params(const float* src, float* dst, int64_t c, int64_t h, int64_t w, Params p) const;
  int64_t out_h(int64_t h) const { return out_h_ > 0 ? out_h_ : h; }
  int64_t out_w(int64_t w) const { return out_w_ > 0 ? out_w_ : w; }

 private:
  int64_t padding_;
  float fill_;
  int64_t out_h_, out_w_;
};

// Mirrors the image left-right (x -> W-1-x) with probability p.
class RandomHorizontalFlip : public Transform {
 public:
  explicit RandomHorizontalFlip(double p = 0.5);
  Tensor apply(Tensor batch, Generator& g) const override;
  std::string name() const override { return "RandomHorizontalFlip"; }
  bool sample(Generator& g) const { return g.uniform() < p_; }  // one uniform() per sample
  static void apply_params(float* img, int64_t c, int64_t h, int64_t w, bool flip);

 private:
  double p_;
};

// Random Erasing (Zhong et al., 2017), as in torchvision: with probability p, pick a rectangle with
// area fraction in [scale_lo, scale_hi] and aspect ratio (h/w) log-uniform in [ratio_lo, ratio_hi],
// placed uniformly inside the image, and set it to `value` in every channel. Up to 10 attempts to
// find a rectangle strictly smaller than the image in both sides; if all fail, nothing is erased.
class RandomErasing : public Transform {
 public:
  struct Params {
    bool erase = false;
    int64_t top = 0, left = 0, h = 0, w = 0;
  };
  RandomErasing(double p = 0.5, double scale_lo = 0.02, double scale_hi = 0.33, double ratio_lo = 0.3,
                double ratio_hi = 3.3, float value = 0.0f);
  Tensor apply(Tensor batch, Generator& g) const override;
  std::string name() const override { return "RandomErasing"; }
  // Draw order per sample: uniform() for p; then per attempt uniform() for the area, uniform() for
  // the log-ratio, and on success below(H - h + 1) then below(W - w + 1).
  Params sample(Generator& g, int64_t h, int64_t w) const;
  void apply_params(float* img, int64_t c, int64_t h, int64_t w, const Params& p) const;

 private:
  double p_, scale_lo_, scale_hi_, ratio_lo_, ratio_hi_;
  float value_;
};

}  // namespace resin::data
