// ONNX forms (export_onnx) of the convolutional and residual blocks: each emits its eval-mode
// forward with the same ops in the same order, so exported graphs match resin to rounding.
#include <limits>

#include "resin/blocks/dense_blocks.h"
#include "resin/blocks/laurel.h"
#include "resin/blocks/param.h"
#include "resin/blocks/preact_blocks.h"
#include "resin/blocks/reversible.h"
#include "resin/blocks/units.h"
#include "resin/nn/onnx_layers.h"

namespace resin::blocks {

using nn::OnnxEmitter;
using nn::OnnxValue;
namespace emit = nn::emit;

namespace {

OnnxValue maybe_module(OnnxEmitter& g, const nn::ModulePtr& m, const OnnxValue& x) {
  return m ? g.module(*m, x) : x;
}

}  // namespace

OnnxValue activate(OnnxEmitter& g, const OnnxValue& x, Activation a) {
  return a == Activation::gelu ? emit::gelu(g, x) : emit::relu(g, x);
}

OnnxValue ZeroPadShortcut::export_onnx(OnnxEmitter& g, const OnnxValue& x) {
  RESIN_CHECK(x.dim() == 4, "ZeroPadShortcut: expected [N, C, H, W], got ", x.shape());
  OnnxValue s = x;
  if (stride_ != 1) {
    const int64_t end = std::numeric_limits<int64_t>::max();
    s = g.op1("Slice", {x, g.ints({0, 0}), g.ints({end, end}), g.ints({2, 3}), g.ints({stride_, stride_})});
  }
  if (out_ == in_) return s;
  const int64_t extra = out_ - in_, lo = extra / 2, hi = extra - lo;
  // ONNX pads: all begins, then all ends.
  return g.op1("Pad", {s, g.ints({0, lo, 0, 0, 0, hi, 0, 0})});
}

OnnxValue BasicBlock::export_onnx(OnnxEmitter& g, const OnnxValue& x) {
  OnnxValue h = emit::relu(g, g.module(*bn1_, g.module(*conv1_, x)));
  OnnxValue f = g.module(*bn2_, g.module(*conv2_, h));
  return emit::relu(g, o_.residual ? emit::add(g, f, maybe_module(g, downsample_, x)) : f);
}

OnnxValue Bottleneck::export_onnx(OnnxEmitter& g, const OnnxValue& x) {
  OnnxValue h = emit::relu(g, g.module(*bn1_, g.module(*conv1_, x)));
  h = emit::relu(g, g.module(*bn2_, g.module(*conv2_, h)));
  OnnxValue f = g.module(*bn3_, g.module(*conv3_, h));
  return emit::relu(g, o_.residual ? emit::add(g, f, maybe_module(g, downsample_, x)) : f);
}

namespace {
OnnxValue preact_shortcut(OnnxEmitter& g, const BlockOptions& o, const nn::ModulePtr& downsample,
                          const OnnxValue& x, const OnnxValue& a) {
  return maybe_module(g, downsample, preact_shortcut_reads_a(o, downsample) ? a : x);
}
}  // namespace

OnnxValue PreActBasicBlock::export_onnx(OnnxEmitter& g, const OnnxValue& x) {
  OnnxValue a = emit::relu(g, g.module(*bn1_, x));
  OnnxValue h = maybe_module(g, dropout_, emit::relu(g, g.module(*bn2_, g.module(*conv1_, a))));
  OnnxValue f = g.module(*conv2_, h);
  return o_.residual ? emit::add(g, f, preact_shortcut(g, o_, downsample_, x, a)) : f;
}

OnnxValue PreActBottleneck::export_onnx(OnnxEmitter& g, const OnnxValue& x) {
  OnnxValue a = emit::relu(g, g.module(*bn1_, x));
  OnnxValue h = emit::relu(g, g.module(*bn2_, g.module(*conv1_, a)));
  h = emit::relu(g, g.module(*bn3_, g.module(*conv2_, h)));
  OnnxValue f = g.module(*conv3_, h);
  return o_.residual ? emit::add(g, f, preact_shortcut(g, o_, downsample_, x, a)) : f;
}

OnnxValue NamedSequential::export_onnx(OnnxEmitter& g, const OnnxValue& x) {
  OnnxValue h = x;
  for (auto& [_, m] : children()) h = g.module(*m, h);
  return h;
}

OnnxValue DenseLayer::export_onnx(OnnxEmitter& g, const OnnxValue& x) {
  // Dropout is the identity in eval mode.
  OnnxValue h = g.module(*conv1_, emit::relu(g, g.module(*norm1_, x)));
  return conv2_ ? g.module(*conv2_, emit::relu(g, g.module(*norm2_, h))) : h;
}

OnnxValue DenseBlock::export_onnx(OnnxEmitter& g, const OnnxValue& x) {
  std::vector<OnnxValue> features{x};
  for (auto& layer : layers_) features.push_back(g.module(*layer, emit::concat(g, features, 1)));
  return emit::concat(g, features, 1);
}

OnnxValue Transition::export_onnx(OnnxEmitter& g, const OnnxValue& x) {
  OnnxValue h = g.module(*conv_, emit::relu(g, g.module(*norm_, x)));
  return emit::avg_pool2d(g, h, {.kernel = {2, 2}, .stride = {2, 2}});
}

OnnxValue Residual::export_onnx(OnnxEmitter& g, const OnnxValue& x) {
  // Eval mode: drop-path is the identity, shortcut dropout the identity or its expectation.
  OnnxValue z = g.module(*branch_, x);
  if (o_.mix != Mix::none) {
    OnnxValue s = maybe_module(g, shortcut_, x);
    if (o_.shortcut_dropout > 0 && !o_.shortcut_dropout_rescale) s = emit::mul(g, s, 1.0 - o_.shortcut_dropout);
    RESIN_CHECK(s.shape() == z.shape(), "Residual: shortcut gives shape ", s.shape(), " but the branch gives ",
                z.shape());
    OnnxValue a = s, b = z;
    auto gate = [&](const nn::ModulePtr& m) { return emit::sigmoid(g, g.module(*m, x)); };
    switch (o_.mix) {
      case Mix::none:
      case Mix::sum: break;
      case Mix::scaled:
        if (o_.shortcut_scale != 1.0) a = emit::mul(g, s, o_.shortcut_scale);
        if (o_.branch_scale != 1.0) b = emit::mul(g, z, o_.branch_scale);
        break;
      case Mix::learned_scale: b = emit::mul(g, z, g.param(alpha())); break;
      case Mix::exclusive_gate: {
        OnnxValue t = gate(gate_);
        a = emit::mul(g, s, emit::one_minus(g, t));
        b = emit::mul(g, z, t);
        break;
      }
      case Mix::shortcut_gate: a = emit::mul(g, s, emit::one_minus(g, gate(gate_))); break;
      case Mix::carry_gate:
        a = emit::mul(g, s, gate(carry_));
        b = emit::mul(g, z, gate(gate_));
        break;
    }
    z = emit::add(g, a, b);
  }
  switch (o_.post) {
    case Post::none: return z;
    case Post::relu: return emit::relu(g, z);
    case Post::bn_relu: return emit::relu(g, g.module(*post_norm_, z));
    case Post::ln: return g.module(*post_norm_, z);
  }
  return z;
}

OnnxValue FixupBranch::export_onnx(OnnxEmitter& g, const OnnxValue& x) {
  auto W = [&](const OnnxValue& h, const char* w, int64_t stride) {
    const Tensor t = own_param(*this, w);
    return layer_ == Layer::conv ? emit::conv2d(g, h, t, {}, stride, 1) : emit::linear(g, h, t, {});
  };
  auto P = [&](const char* name) { return g.param(own_param(*this, name)); };
  OnnxValue h = W(emit::add(g, x, P("bias1a")), "weight1", stride_);
  h = activate(g, emit::add(g, h, P("bias1b")), act_);
  h = W(emit::add(g, h, P("bias2a")), "weight2", 1);
  return emit::add(g, emit::mul(g, h, P("scale")), P("bias2b"));
}

OnnxValue LaurelBlock::export_onnx(OnnxEmitter& g, const OnnxValue& x) { return export_onnx(g, x, {}); }

OnnxValue LaurelBlock::export_onnx(OnnxEmitter& g, const OnnxValue& x, const std::vector<OnnxValue>& history) {
  auto map = [&](const OnnxValue& v, const char* an, const char* bn) {
    const Tensor a = p(an), b = p(bn);
    if (o_.layer == Layer::linear) return emit::linear(g, emit::linear(g, v, a, {}), b, {});
    auto conv1x1 = [&](const OnnxValue& in, const Tensor& w) {
      OnnxValue w4 = emit::reshape(g, g.param(w), {w.size(0), w.size(1), 1, 1});
      return g.op1("Conv", {in, w4}, {{"kernel_shape", std::vector<int64_t>{1, 1}}});
    };
    return conv1x1(conv1x1(v, a), b);
  };
  auto pick = [&](const OnnxValue& v, int64_t i) {  // v[i] of a 1-D value, as a 0-d value
    return g.op1("Gather", {v, g.constant(scalar_tensor(static_cast<double>(i), {.dtype = DType::i64}))},
                 {{"axis", int64_t{0}}});
  };
  OnnxValue f = g.module(*branch_, x);
  OnnxValue r = x;
  if (o_.lr_rank > 0) r = emit::add(g, r, map(x, "lr_a", "lr_b"));
  if (o_.pa_k > 0) {
    OnnxValue gamma = g.param(p("pa_gamma"));
    for (int64_t j = 0; j < o_.pa_k; ++j) {
      const int64_t back = static_cast<int64_t>(history.size()) - j;
      if (j > 0 && back < 0) break;
      const OnnxValue& xj = j == 0 ? x : history[static_cast<size_t>(back)];
      OnnxValue hj = o_.pa_rank > 0 ? map(xj, "pa_a", "pa_b") : xj;
      r = emit::add(g, r, emit::mul(g, hj, pick(gamma, j)));
    }
  }
  if (!o_.rw) return emit::add(g, f, r);
  OnnxValue ab = emit::mul(g, g.op1("Softmax", {g.param(p("rw"))}, {{"axis", int64_t{0}}}), 2.0);
  return emit::add(g, emit::mul(g, f, pick(ab, 0)), emit::mul(g, r, pick(ab, 1)));
}

OnnxValue LaurelSequence::export_onnx(OnnxEmitter& g, const OnnxValue& x) {
  std::vector<OnnxValue> history;
  OnnxValue h = x;
  for (auto& b : blocks_) {
    OnnxValue y = b->export_onnx(g, h, history);
    history.push_back(h);
    h = y;
  }
  return h;
}

namespace {
std::pair<OnnxValue, OnnxValue> halves(OnnxEmitter& g, const OnnxValue& x, int64_t dim) {
  const int64_t d = dim < 0 ? dim + x.dim() : dim;
  RESIN_CHECK(d >= 0 && d < x.dim() && x.shape()[static_cast<size_t>(d)] % 2 == 0, "reversible stack: dim ",
              dim, " of shape ", x.shape(), " must exist and have an even size");
  const int64_t half = x.shape()[static_cast<size_t>(d)] / 2;
  auto parts = g.op("Split", {x, g.ints({half, half})}, {{"axis", d}}, 2);
  return {parts[0], parts[1]};
}
}  // namespace

OnnxValue RevBlock::export_onnx(OnnxEmitter& g, const OnnxValue& x) {
  auto [x1, x2] = halves(g, x, 1);
  OnnxValue y1 = emit::add(g, x1, g.module(*f_, x2));
  OnnxValue y2 = emit::add(g, x2, g.module(*g_, y1));
  return emit::concat(g, {y1, y2}, 1);
}

OnnxValue ReversibleSequence::export_onnx(OnnxEmitter& g, const OnnxValue& x) {
  // The f32 stream; wide_stream (an f64 stream for exact inversion) changes only the rounding.
  auto [a, b] = halves(g, x, o_.dim);
  for (auto& blk : blocks_) {
    OnnxValue y1 = emit::add(g, a, g.module(blk->f(), b));
    b = emit::add(g, b, g.module(blk->g(), y1));
    a = y1;
  }
  return emit::concat(g, {a, b}, o_.dim < 0 ? o_.dim + x.dim() : o_.dim);
}

}  // namespace resin::blocks
