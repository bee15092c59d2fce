// Parity cases for conv2d, batch_norm, layer_norm, and a whole residual block
// relu(bn2(conv2(relu(bn1(conv1(x))))) + x) with shared weights and running statistics.
#include "parity_cases.h"
#include "resin/ops/ops.h"

namespace resin::parity {
namespace {

struct ConvSpec {
  std::string label;
  int64_t n, c, h, w, o, kh, kw;
  std::vector<int64_t> stride, padding, dilation;
  int64_t groups;
  bool bias;
  Layout lx, lw;
  bool grad_x = true, grad_w = true;
};

void conv_case(std::vector<Case>& out, DType t, Data& d, const ConvSpec& s) {
  Conv2dOptions o{s.stride, s.padding, s.dilation, s.groups};
  std::vector<Input> in{
      {d.randn({s.n, s.c, s.h, s.w}, t), s.lx, s.grad_x, false},
      {d.randn({s.o, s.c / s.groups, s.kh, s.kw}, t, 0.5), s.lw, s.grad_w, false},
      s.bias ? arg(d.randn({s.o}, t)) : none(),
  };
  Case c = make_case("conv2d", s.label, t,
                     Attrs().ints("stride", s.stride).ints("padding", s.padding).ints("dilation", s.dilation)
                         .integer("groups", s.groups).json(),
                     std::move(in),
                     [o](const std::vector<Tensor>& x) { return std::vector<Tensor>{conv2d(x[0], x[1], x[2], o)}; });
  c.expect_channels_last = s.lx == Layout::channels_last;
  out.push_back(std::move(c));
}

struct BnSpec {
  std::string label;
  Shape shape;
  Layout layout;
  bool training, affine, running, grads;
  double momentum = 0.1, eps = 1e-5;
  bool relu = false;  // batch_norm_relu
};

void bn_case(std::vector<Case>& out, DType t, Data& d, const BnSpec& s) {
  const int64_t C = s.shape[1];
  auto param = [&](Tensor v) { return s.grads ? arg(std::move(v)) : fixed(std::move(v)); };
  std::vector<Input> in{
      {d.randn(s.shape, t, 2.0), s.layout, s.grads, false},
      s.affine ? param(d.uniform({C}, 0.5, 1.5, t)) : none(),
      s.affine ? param(d.randn({C}, t)) : none(),
      s.running ? state(d.randn({C}, t, 0.5)) : none(),
      s.running ? state(d.uniform({C}, 0.5, 2.0, t)) : none(),
  };
  const bool training = s.training;
  const double momentum = s.momentum, eps = s.eps;
  auto op = s.relu ? &batch_norm_relu : &batch_norm;
  Case c = make_case(s.relu ? "batch_norm_relu" : "batch_norm", s.label, t,
                     Attrs().boolean("training", training).num("momentum", momentum).num("eps", eps).json(),
                     std::move(in), [op, training, momentum, eps](const std::vector<Tensor>& x) {
                       return std::vector<Tensor>{op(x[0], x[3], x[4], x[1], x[2], training, momentum, eps)};
                     });
  c.expect_channels_last = s.layout == Layout::channels_last;
  out.push_back(std::move(c));
}

void ln_case(std::vector<Case>& out, DType t, Data& d, const std::string& label, const Shape& shape, const Shape& ns,
             Layout l, bool weight, bool bias, double eps) {
  Case c = make_case("layer_norm", label, t, Attrs().ints("shape", ns.vec()).num("eps", eps).json(),
                     {arg(d.randn(shape, t, 2.0), l), weight ? arg(d.uniform(ns, 0.5, 1.5, t)) : none(),
                      bias ? arg(d.randn(ns, t)) : none()},
                     [ns, eps](const std::vector<Tensor>& x) {
                       return std::vector<Tensor>{layer_norm(x[0], ns, x[1], x[2], eps)};
                     });
  out.push_back(std::move(c));
}

void residual_case(std::vector<Case>& out, DType t, Data& d, const std::string& label, Layout l, bool training) {
  const int64_t C = 4;
  std::vector<Input> in{{d.randn({2, C, 6, 6}, t), l, true, false}};
  for (int i = 0; i < 2; ++i) {
    in.push_back(arg(d.randn({C, C, 3, 3}, t, 0.3)));
    in.push_back(arg(d.uniform({C}, 0.5, 1.5, t)));
    in.push_back(arg(d.randn({C}, t, 0.2)));
    in.push_back(state(d.randn({C}, t, 0.3)));
    in.push_back(state(d.uniform({C}, 0.5, 2.0, t)));
  }
  Case c = make_case("residual_block", label, t, Attrs().boolean("training", training).json(), std::move(in),
                     [training](const std::vector<Tensor>& x) {
                       const Conv2dOptions pad1{.padding = {1, 1}};
                       Tensor h = conv2d(x[0], x[1], {}, pad1);
                       h = relu(batch_norm(h, x[4], x[5], x[2], x[3], training, 0.1, 1e-5));
                       h = conv2d(h, x[6], {}, pad1);
                       h = batch_norm(h, x[9], x[10], x[7], x[8], training, 0.1, 1e-5);
                       return std::vector<Tensor>{relu(add(h, x[0]))};
                     });
  c.expect_channels_last = l == Layout::channels_last;
  out.push_back(std::move(c));
}

}  // namespace

void add_conv_norm_cases(std::vector<Case>& out, DType t) {
  Data d(t == DType::f64 ? 31 : 32);
  const Layout C = Layout::contiguous, CL = Layout::channels_last;
  const ConvSpec convs[] = {
      {"3x3 pad 1, odd channels 3->5", 2, 3, 7, 7, 5, 3, 3, {1, 1}, {1, 1}, {1, 1}, 1, true, C, C},
      {"3x3 stride 2, 8x9 input", 2, 3, 8, 9, 4, 3, 3, {2, 2}, {1, 1}, {1, 1}, 1, true, C, C},
      {"dilation 2, batch 1", 1, 3, 9, 9, 4, 3, 3, {1, 1}, {2, 2}, {2, 2}, 1, true, C, C},
      {"kernel 7 pad 3 stride 2 (stem)", 2, 3, 15, 15, 8, 7, 7, {2, 2}, {3, 3}, {1, 1}, 1, false, C, C},
      {"groups 2", 2, 4, 6, 6, 6, 3, 3, {1, 1}, {1, 1}, {1, 1}, 2, true, C, C},
      {"depthwise (groups = channels)", 2, 6, 7, 7, 6, 3, 3, {1, 1}, {1, 1}, {1, 1}, 6, true, C, C},
      {"depthwise x2 multiplier, stride 2", 2, 6, 7, 7, 12, 3, 3, {2, 2}, {1, 1}, {1, 1}, 6, false, C, C},
      {"1x1 stride 2 shortcut, batch 1, no bias", 1, 4, 8, 8, 6, 1, 1, {2, 2}, {0, 0}, {1, 1}, 1, false, C, C},
      {"channels_last input", 2, 3, 7, 7, 5, 3, 3, {1, 1}, {1, 1}, {1, 1}, 1, true, CL, C},
      {"channels_last, groups 3, stride 2", 2, 6, 8, 8, 6, 3, 3, {2, 2}, {1, 1}, {1, 1}, 3, true, CL, C},
      {"channels_last input and weight, depthwise", 2, 5, 6, 6, 5, 3, 3, {1, 1}, {1, 1}, {1, 1}, 5, true, CL, CL},
      {"asymmetric 3x1, stride (2,1), pad (1,0), dilation (1,2), strided input", 2, 5, 6, 7, 3, 3, 1, {2, 1},
       {1, 0}, {1, 2}, 1, true, Layout::strided, C},
      {"transposed weight, no padding", 2, 3, 6, 6, 4, 3, 3, {1, 1}, {0, 0}, {1, 1}, 1, true, C, Layout::transposed},
      {"5x5 kernel on 5x5 input (1x1 output)", 1, 3, 5, 5, 2, 5, 5, {1, 1}, {0, 0}, {1, 1}, 1, true, C, C},
      {"stride 3 (rows skipped in backward)", 2, 2, 10, 10, 3, 3, 3, {3, 3}, {1, 1}, {1, 1}, 1, true, C, C},
      {"stride 2 pad 0 on odd size (trailing rows unused)", 2, 3, 8, 8, 4, 3, 3, {2, 2}, {0, 0}, {1, 1}, 1, true, C, C},
      // Channel counts a vectorised backend blocks by 8/16.
      {"16->32 3x3 channels_last", 2, 16, 10, 10, 32, 3, 3, {1, 1}, {1, 1}, {1, 1}, 1, false, CL, C},
      {"32->64 1x1 stride 2", 2, 32, 8, 8, 64, 1, 1, {2, 2}, {0, 0}, {1, 1}, 1, false, C, C},
      {"depthwise 32 channels, stride 2", 2, 32, 9, 9, 32, 3, 3, {2, 2}, {1, 1}, {1, 1}, 32, true, C, C},
      {"16->24 3x3 stride 2, 15x15", 1, 16, 15, 15, 24, 3, 3, {2, 2}, {1, 1}, {1, 1}, 1, true, C, C},
  };
  for (const ConvSpec& s : convs) conv_case(out, t, d, s);
  ConvSpec fixed_w = convs[1];
  fixed_w.label = "weight fixed: grad to input and bias";
  fixed_w.grad_w = false;
  conv_case(out, t, d, fixed_w);
  ConvSpec fixed_x = convs[9];
  fixed_x.label = "input fixed: grad to weight and bias, channels_last";
  fixed_x.grad_x = false;
  conv_case(out, t, d, fixed_x);

  const BnSpec bns[] = {
      {"training, running stats updated", {4, 5, 3, 3}, C, true, true, true, true},
      {"training channels_last", {2, 3, 4, 5}, CL, true, true, true, true},
      {"training [N, C] (BatchNorm1d)", {6, 4}, C, true, true, true, true},
      {"training [N, C, L]", {3, 4, 5}, C, true, true, true, true},
      {"training without running stats", {2, 3, 4, 4}, C, true, true, false, true},
      {"training without affine", {2, 3, 4, 4}, C, true, false, true, true},
      {"training batch 1", {1, 3, 4, 4}, C, true, true, true, true},
      {"training momentum 0.3 eps 1e-3, strided input", {2, 3, 4, 5}, Layout::strided, true, true, true, true, 0.3, 1e-3},
      {"training without gradients (forward only)", {2, 3, 4, 4}, C, true, true, true, false},
      {"eval with gradients", {2, 3, 4, 4}, C, false, true, true, true},
      {"eval with gradients, channels_last", {2, 3, 4, 5}, CL, false, true, true, true},
      {"eval inference (no gradients)", {2, 3, 4, 4}, C, false, true, true, false},
      {"eval inference channels_last, no affine", {2, 3, 4, 5}, CL, false, false, true, false},
      {"eval [N, C]", {5, 3}, C, false, true, true, true},
      {"training 16 channels channels_last", {4, 16, 5, 5}, CL, true, true, true, true},
      {"training 32 channels", {2, 32, 4, 4}, C, true, true, true, true},
  };
  for (const BnSpec& s : bns) bn_case(out, t, d, s);

  ln_case(out, t, d, "[4,7] over [7]", {4, 7}, {7}, C, true, true, 1e-5);
  ln_case(out, t, d, "[2,3,4,5] over [4,5]", {2, 3, 4, 5}, {4, 5}, C, true, true, 1e-5);
  ln_case(out, t, d, "no weight or bias", {3, 6}, {6}, C, false, false, 1e-5);
  ln_case(out, t, d, "transposed input, eps 1e-3", {2, 5, 6}, {6}, Layout::transposed, true, true, 1e-3);
  ln_case(out, t, d, "over all dims, strided input", {2, 3, 4}, {2, 3, 4}, Layout::strided, true, true, 1e-5);
  ln_case(out, t, d, "weight only", {5, 4}, {4}, C, true, false, 1e-5);
  ln_case(out, t, d, "channels_last input over [H, W]", {2, 3, 4, 5}, {4, 5}, CL, true, true, 1e-5);

  residual_case(out, t, d, "training", C, true);
  residual_case(out, t, d, "training channels_last", CL, true);
  residual_case(out, t, d, "eval", C, false);

  const BnSpec bn_relus[] = {
      {"training", {2, 3, 4, 4}, C, true, true, true, true, 0.1, 1e-5, true},
      {"training channels_last 16 channels", {4, 16, 5, 5}, CL, true, true, true, true, 0.1, 1e-5, true},
      {"training [N, C], no affine", {6, 4}, C, true, false, true, true, 0.1, 1e-5, true},
      {"eval with gradients, channels_last", {2, 3, 4, 5}, CL, false, true, true, true, 0.1, 1e-5, true},
      {"eval inference (no gradients)", {2, 3, 4, 4}, C, false, true, true, false, 0.1, 1e-5, true},
  };
  for (const BnSpec& s : bn_relus) bn_case(out, t, d, s);
}

}  // namespace resin::parity
