// oneDNN CpuBackend vs RefBackend: eltwise, binary (with broadcasting), reduction, softmax,
// matmul, concat, copy and fill. Tolerance: see parity_util.h.
#include "parity_util.h"

namespace resin::test {
namespace {

using backend::Binary;
using backend::Reduce;
using backend::Unary;
using backend::UnaryParams;

struct UnaryCase {
  const char* name;
  Unary op;
  UnaryParams p;
  bool positive;  // domain is x > 0
  bool dnnl_fwd, dnnl_bwd;
};

const UnaryCase kUnaryCases[] = {
    {"neg", Unary::neg, {}, false, true, true},
    {"exp", Unary::exp, {}, false, true, true},
    {"log", Unary::log, {}, true, true, true},
    {"sqrt", Unary::sqrt, {}, true, true, true},
    {"rsqrt", Unary::rsqrt, {}, true, true, true},
    {"abs", Unary::abs, {}, false, true, true},
    {"relu", Unary::relu, {}, false, true, true},
    {"leaky_relu", Unary::leaky_relu, {.alpha = 0.1}, false, true, true},
    {"gelu", Unary::gelu, {}, false, true, true},
    {"gelu_tanh", Unary::gelu_tanh, {}, false, true, true},
    {"sigmoid", Unary::sigmoid, {}, false, true, true},
    {"tanh", Unary::tanh, {}, false, true, true},
    {"softplus", Unary::softplus, {.alpha = 1, .beta = 20}, false, true, true},
    {"softplus_beta2", Unary::softplus, {.alpha = 2, .beta = 20}, false, false, false},
    {"softplus_threshold1", Unary::softplus, {.alpha = 1, .beta = 1}, false, false, false},
    {"pow_2.5", Unary::pow, {.alpha = 2.5}, true, true, true},
    {"pow_3", Unary::pow, {.alpha = 3}, false, true, true},
    {"clamp", Unary::clamp, {.alpha = -0.5, .beta = 0.7}, false, true, false},
};

TEST(KernelParityElementwise, Unary) {
  for (const UnaryCase& c : kUnaryCases)
    for (Layout l : {Layout::nchw, Layout::channels_last, Layout::strided}) {
      const std::string what = std::string(c.name) + "/" + layout_name(l);
      const Shape s{2, 5, 3, 7};
      Tensor x0 = mul(rnd(s), 2.0);
      if (c.positive) x0 = add(abs(x0), 0.1);
      const Tensor x = in_layout(x0, l), gy = in_layout(rnd(s), l);
      // out shares x's layout (strided: a view with the same strides into another buffer).
      Tensor y = out_like(s, l), y_ref = empty(s);
      expect_path(c.dnnl_fwd, what + " fwd", [&] { cpu().unary(c.op, x, y, c.p); });
      ref().unary(c.op, x0, y_ref, c.p);
      expect_close(y, y_ref, what + " fwd");
      Tensor gx = out_like(s, l), gx_ref = empty(s);
      expect_path(c.dnnl_bwd, what + " bwd", [&] { cpu().unary_backward(c.op, x, y_ref, gy, gx, c.p); });
      ref().unary_backward(c.op, x0, y_ref, gy, gx_ref, c.p);
      expect_close(gx, gx_ref, what + " bwd");
    }
}

// Edge values where oneDNN and resin could disagree: relu/clamp at their kinks, softplus far out.
TEST(KernelParityElementwise, UnaryEdges) {
  const Tensor x = from_vector({-30, -0.5, 0, 0.7, 1e-3, 14, 16, 30}, {8});
  const Tensor gy = ones({8});
  for (const UnaryCase& c : kUnaryCases) {
    if (c.positive) continue;
    Tensor y = empty({8}), y_ref = empty({8}), gx = empty({8}), gx_ref = empty({8});
    cpu().unary(c.op, x, y, c.p);
    ref().unary(c.op, x, y_ref, c.p);
    expect_close(y, y_ref, std::string(c.name) + " edges fwd");
    cpu().unary_backward(c.op, x, y_ref, gy, gx, c.p);
    ref().unary_backward(c.op, x, y_ref, gy, gx_ref, c.p);
    expect_close(gx, gx_ref, std::string(c.name) + " edges bwd");
  }
}

TEST(KernelParityElementwise, BinaryBroadcast) {
  const Shape s{2, 3, 4, 5};
  // b's own shape before expansion to s (stride-0 dims).
  const Shape b_shapes[] = {{2, 3, 4, 5}, {1, 3, 1, 1}, {5}, {}, {2, 1, 4, 1}, {3, 4, 1}};
  for (Binary op : {Binary::add, Binary::sub, Binary::mul, Binary::div, Binary::eq, Binary::gt, Binary::lt})
    for (const Shape& bs : b_shapes)
      for (Layout l : {Layout::nchw, Layout::channels_last, Layout::strided}) {
        const std::string what =
            "op" + std::to_string(static_cast<int>(op)) + "/b" + bs.str() + "/" + layout_name(l);
        const Tensor a0 = rnd(s);
        Tensor b0 = rnd(bs);
        if (op == Binary::div) b0 = add(abs(b0), 0.5);
        if (op == Binary::eq) b0 = bs == s ? where(gt(b0, 0.0), a0, b0) : b0;  // some equal pairs
        const Tensor a = in_layout(a0, l), b = b0.expand(s);
        Tensor out = out_like(s, l == Layout::strided ? Layout::nchw : l), out_ref = empty(s);
        expect_path(true, what, [&] { cpu().binary(op, a, b, out); });
        ref().binary(op, a0, b, out_ref);
        expect_close(out, out_ref, what);
      }
}

// An expanded first operand: swapped for commutative ops, reference loops for the others.
TEST(KernelParityElementwise, BinaryExpandedFirstOperand) {
  const Shape s{3, 4, 6};
  const Tensor a = rnd({4, 1}).expand(s), b = rnd(s);
  for (Binary op : {Binary::add, Binary::mul, Binary::sub, Binary::div}) {
    const bool commutes = op == Binary::add || op == Binary::mul;
    Tensor out = empty(s), out_ref = empty(s);
    expect_path(commutes, "expanded a op" + std::to_string(static_cast<int>(op)),
                [&] { cpu().binary(op, a, b, out); });
    ref().binary(op, a, b, out_ref);
    expect_close(out, out_ref, "expanded a");
  }
  Tensor out = empty(s), out_ref = empty(s);  // both expanded: reference
  const Tensor b2 = rnd({3, 1, 6}).expand(s);
  expect_path(false, "both expanded", [&] { cpu().binary(Binary::add, a, b2, out); });
  ref().binary(Binary::add, a, b2, out_ref);
  expect_close(out, out_ref, "both expanded");
}

TEST(KernelParityElementwise, Reduce) {
  const Shape s{3, 5, 4, 7};
  // {0} and {0, 1}: leading dims, the CPU backend's own kernel for sum and mean.
  const std::vector<std::vector<int64_t>> dim_sets = {{1}, {0, 2, 3}, {3}, {0, 1, 2, 3}, {}, {0, 3}, {0}, {0, 1}};
  for (Reduce op : {Reduce::sum, Reduce::mean, Reduce::max, Reduce::min})
    for (const auto& dims : dim_sets)
      for (Layout l : {Layout::nchw, Layout::channels_last, Layout::strided}) {
        Shape keep = s;
        for (int64_t d : dims) keep[static_cast<size_t>(d)] = 1;
        std::string what =
            "op" + std::to_string(static_cast<int>(op)) + "/keep" + keep.str() + "/" + layout_name(l);
        const Tensor x0 = rnd(s), x = in_layout(x0, l);
        Tensor out = out_like(keep, Layout::nchw), out_ref = empty(keep);
        expect_path(true, what, [&] { cpu().reduce(op, x, out); });
        ref().reduce(op, x0, out_ref);
        expect_close(out, out_ref, what);
      }
}

// A dense but permuted tensor with a scalar (the attention's q / sqrt(d) on a [N, H, T, d] view).
TEST(KernelParityElementwise, PermutedWithScalar) {
  const Tensor a0 = rnd({2, 3, 4, 5});
  const Tensor a = in_layout(a0, Layout::nchw).permute({0, 2, 1, 3});
  const Tensor s = full(Shape{}, 0.37).expand(a.shape());
  for (Binary op : {Binary::add, Binary::sub, Binary::mul, Binary::div}) {
    const std::string what = "op" + std::to_string(static_cast<int>(op));
    Tensor out = empty_like(a), out_ref = empty(a.shape());
    ref().fill(out, std::nan(""));
    const auto before = backend::CpuBackend::cache_stats();
    cpu().binary(op, a, s, out);
    EXPECT_GT(backend::CpuBackend::cache_stats().native, before.native) << what << ": expected the native kernel";
    ref().binary(op, a.contiguous(), s, out_ref);
    expect_close(out, out_ref, what);
  }
}

TEST(KernelParityElementwise, Softmax) {
  const Shape s{3, 7, 4, 5};
  for (bool log : {false, true})
    for (int64_t dim : {0, 1, 3})
      for (Layout l : {Layout::nchw, Layout::channels_last, Layout::strided}) {
        const std::string what =
            std::string(log ? "logsoftmax" : "softmax") + "/dim" + std::to_string(dim) + "/" + layout_name(l);
        const Tensor x0 = mul(rnd(s), 3.0), gy0 = rnd(s);
        const Tensor x = in_layout(x0, l), gy = in_layout(gy0, l);
        Tensor y = out_like(s, l), y_ref = empty(s);
        expect_path(true, what + " fwd", [&] { cpu().softmax_forward(x, y, dim, log); });
        ref().softmax_forward(x0, y_ref, dim, log);
        expect_close(y, y_ref, what + " fwd");
        const Tensor yl = in_layout(y_ref, l);
        Tensor gx = out_like(s, l), gx_ref = empty(s);
        expect_path(true, what + " bwd", [&] { cpu().softmax_backward(yl, gy, gx, dim, log); });
        ref().softmax_backward(y_ref, gy0, gx_ref, dim, log);
        expect_close(gx, gx_ref, what + " bwd");
      }
}

TEST(KernelParityElementwise, MatmulStrides) {
  const int64_t B = 3, M = 5, K = 7, N = 9;
  struct Operand {
    const char* name;
    Tensor t;
  };
  const Tensor a_plain = rnd({B, M, K});
  const Tensor a_t = rnd({B, K, M}).transpose(1, 2);              // K stride 1 -> M stride 1
  const Tensor a_no_unit = rnd({B, M, K, 2}).select(3, 1);        // inner strides 2K, 2
  const Tensor a_batch_bcast = rnd({1, M, K}).expand({B, M, K});  // batch stride 0
  const Tensor b_plain = rnd({B, K, N});
  const Tensor b_t = rnd({B, N, K}).transpose(1, 2);
  const Tensor b_batch_bcast = rnd({1, K, N}).expand({B, K, N});
  const Tensor b_no_unit = rnd({K, B, N, 3}).select(3, 0).permute({1, 0, 2});
  for (const Operand& a : {Operand{"a", a_plain}, Operand{"aT", a_t}, Operand{"a_nounit", a_no_unit},
                           Operand{"a_bcast", a_batch_bcast}})
    for (const Operand& b : {Operand{"b", b_plain}, Operand{"bT", b_t}, Operand{"b_bcast", b_batch_bcast},
                             Operand{"b_nounit", b_no_unit}}) {
      const std::string what = std::string(a.name) + "@" + b.name;
      Tensor out = out_like({B, M, N}, Layout::nchw), out_ref = empty({B, M, N});
      const bool both_bcast = a.t.stride(0) == 0 && b.t.stride(0) == 0;
      expect_path(!both_bcast, what, [&] { cpu().matmul(a.t, b.t, out); });
      ref().matmul(a.t, b.t, out_ref);
      expect_close(out, out_ref, what);
    }
}

TEST(KernelParityElementwise, Concat) {
  for (int64_t dim : {0, 1, 3})
    for (Layout l : {Layout::nchw, Layout::channels_last, Layout::strided}) {
      const std::string what = "dim" + std::to_string(dim) + "/" + layout_name(l);
      std::vector<Tensor> xs;
      Shape out_shape{2, 3, 4, 5};
      out_shape[static_cast<size_t>(dim)] = 0;
      for (int64_t len : {3, 0, 1, 2}) {  // includes an empty input
        Shape s{2, 3, 4, 5};
        s[static_cast<size_t>(dim)] = len;
        xs.push_back(in_layout(rnd(s), xs.size() % 2 ? Layout::nchw : l));
        out_shape[static_cast<size_t>(dim)] += len;
      }
      Tensor out = out_like(out_shape, l == Layout::strided ? Layout::nchw : l), out_ref = empty(out_shape);
      expect_path(true, what, [&] { cpu().concat(xs, out, dim); });
      ref().concat(xs, out_ref, dim);
      expect_close(out, out_ref, what, 0, 0);  // a copy: exact
    }
}

TEST(KernelParityElementwise, CopyAndConvert) {
  const Tensor x = rnd({2, 5, 3, 4});
  for (Layout from : {Layout::nchw, Layout::channels_last, Layout::strided})
    for (Layout to : {Layout::nchw, Layout::channels_last, Layout::strided}) {
      const std::string what = std::string(layout_name(from)) + "->" + layout_name(to);
      const Tensor src = in_layout(x, from);
      Tensor dst = out_like(x.shape(), to);
      expect_path(true, what, [&] { cpu().copy(src, dst); });
      EXPECT_EQ(dst.to_vector(), x.to_vector()) << what;
      // f32 -> bf16 -> f32: the same rounding (nearest even) as resin's BFloat16.
      Tensor bf = empty_strided(dst.shape(), dst.strides(), {.dtype = DType::bf16});
      Tensor bf_ref = empty(x.shape(), {.dtype = DType::bf16});
      expect_path(true, what + " to bf16", [&] { cpu().copy(src, bf); });
      ref().copy(x, bf_ref);
      EXPECT_EQ(bf.to_vector(), bf_ref.to_vector()) << what;
      Tensor back = out_like(x.shape(), from);
      expect_path(true, what + " from bf16", [&] { cpu().copy(bf, back); });
      EXPECT_EQ(back.to_vector(), bf_ref.to_vector()) << what;
    }
  // An expanded source materialises; i64 stays on the loops.
  const Tensor e = rnd({1, 3, 1}).expand({4, 3, 5});
  Tensor dst = empty({4, 3, 5});
  expect_path(true, "expanded", [&] { cpu().copy(e, dst); });
  EXPECT_EQ(dst.to_vector(), e.to_vector());
  Tensor i = empty({4, 3, 5}, {.dtype = DType::i64});
  expect_path(false, "to i64", [&] { cpu().copy(dst, i); });
}

TEST(KernelParityElementwise, Fill) {
  for (Layout l : {Layout::nchw, Layout::channels_last, Layout::strided}) {
    Tensor t = out_like({3, 4, 5, 6}, l);
    cpu().fill(t, 2.5);
    for (double v : t.to_vector()) ASSERT_EQ(v, 2.5) << layout_name(l);
  }
  // A view must not write outside itself.
  Tensor base = zeros({4, 6});
  cpu().fill(base.narrow(1, 1, 3), -1.0);
  const auto v = base.to_vector();
  for (int64_t r = 0; r < 4; ++r)
    for (int64_t c = 0; c < 6; ++c)
      EXPECT_EQ(v[static_cast<size_t>(r * 6 + c)], (c >= 1 && c < 4) ? -1.0 : 0.0);
}

}  // namespace
}  // namespace resin::test
