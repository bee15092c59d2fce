// Views share storage; copies do not. Channels-last strides and memory-format queries.
#include <gtest/gtest.h>

#include "resin/resin.h"

namespace resin {
namespace {

Tensor iota(const Shape& s) {
  return arange(0, static_cast<double>(s.numel()), 1, {.dtype = DType::f64}).reshape(s);
}

bool shares(const Tensor& a, const Tensor& b) { return a.impl()->storage() == b.impl()->storage(); }

// Writes v through view `t` at its first element.
void poke(const Tensor& t, double v) { t.data<double>()[0] = v; }

TEST(TensorViews, ReshapeOfContiguousIsAView) {
  Tensor x = iota({2, 3, 4});
  Tensor r = x.reshape({6, 4});
  EXPECT_TRUE(shares(r, x));
  EXPECT_EQ(r.shape(), Shape({6, 4}));
  EXPECT_EQ(r.strides(), Strides({4, 1}));
  EXPECT_EQ(x.reshape({-1}).shape(), Shape({24}));
  EXPECT_EQ(x.view({4, -1, 2}).shape(), Shape({4, 3, 2}));
  EXPECT_EQ(x.flatten(1).shape(), Shape({2, 12}));
  EXPECT_EQ(x.flatten().shape(), Shape({24}));
  EXPECT_EQ(x.flatten(0, 1).shape(), Shape({6, 4}));
  poke(r, -1);
  EXPECT_EQ(x.to_vector()[0], -1);
}

TEST(TensorViews, ReshapeOfNonContiguousCopies) {
  Tensor x = iota({2, 3});
  Tensor t = x.transpose(0, 1);
  Tensor r = t.reshape({6});
  EXPECT_FALSE(shares(r, x));
  EXPECT_EQ(r.to_vector(), (std::vector<double>{0, 3, 1, 4, 2, 5}));
}

TEST(TensorViews, PermuteTransposeShareStorage) {
  Tensor x = iota({2, 3, 4});
  Tensor p = x.permute({2, 0, 1});
  EXPECT_TRUE(shares(p, x));
  EXPECT_EQ(p.shape(), Shape({4, 2, 3}));
  EXPECT_EQ(p.strides(), Strides({1, 12, 4}));
  EXPECT_FALSE(p.is_contiguous());
  EXPECT_EQ(x.permute({-1, 0, 1}).strides(), p.strides());
  Tensor t = x.transpose(-1, 0);
  EXPECT_EQ(t.shape(), Shape({4, 3, 2}));
  EXPECT_EQ(t.strides(), Strides({1, 4, 12}));
  EXPECT_EQ(t.to_vector()[1], 12);  // t[0,0,1] = x[1,0,0]
}

TEST(TensorViews, NarrowSelectOffsets) {
  Tensor x = iota({3, 4});
  Tensor n = x.narrow(1, 1, 2);
  EXPECT_TRUE(shares(n, x));
  EXPECT_EQ(n.offset(), 1);
  EXPECT_EQ(n.to_vector(), (std::vector<double>{1, 2, 5, 6, 9, 10}));
  Tensor s = x.select(0, -1);
  EXPECT_EQ(s.shape(), Shape({4}));
  EXPECT_EQ(s.offset(), 8);
  EXPECT_EQ(s.to_vector(), (std::vector<double>{8, 9, 10, 11}));
  Tensor nn = n.narrow(0, 1, 2).select(1, 1);
  EXPECT_EQ(nn.to_vector(), (std::vector<double>{6, 10}));
  poke(nn, 100);
  EXPECT_EQ(x.to_vector()[6], 100);
  EXPECT_EQ(x.narrow(0, 3, 0).numel(), 0);
}

TEST(TensorViews, ExpandUsesZeroStrides) {
  Tensor x = iota({3, 1});
  Tensor e = x.expand({2, 3, 4});
  EXPECT_TRUE(shares(e, x));
  EXPECT_EQ(e.strides(), Strides({0, 1, 0}));
  EXPECT_EQ(e.to_vector()[4 * 2 + 3], 2);  // e[0,2,3] = x[2,0]
  EXPECT_EQ(x.expand({-1, 5}).shape(), Shape({3, 5}));
  EXPECT_FALSE(e.is_non_overlapping_dense());
  // Copying an expanded tensor materialises it.
  Tensor c = e.contiguous();
  EXPECT_FALSE(shares(c, x));
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_EQ(c.to_vector(), e.to_vector());
}

TEST(TensorViews, SqueezeUnsqueeze) {
  Tensor x = iota({2, 1, 3});
  Tensor s = x.squeeze(1);
  EXPECT_TRUE(shares(s, x));
  EXPECT_EQ(s.shape(), Shape({2, 3}));
  EXPECT_EQ(x.squeeze(0).shape(), x.shape()) << "squeezing a non-1 dim is a no-op";
  EXPECT_EQ(x.squeeze(-2).shape(), Shape({2, 3}));
  Tensor u = s.unsqueeze(-1);
  EXPECT_EQ(u.shape(), Shape({2, 3, 1}));
  EXPECT_TRUE(shares(u, x));
  EXPECT_EQ(s.unsqueeze(0).shape(), Shape({1, 2, 3}));
  EXPECT_EQ(s.unsqueeze(2).shape(), Shape({2, 3, 1}));
  // Squeezing a transposed tensor keeps it a view.
  Tensor t = iota({3, 1, 2}).transpose(0, 2);
  EXPECT_TRUE(shares(t.squeeze(1), t));
  EXPECT_EQ(t.squeeze(1).to_vector(), (std::vector<double>{0, 2, 4, 1, 3, 5}));
}

TEST(TensorViews, ContiguousAndClone) {
  Tensor x = iota({2, 3});
  EXPECT_TRUE(x.contiguous().is_same(x));
  Tensor c = x.clone();
  EXPECT_FALSE(shares(c, x));
  EXPECT_EQ(c.to_vector(), x.to_vector());
  Tensor t = x.transpose(0, 1).contiguous();
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_EQ(t.to_vector(), (std::vector<double>{0, 3, 1, 4, 2, 5}));
  Tensor d = x.detach();
  EXPECT_TRUE(shares(d, x));
}

TEST(TensorLayout, ChannelsLastStrides) {
  EXPECT_EQ(channels_last_strides({2, 3, 4, 5}), Strides({60, 1, 15, 3}));
  EXPECT_EQ(contiguous_strides({2, 3, 4, 5}), Strides({60, 20, 5, 1}));
  EXPECT_THROW(channels_last_strides({2, 3}), Error);
  // A zero dim makes no elements but the strides still multiply the others: an error, not overflow.
  EXPECT_THROW(contiguous_strides({0, 1, 4294967295, 4294967040}), Error);
  EXPECT_THROW(empty({0, 4294967295, 4294967295}), Error);
  Tensor x = iota({2, 3, 4, 5});
  EXPECT_TRUE(x.is_contiguous());
  EXPECT_FALSE(x.is_channels_last());
  EXPECT_EQ(x.suggest_memory_format(), MemoryFormat::contiguous);
  Tensor cl = x.contiguous(MemoryFormat::channels_last);
  EXPECT_FALSE(shares(cl, x));
  EXPECT_EQ(cl.strides(), Strides({60, 1, 15, 3}));
  EXPECT_TRUE(cl.is_channels_last());
  EXPECT_FALSE(cl.is_contiguous());
  EXPECT_TRUE(cl.is_non_overlapping_dense());
  EXPECT_EQ(cl.suggest_memory_format(), MemoryFormat::channels_last);
  EXPECT_EQ(cl.to_vector(), x.to_vector()) << "same logical values";
  EXPECT_TRUE(cl.contiguous(MemoryFormat::channels_last).is_same(cl));
  Tensor back = cl.contiguous();
  EXPECT_TRUE(back.is_contiguous());
  EXPECT_EQ(back.to_vector(), x.to_vector());
  // A permuted NHWC buffer is channels-last.
  Tensor nhwc = iota({2, 4, 5, 3}).permute({0, 3, 1, 2});
  EXPECT_TRUE(nhwc.is_channels_last());
  EXPECT_EQ(nhwc.suggest_memory_format(), MemoryFormat::channels_last);
  // Layout-preserving allocation.
  EXPECT_EQ(empty_like(cl).strides(), cl.strides());
  EXPECT_EQ(empty_like(x, MemoryFormat::channels_last).strides(), cl.strides());
  // A channel window of an NHWC buffer is not dense, so it is not channels-last (strict check, as
  // torch's is_contiguous(channels_last)); empty_like gives a dense tensor of its shape.
  Tensor window = nhwc.narrow(1, 0, 2);
  EXPECT_FALSE(window.is_channels_last());
  EXPECT_TRUE(empty_like(window).is_non_overlapping_dense());
  EXPECT_EQ(empty_like(window).shape(), window.shape());
  EXPECT_THROW(iota({2, 3}).contiguous(MemoryFormat::channels_last), Error);
}

TEST(TensorLayout, AmbiguousLayouts) {
  // C == 1 or H == W == 1: both layouts describe the same memory; report contiguous.
  Tensor c1 = iota({2, 1, 3, 3});
  EXPECT_TRUE(c1.is_contiguous());
  EXPECT_TRUE(c1.is_channels_last());
  EXPECT_EQ(c1.suggest_memory_format(), MemoryFormat::contiguous);
  Tensor hw1 = iota({2, 5, 1, 1});
  EXPECT_TRUE(hw1.is_channels_last());
  EXPECT_EQ(hw1.suggest_memory_format(), MemoryFormat::contiguous);
  EXPECT_FALSE(iota({2, 3, 4}).is_channels_last()) << "only 4-D tensors are channels-last";
}

TEST(TensorLayout, OpsPreserveChannelsLast) {
  Tensor x = iota({2, 3, 4, 4}).contiguous(MemoryFormat::channels_last);
  EXPECT_TRUE(relu(x).is_channels_last());
  EXPECT_TRUE(add(x, x).is_channels_last());
  EXPECT_TRUE(mul(x, 2.0).is_channels_last());
  Tensor w = ones({5, 3, 3, 3}, {.dtype = DType::f64});
  EXPECT_TRUE(conv2d(x, w, {}, {.padding = {1}}).is_channels_last());
  EXPECT_TRUE(max_pool2d(x, {}).is_channels_last());
  EXPECT_TRUE(batch_norm(x, {}, {}, {}, {}, true).is_channels_last());
  EXPECT_TRUE(pad(x, {0, 0, 0, 0, 1, 1}).is_channels_last());
  EXPECT_TRUE(concat({x, x}, 1).is_channels_last());
}

TEST(TensorViews, ViewsOfLeavesTrackGradients) {
  Tensor x = iota({2, 3});
  x.set_requires_grad(true);
  Tensor v = x.transpose(0, 1).narrow(0, 1, 2).select(1, 0);  // x[0, 1:3]
  EXPECT_FALSE(v.is_leaf());
  EXPECT_TRUE(shares(v, x));
  sum(mul(v, 2.0)).backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{0, 2, 2, 0, 0, 0}));
}

}  // namespace
}  // namespace resin
