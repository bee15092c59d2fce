// Packed activations through the CPU backend (tensor/packing.h): a Winograd convolution leaves its
// output packed; batch norm, ReLU, the residual add and their backwards keep packed operands packed;
// a strided operand beside packed ones is packed, not the other way round; and every result equals the
// reference backend's (and, for the elementwise kernels, the strided kernels' bit for bit).
#include "../support/winograd.h"
#include "parity_util.h"
#include "resin/tensor/packing.h"

namespace resin::test {
namespace {

using backend::Conv2dParams;

Tensor packed_copy(const Tensor& t0, Layout l) {
  Tensor t = in_layout(t0, l);
  pack(t);
  return t;
}

// The bits of t's values (read strided: unpacks).
std::vector<float> bits(const Tensor& t) { return t.values<float>(); }

TEST(PackedKernels, ABasicBlockStaysPackedAndMatchesTheReference) {
  if (!onednn_has_winograd()) GTEST_SKIP() << "no AVX-512: oneDNN has no Winograd convolution here";
  const Shape s{2, 32, 8, 8};
  const Conv2dParams p{1, 1, 1, 1, 1, 1, 1};
  const Tensor x0 = rnd(s), w1 = rnd({32, 32, 3, 3}), w2 = rnd({32, 32, 3, 3}), g = rnd({32}), b = rnd({32});
  const Tensor gout0 = rnd(s);
  for (Layout l : {Layout::channels_last, Layout::nchw}) {
    const std::string what = layout_name(l);
    // CPU: conv → BN + ReLU → conv → BN → + x → ReLU, then the backward of the tail, all packed.
    const Tensor x = in_layout(x0, l);
    Tensor y1 = out_like(s, l), z = out_like(s, l), y2 = out_like(s, l), u = out_like(s, l),
           out = out_like(s, l);
    Tensor m1 = empty({32}), v1 = empty({32}), m2 = empty({32}), v2 = empty({32});
    const int64_t unpacks = unpack_count();
    cpu().conv2d_forward(x, w1, Tensor(), y1, p);
    EXPECT_NE(packed_data(x), nullptr) << what << ": the convolution packs its strided input";
    EXPECT_NE(packed_data(y1), nullptr) << what << ": the convolution leaves its output packed";
    cpu().batch_norm_relu_forward_training(y1, g, b, z, m1, v1, 1e-5);
    cpu().conv2d_forward(z, w2, Tensor(), y2, p);
    cpu().batch_norm_forward_training(y2, g, b, u, m2, v2, 1e-5);
    cpu().add_relu(u, x, out);
    const Tensor gout = in_layout(gout0, l);  // strided: packed by the backward below
    Tensor gu = out_like(s, l), gy2 = out_like(s, l), gg = empty({32}), gb = empty({32});
    cpu().add_relu_backward(out, gout, Tensor(), gu);
    cpu().batch_norm_backward(y2, gu, m2, v2, g, gy2, gg, gb, 1e-5);
    Tensor gz = out_like(s, l), gw2 = empty(w2.shape());
    cpu().conv2d_backward(z, gy2, w2, gz, gw2, Tensor(), p);
    for (const Tensor* t :
         std::initializer_list<const Tensor*>{&y1, &z, &y2, &u, &out, &gout, &gu, &gy2, &gz})
      EXPECT_NE(packed_data(*t), nullptr) << what;
    EXPECT_EQ(unpack_count(), unpacks) << what << ": nothing on this path should unpack";

    // The reference backend, strided.
    Tensor ry1 = empty(s), rz = empty(s), ry2 = empty(s), ru = empty(s), rout = empty(s);
    Tensor rm1 = empty({32}), rv1 = empty({32}), rm2 = empty({32}), rv2 = empty({32});
    ref().conv2d_forward(x0, w1, Tensor(), ry1, p);
    ref().batch_norm_relu_forward_training(ry1, g, b, rz, rm1, rv1, 1e-5);
    ref().conv2d_forward(rz, w2, Tensor(), ry2, p);
    ref().batch_norm_forward_training(ry2, g, b, ru, rm2, rv2, 1e-5);
    ref().add_relu(ru, x0, rout);
    Tensor rgu = empty(s), rgy2 = empty(s), rgg = empty({32}), rgb = empty({32}), rgz = empty(s),
           rgw2 = empty(w2.shape());
    ref().add_relu_backward(rout, gout0, Tensor(), rgu);
    ref().batch_norm_backward(ry2, rgu, rm2, rv2, g, rgy2, rgg, rgb, 1e-5);
    ref().conv2d_backward(rz, rgy2, w2, rgz, rgw2, Tensor(), p);
    expect_close(y1, ry1, what + " conv1");
    expect_close(z, rz, what + " bn+relu");
    expect_close(m1, rm1, what + " mean");
    expect_close(v1, rv1, what + " var");
    expect_close(out, rout, what + " add+relu");
    expect_close(gu, rgu, what + " add+relu backward");
    expect_close(gy2, rgy2, what + " bn backward");
    expect_close(gg, rgg, what + " bn dgamma");
    expect_close(gb, rgb, what + " bn dbeta");
    expect_close(gz, rgz, what + " conv backward data");
    expect_close(gw2, rgw2, what + " conv backward weights");
    EXPECT_EQ(bits(x), x0.values<float>()) << what << ": packing x changed no value";
  }
}

// The elementwise kernels on packed operands give the strided kernels' results bit for bit; a strided
// operand beside a packed one is packed (its values unchanged), the output is packed.
TEST(PackedKernels, ElementwiseKernelsMatchTheStridedOnesExactly) {
  const Shape s{3, 16, 5, 4};
  const Tensor a0 = rnd(s), b0 = rnd(s), g0 = rnd(s);
  for (Layout l : {Layout::channels_last, Layout::nchw}) {
    const std::string what = layout_name(l);
    Tensor y = out_like(s, l), want = out_like(s, l);
    const Tensor a = packed_copy(a0, l), b = in_layout(b0, l);
    cpu().add_relu(a, b, y);
    cpu().add_relu(in_layout(a0, l), in_layout(b0, l), want);
    EXPECT_NE(packed_data(b), nullptr) << what;
    EXPECT_NE(packed_data(y), nullptr) << what;
    EXPECT_EQ(bits(y), bits(want)) << what << " add_relu";
    EXPECT_EQ(bits(b), b0.values<float>()) << what;

    Tensor gx = out_like(s, l), gx_want = out_like(s, l);
    const Tensor yp = packed_copy(want, l), g1 = packed_copy(g0, l), g2 = in_layout(b0, l);
    cpu().add_relu_backward(yp, g1, g2, gx);
    cpu().add_relu_backward(want, in_layout(g0, l), in_layout(b0, l), gx_want);
    EXPECT_NE(packed_data(gx), nullptr) << what;
    EXPECT_EQ(bits(gx), bits(gx_want)) << what << " add_relu backward";

    for (backend::Binary op : {backend::Binary::add, backend::Binary::sub, backend::Binary::mul}) {
      Tensor o = out_like(s, l), o_want = out_like(s, l);
      expect_native(what, [&] { cpu().binary(op, in_layout(a0, l), packed_copy(g0, l), o); });
      cpu().binary(op, in_layout(a0, l), in_layout(g0, l), o_want);
      EXPECT_NE(packed_data(o), nullptr) << what;
      EXPECT_EQ(bits(o), bits(o_want)) << what << " binary " << static_cast<int>(op);
    }

    // In place: the output is one of the packed inputs.
    const Tensor ip = packed_copy(a0, l);
    cpu().add_relu(ip, in_layout(b0, l), ip);
    EXPECT_NE(packed_data(ip), nullptr) << what;
    EXPECT_EQ(bits(ip), bits(want)) << what << " add_relu in place";

    Tensor r = out_like(s, l), r_want = out_like(s, l);
    cpu().unary(backend::Unary::relu, packed_copy(a0, l), r, {});
    cpu().unary(backend::Unary::relu, in_layout(a0, l), r_want, {});
    EXPECT_NE(packed_data(r), nullptr) << what;
    EXPECT_EQ(bits(r), bits(r_want)) << what << " relu";
  }
}

// An operand that cannot be packed (a view into a larger buffer) sends the op to its strided path:
// the packed operand is unpacked, the output is strided, the values are right.
TEST(PackedKernels, AnUnpackableOperandMakesEverythingStrided) {
  const Shape s{2, 16, 3, 3};
  const Tensor a0 = rnd(s), b0 = rnd(s);
  const Tensor a = packed_copy(a0, Layout::nchw), b = in_layout(b0, Layout::strided);
  Tensor y = out_like(s, Layout::nchw), want = empty(s);
  const int64_t unpacks = unpack_count();
  cpu().add_relu(a, b, y);
  EXPECT_EQ(unpack_count(), unpacks + 1);
  EXPECT_EQ(packed_data(a), nullptr);
  EXPECT_EQ(packed_data(y), nullptr);
  ref().add_relu(a0, b0, want);
  EXPECT_EQ(bits(y), bits(want));
}

// Batch norm (training with and without the ReLU, its backward, and inference) on packed activations:
// against the reference backend, and against the strided (channels-last) native kernel on the same
// data at every offset (at a mean of 1000 an f32 ulp of the mean is 6e-5, hence the looser bound).
struct BnRun {
  Tensor y, m, v, yi, gx, gg, gb;
};

BnRun run_bn(const Tensor& x, const Tensor& gy, const Tensor& g, const Tensor& b, bool relu,
             const std::string& what) {
  const Shape& s = x.shape();
  const int64_t C = s[1];
  BnRun r{out_like(s, Layout::channels_last), empty({C}), empty({C}), out_like(s, Layout::channels_last),
          out_like(s, Layout::channels_last), empty({C}), empty({C})};
  if (relu)
    expect_native(what, [&] { cpu().batch_norm_relu_forward_training(x, g, b, r.y, r.m, r.v, 1e-5); });
  else
    expect_native(what, [&] { cpu().batch_norm_forward_training(x, g, b, r.y, r.m, r.v, 1e-5); });
  cpu().batch_norm_forward_inference(x, g, b, r.m, r.v, r.yi, 1e-5);
  if (relu)
    expect_native(what,
                  [&] { cpu().batch_norm_relu_backward(x, r.y, gy, r.m, r.v, g, r.gx, r.gg, r.gb, 1e-5); });
  else
    expect_native(what, [&] { cpu().batch_norm_backward(x, gy, r.m, r.v, g, r.gx, r.gg, r.gb, 1e-5); });
  return r;
}

TEST(PackedKernels, BatchNormOnPackedActivations) {
  for (const Shape& s : {Shape{4, 32, 6, 5}, Shape{2, 16, 9, 9}, Shape{3, 48, 1, 1}})
    for (double offset : {0.0, 1000.0})
      for (bool relu : {false, true}) {
        const std::string what = s.str() + "/" + std::to_string(offset) + (relu ? "/relu" : "");
        const int64_t C = s[1];
        const Tensor x0 = add(mul(rnd(s), 0.5), offset), g = rnd({C}), b = rnd({C}), gy0 = rnd(s);
        const BnRun p = run_bn(packed_copy(x0, Layout::channels_last),
                               packed_copy(gy0, Layout::channels_last), g, b, relu, what);
        for (const Tensor* t : {&p.y, &p.yi, &p.gx}) EXPECT_NE(packed_data(*t), nullptr) << what;
        const BnRun st = run_bn(in_layout(x0, Layout::channels_last), in_layout(gy0, Layout::channels_last),
                                g, b, relu, what + " strided");
        const double rtol = offset == 0 ? 1e-4 : 1e-3, stol = offset == 0 ? 1e-5 : 1e-4;
        expect_close(p.m, st.m, what + " mean vs strided", 1e-6);
        expect_close(p.v, st.v, what + " var vs strided");
        expect_close(p.y, st.y, what + " y vs strided", rtol, stol);
        expect_close(p.yi, st.yi, what + " inference vs strided", rtol, stol);
        expect_close(p.gx, st.gx, what + " gx vs strided", rtol, stol);
        expect_close(p.gg, st.gg, what + " dgamma vs strided", rtol, stol);
        expect_close(p.gb, st.gb, what + " dbeta vs strided", rtol, stol);

        Tensor ry = empty(s), rm = empty({C}), rv = empty({C}), ryi = empty(s);
        Tensor rgx = empty(s), rgg = empty({C}), rgb = empty({C});
        if (relu) {
          ref().batch_norm_relu_forward_training(x0, g, b, ry, rm, rv, 1e-5);
          ref().batch_norm_relu_backward(x0, ry, gy0, rm, rv, g, rgx, rgg, rgb, 1e-5);
        } else {
          ref().batch_norm_forward_training(x0, g, b, ry, rm, rv, 1e-5);
          ref().batch_norm_backward(x0, gy0, rm, rv, g, rgx, rgg, rgb, 1e-5);
        }
        ref().batch_norm_forward_inference(x0, g, b, rm, rv, ryi, 1e-5);
        expect_close(p.m, rm, what + " mean", 1e-6);
        expect_close(p.v, rv, what + " var");
        if (offset == 0) {  // against f64 (x − mean in f32 loses digits of a large mean in any f32 kernel)
          expect_close(p.y, ry, what + " y");
          expect_close(p.yi, ryi, what + " inference");
          expect_close(p.gx, rgx, what + " gx");
          expect_close(p.gg, rgg, what + " dgamma");
          expect_close(p.gb, rgb, what + " dbeta");
        }
      }
}

}  // namespace
}  // namespace resin::test
