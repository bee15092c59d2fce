// InferencePlan on oneDNN (see backend/inference_plan.h for the contract).
//
// Compiling walks the ops once: each op's primitive descriptor is created with format_tag::any for
// its destination (and weights), so oneDNN picks its preferred layouts; its source is first asked
// for in the producer's layout and reordered only when oneDNN has no fast kernel for it. Buffers
// come from a free list in execution order (a value's buffer returns to the list after its last
// consumer), so the plan holds only the activations alive at one time.
#include "resin/backend/inference_plan.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <map>
#include <sstream>

#include "resin/backend/cpu/dnnl_util.h"

namespace resin::backend {

using namespace onednn;
using dnnl::algorithm;
using dnnl::prop_kind;

namespace {

enum class Kind { input, conv, max_pool, avg_pool, linear };

struct Op {
  Kind kind = Kind::input;
  int src = -1, residual = -1;
  Tensor w, b;  // plan-owned copies (conv: [O, C/g, KH, KW]; linear: [O, C])
  Conv2dParams conv;
  Pool2dParams pool;
  bool relu = false;
  int64_t channels = 0;  // input only
};

struct Step {
  dnnl::primitive prim;
  std::unordered_map<int, memory> args;
  std::string what;
};

// One compiled instance of the plan for an input shape and layout.
struct Compiled {
  std::vector<Step> steps;
  memory in, out;  // data handles set per run
  std::vector<std::unique_ptr<float[], void (*)(void*)>> buffers;
  Shape out_shape;
};

void* aligned(size_t bytes) {
  void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  RESIN_CHECK(p, "InferencePlan: out of memory allocating ", bytes, " bytes");
  return p;
}

}  // namespace

struct InferencePlan::Impl {
  std::vector<Op> ops;  // ops[v] produces value v
  int output = -1;
  std::map<std::vector<int64_t>, std::unique_ptr<Compiled>> compiled;  // key: shape + strides
  const Compiled* last = nullptr;  // points into compiled: reset whenever compiled is cleared

  std::unique_ptr<Compiled> compile(const Tensor& x) const;
  // The graph changed: every compiled form is stale.
  void invalidate() {
    compiled.clear();
    last = nullptr;
  }
};

namespace {

// Compile-time state of one value: its shape, layout and memory.
struct Val {
  Dims dims;
  memory mem;
  int buffer = -1;  // index into the free-list bookkeeping, -1 for the input/output
  int uses_left = 0;
};

// A short name for a 4-D activation layout (for summary()).
std::string layout_name(const memory::desc& md) {
  using tag = memory::format_tag;
  const Dims d = md.dims();
  if (d.size() != 4) return "plain";
  for (auto [t, name] : {std::pair{tag::nchw, "nchw"}, {tag::nhwc, "nhwc"}, {tag::nChw16c, "nChw16c"},
                         {tag::nChw8c, "nChw8c"}})
    if (md == memory::desc(d, md.data_type(), t)) return name;
  return "other";
}

class Builder {
 public:
  explicit Builder(Compiled& c) : c_(c) {}

  // A buffer of at least `bytes`: a released one when one is big enough, else a new one.
  int take(size_t bytes) {
    int best = -1;
    for (int i : free_)
      if (sizes_[i] >= bytes && (best < 0 || sizes_[i] < sizes_[best])) best = i;
    if (best >= 0) {
      std::erase(free_, best);
      return best;
    }
    ptrs_.push_back(fresh(bytes));
    sizes_.push_back(bytes);
    return static_cast<int>(sizes_.size()) - 1;
  }
  // A buffer never shared with activations (prepacked weights: written once, at compile time,
  // while every reusable buffer is still written by earlier steps at run time).
  void* fresh(size_t bytes) {
    c_.buffers.emplace_back(static_cast<float*>(aligned(bytes)), std::free);
    return c_.buffers.back().get();
  }
  void release(int b) {
    if (b >= 0) free_.push_back(b);
  }
  memory new_memory(const memory::desc& md, int& buffer) {
    buffer = take(md.get_size());
    return memory(md, engine(), ptrs_[static_cast<size_t>(buffer)]);
  }
  // `v` reordered to `want` (a new temporary) unless it already is.
  memory as(const Val& v, const memory::desc& want, const std::string& what) {
    if (v.mem.get_desc() == want) return v.mem;
    int b = -1;
    memory m = new_memory(want, b);
    temps_.push_back(b);
    dnnl::reorder r(dnnl::reorder::primitive_desc(engine(), v.mem.get_desc(), engine(), want));
    c_.steps.push_back({r, {{DNNL_ARG_FROM, v.mem}, {DNNL_ARG_TO, m}},
                        "reorder " + layout_name(v.mem.get_desc()) + " -> " + layout_name(want) + " before " + what});
    return m;
  }
  // Temporaries of the current op go back to the free list once it is emitted.
  void end_op() {
    for (int b : temps_) release(b);
    temps_.clear();
  }

 private:
  Compiled& c_;
  std::vector<void*> ptrs_;  // activation buffers (owned by c_.buffers), indexed like sizes_
  std::vector<size_t> sizes_;
  std::vector<int> free_, temps_;
};

std::string shape_str(const Dims& d) {
  std::ostringstream os;
  for (size_t i = 0; i < d.size(); ++i) os << (i ? "x" : "") << d[i];
  return os.str();
}

memory::desc plain_md(const Dims& dims) { return dense_md(dims); }

// The layout convolutions write: oneDNN's blocked nChw16c when the channels fill 16-wide blocks
// (every kernel family, Winograd included, reads it, so consecutive convolutions never reorder),
// else whatever oneDNN prefers. RESIN_PLAN_LAYOUT=any leaves every choice to oneDNN.
memory::desc activation_md(const Dims& dims) {
  static const bool any = [] {
    const char* e = std::getenv("RESIN_PLAN_LAYOUT");
    return e && std::string(e) == "any";
  }();
  if (!any && dims.size() == 4 && dims[1] % 16 == 0)
    return memory::desc(dims, memory::data_type::f32, memory::format_tag::nChw16c);
  return any_md(plain_md(dims));
}


dnnl::convolution_forward::primitive_desc conv_pd(const Op& op, const memory::desc& src, const Dims& dst_dims,
                                                  const memory::desc& dst, bool winograd) {
  const ConvGeometry g = conv_geometry(op.conv);
  const memory::desc wmd = any_md(weights_md(op.w, op.conv.groups));
  const memory::desc bmd = op.b.defined() ? dense_md({dst_dims[1]}) : memory::desc();
  dnnl::post_ops po;
  if (op.residual >= 0) po.append_sum(1.0f);
  if (op.relu) po.append_eltwise(1.0f, algorithm::eltwise_relu, 0.0f, 0.0f);
  dnnl::primitive_attr attr;
  attr.set_post_ops(po);
  dnnl::convolution_forward::desc d(prop_kind::forward_inference,
                                    winograd ? algorithm::convolution_winograd : algorithm::convolution_direct, src,
                                    wmd, bmd, dst, g.strides, g.dilates, g.pad_l, g.pad_r);
  return {d, attr, engine()};
}

// The first fast descriptor among: (winograd,) user src layout, then src `any`.
dnnl::convolution_forward::primitive_desc choose_conv(const Op& op, const memory::desc& src, const Dims& dst_dims,
                                                      const memory::desc& dst) {
  const Tensor& w = op.w;
  const bool wino = want_winograd(w.size(1) * op.conv.groups, w.size(0), w.size(2), w.size(3), op.conv);
  std::optional<dnnl::convolution_forward::primitive_desc> fallback;
  for (bool winograd : {true, false}) {
    if (winograd && !wino) continue;
    for (bool any_src : {false, true}) {
      try {
        auto pd = conv_pd(op, any_src ? any_md(src) : src, dst_dims, dst, winograd);
        if (is_fast_impl(pd)) return pd;
        if (!fallback) fallback = pd;
      } catch (const dnnl::error&) {
      }
    }
  }
  RESIN_CHECK(fallback.has_value(), "InferencePlan: oneDNN has no convolution for input ", shape_str(src.dims()),
              " and weights ", w.shape());
  return *fallback;
}

}  // namespace

std::unique_ptr<Compiled> InferencePlan::Impl::compile(const Tensor& x) const {
  RESIN_CHECK(output >= 0, "InferencePlan: no output set");
  auto c = std::make_unique<Compiled>();
  Builder b(*c);
  std::vector<Val> vals(ops.size());
  for (const Op& op : ops) {
    if (op.src >= 0) ++vals[static_cast<size_t>(op.src)].uses_left;
    if (op.residual >= 0) ++vals[static_cast<size_t>(op.residual)].uses_left;
  }
  // A value is consumed: free its buffer after its last use (the output is never freed).
  auto consume = [&](int v) {
    Val& s = vals[static_cast<size_t>(v)];
    if (--s.uses_left == 0 && v != output) b.release(s.buffer);
  };
  for (size_t i = 0; i < ops.size(); ++i) {
    const Op& op = ops[i];
    Val& out = vals[i];
    const bool is_out = static_cast<int>(i) == output;
    if (op.kind == Kind::input) {
      RESIN_CHECK(x.dim() == 4 && x.size(1) == op.channels && x.dtype() == DType::f32,
                  "InferencePlan: expected f32 input [N, ", op.channels, ", H, W], got ", x.dtype(), " ",
                  x.shape());
      out.dims = Dims(x.shape().begin(), x.shape().end());
      c->in = memory(md_of(x), engine(), nullptr);
      out.mem = c->in;
      continue;
    }
    // The output's memory gets the caller's tensor only at run time (linear reads its source's
    // handle at compile time, a residual conv would overwrite it).
    RESIN_CHECK(op.src != output && op.residual != output,
                "InferencePlan: the output value cannot feed a later op");
    Val& src = vals[static_cast<size_t>(op.src)];
    const Dims& sd = src.dims;
    std::string what;
    if (op.kind == Kind::conv) {
      RESIN_CHECK(sd.size() == 4 && sd[1] == op.w.size(1) * op.conv.groups, "InferencePlan: conv weights ",
                  op.w.shape(), " do not fit input ", shape_str(sd));
      const Conv2dParams& p = op.conv;
      const int64_t kh = op.w.size(2), kw = op.w.size(3);
      int64_t oh = 0, ow = 0;
      RESIN_CHECK(conv_output_size(sd[2], kh, p.stride_h, p.pad_h, p.dilation_h, &oh) &&
                      conv_output_size(sd[3], kw, p.stride_w, p.pad_w, p.dilation_w, &ow),
                  "InferencePlan: input ", shape_str(sd), " is smaller than the conv kernel ", kh, "x", kw,
                  " with its padding and dilation");
      out.dims = {sd[0], op.w.size(0), oh, ow};
      Val* res = op.residual >= 0 ? &vals[static_cast<size_t>(op.residual)] : nullptr;
      RESIN_CHECK(!res || res->dims == out.dims, "InferencePlan: residual ", shape_str(res ? res->dims : Dims{}),
                  " does not match conv output ", shape_str(out.dims));
      memory::desc dst_want = is_out ? plain_md(out.dims) : res ? res->mem.get_desc() : activation_md(out.dims);
      auto pd = choose_conv(op, src.mem.get_desc(), out.dims, dst_want);
      what = "conv " + shape_str(sd) + " -> " + shape_str(out.dims) + " " + pd.impl_info_str() + " " +
             layout_name(pd.src_desc()) + " -> " + layout_name(pd.dst_desc());
      memory in = b.as(src, pd.src_desc(), what);
      // Weights: reordered into the primitive's layout now, once.
      memory wuser = wrap(weights_md(op.w, p.groups), op.w);
      memory wmem(pd.weights_desc(), engine(), b.fresh(pd.weights_desc().get_size()));
      execute("InferencePlan weights", dnnl::reorder(wuser, wmem), {{DNNL_ARG_FROM, wuser}, {DNNL_ARG_TO, wmem}});
      std::unordered_map<int, memory> args{{DNNL_ARG_SRC, in}, {DNNL_ARG_WEIGHTS, wmem}};
      if (op.b.defined()) args.emplace(DNNL_ARG_BIAS, wrap(dense_md({out.dims[1]}), op.b));
      if (is_out) {
        c->out = memory(pd.dst_desc(), engine(), nullptr);
        out.mem = c->out;
        RESIN_CHECK(!res, "InferencePlan: a residual conv cannot be the output");
      } else if (res) {
        // The sum post-op accumulates into dst: the residual's buffer itself when this is its last
        // use (the block input of a ResNet unit), else a copy.
        if (res->uses_left == 1 && res->buffer >= 0 && res->mem.get_desc() == pd.dst_desc()) {
          out.mem = res->mem;
          out.buffer = res->buffer;
          res->buffer = -1;  // ownership moves to the output
        } else {
          out.mem = b.new_memory(pd.dst_desc(), out.buffer);
          dnnl::reorder r(dnnl::reorder::primitive_desc(engine(), res->mem.get_desc(), engine(), pd.dst_desc()));
          c->steps.push_back({r, {{DNNL_ARG_FROM, res->mem}, {DNNL_ARG_TO, out.mem}}, "residual copy"});
        }
      } else {
        out.mem = b.new_memory(pd.dst_desc(), out.buffer);
      }
      args.emplace(DNNL_ARG_DST, out.mem);
      c->steps.push_back({dnnl::convolution_forward(pd), std::move(args), what});
    } else if (op.kind == Kind::max_pool || op.kind == Kind::avg_pool) {
      RESIN_CHECK(sd.size() == 4, "InferencePlan: pooling needs a 4-D input, got ", shape_str(sd));
      const bool global = op.kind == Kind::avg_pool;
      Pool2dParams p = op.pool;
      if (global) p = {.kernel_h = sd[2], .kernel_w = sd[3], .stride_h = 1, .stride_w = 1};
      int64_t oh = 0, ow = 0;
      RESIN_CHECK(conv_output_size(sd[2], p.kernel_h, p.stride_h, p.pad_h, 1, &oh) &&
                      conv_output_size(sd[3], p.kernel_w, p.stride_w, p.pad_w, 1, &ow),
                  "InferencePlan: input ", shape_str(sd), " is smaller than the pooling window ", p.kernel_h, "x",
                  p.kernel_w, " with its padding");
      out.dims = {sd[0], sd[1], oh, ow};
      // The global pool writes [N, C, 1, 1] as plain bytes, which the linear after it reads as [N, C]:
      // nChw16c with 1x1 spatial is the same bytes, and keeps oneDNN's jit kernel for a blocked src.
      memory::desc dst_want = is_out || global ? plain_md(out.dims) : any_md(plain_md(out.dims));
      if (global && !is_out && src.mem.get_desc() == activation_md(sd) && sd[1] % 16 == 0)
        dst_want = activation_md(out.dims);
      dnnl::pooling_forward::desc d(prop_kind::forward_inference,
                                    global ? algorithm::pooling_avg_exclude_padding : algorithm::pooling_max,
                                    src.mem.get_desc(), dst_want, {p.stride_h, p.stride_w}, {p.kernel_h, p.kernel_w},
                                    {p.pad_h, p.pad_w}, {p.pad_h, p.pad_w});
      dnnl::pooling_forward::primitive_desc pd(d, engine());
      what = std::string(global ? "avg pool " : "max pool ") + shape_str(sd) + " " + pd.impl_info_str();
      if (is_out) out.mem = c->out = memory(pd.dst_desc(), engine(), nullptr);
      else out.mem = b.new_memory(pd.dst_desc(), out.buffer);
      c->steps.push_back({dnnl::pooling_forward(pd), {{DNNL_ARG_SRC, src.mem}, {DNNL_ARG_DST, out.mem}}, what});
      if (global) out.dims = {sd[0], sd[1]};  // [N, C, 1, 1] seen as [N, C] by the next op
    } else {  // linear
      const int64_t in_features = op.w.size(1);
      RESIN_CHECK(sd.size() == 2 && sd[1] == in_features, "InferencePlan: linear weights ", op.w.shape(),
                  " do not fit input ", shape_str(sd));
      out.dims = {sd[0], op.w.size(0)};
      // A pooled [N, C, 1, 1] source is plain, so the same bytes are the 2-D [N, C] matrix.
      const memory::desc s = dense_md(sd);
      const Dims pooled{sd[0], sd[1], 1, 1};
      const memory::desc& sm = src.mem.get_desc();
      RESIN_CHECK(sm == s || sm == dense_md(pooled) || (sd[1] % 16 == 0 && sm == activation_md(pooled)),
                  "InferencePlan: linear needs a plain [N, C] input (a global pool or a linear)");
      memory in(s, engine(), src.mem.get_data_handle());
      const Dims wd{op.w.size(0), in_features};
      dnnl::inner_product_forward::desc d(prop_kind::forward_inference, s,
                                          memory::desc(wd, memory::data_type::f32, memory::format_tag::any),
                                          op.b.defined() ? dense_md({out.dims[1]}) : memory::desc(),
                                          plain_md(out.dims));
      dnnl::inner_product_forward::primitive_desc pd(d, engine());
      what = "linear " + shape_str(sd) + " -> " + shape_str(out.dims) + " " + pd.impl_info_str();
      memory wuser = wrap(dense_md(wd), op.w);
      memory wmem(pd.weights_desc(), engine(), b.fresh(pd.weights_desc().get_size()));
      execute("InferencePlan weights", dnnl::reorder(wuser, wmem), {{DNNL_ARG_FROM, wuser}, {DNNL_ARG_TO, wmem}});
      if (is_out) out.mem = c->out = memory(pd.dst_desc(), engine(), nullptr);
      else out.mem = b.new_memory(pd.dst_desc(), out.buffer);
      std::unordered_map<int, memory> args{{DNNL_ARG_SRC, in}, {DNNL_ARG_WEIGHTS, wmem}, {DNNL_ARG_DST, out.mem}};
      if (op.b.defined()) args.emplace(DNNL_ARG_BIAS, wrap(dense_md({out.dims[1]}), op.b));
      c->steps.push_back({dnnl::inner_product_forward(pd), std::move(args), what});
    }
    b.end_op();
    consume(op.src);
    if (op.residual >= 0) consume(op.residual);
  }
  RESIN_CHECK(c->out, "InferencePlan: the output value must be produced by an op, not be the input");
  c->out_shape = Shape(vals[static_cast<size_t>(output)].dims);
  return c;
}

InferencePlan::InferencePlan() : impl_(std::make_unique<Impl>()) {}
InferencePlan::~InferencePlan() = default;
InferencePlan::InferencePlan(InferencePlan&&) noexcept = default;
InferencePlan& InferencePlan::operator=(InferencePlan&&) noexcept = default;

bool InferencePlan::available() { return !force_reference(); }

namespace {
void check_value(const std::vector<Op>& ops, InferencePlan::Value v, const char* what) {
  RESIN_CHECK(v >= 0 && static_cast<size_t>(v) < ops.size(), "InferencePlan::", what, ": unknown value ", v);
}
// Index of the first NaN or infinity among n dense floats, or -1. Integer tests on the exponent bits
// vectorize; the early exit per block keeps a bad value cheap to report.
int64_t first_non_finite(const float* p, int64_t n) {
  constexpr int64_t kBlock = 4096;
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t e = std::min(n, b + kBlock);
    uint32_t bad = 0;
    for (int64_t i = b; i < e; ++i) bad |= (std::bit_cast<uint32_t>(p[i]) & 0x7f800000u) == 0x7f800000u;
    if (bad)
      for (int64_t i = b; i < e; ++i)
        if (!std::isfinite(p[i])) return i;
  }
  return -1;
}

// oneDNN's ReLU post-op maps NaN to 0, so a plan must never see one: a NaN or infinite parameter
// or input would come out as finite, wrong numbers. Parameters are checked once here, inputs per run.
Tensor own_copy(const Tensor& t) {
  if (!t.defined()) return t;
  RESIN_CHECK(t.dtype() == DType::f32, "InferencePlan: parameters must be f32, got ", t.dtype());
  Tensor c = t.detach().clone();
  RESIN_CHECK(first_non_finite(c.data<float>(), c.numel()) < 0, "InferencePlan: a parameter of shape ",
              c.shape(), " has a NaN or infinite value; a fused plan would hide it (run the model unfused)");
  return c;
}
}  // namespace

InferencePlan::Value InferencePlan::input(int64_t channels) {
  RESIN_CHECK(impl_->ops.empty(), "InferencePlan::input: the input must be declared first, once");
  Op op;
  op.channels = channels;
  impl_->ops.push_back(op);
  return 0;
}

InferencePlan::Value InferencePlan::conv(Value x, const Tensor& w, const Tensor& bias, const Conv2dParams& p,
                                         bool relu, Value residual) {
  check_value(impl_->ops, x, "conv");
  if (residual >= 0) check_value(impl_->ops, residual, "conv");
  RESIN_CHECK(w.dim() == 4 && (!bias.defined() || (bias.dim() == 1 && bias.size(0) == w.size(0))),
              "InferencePlan::conv: weights ", w.shape(), " and bias ", bias.defined() ? bias.shape() : Shape{});
  RESIN_CHECK(p.groups >= 1 && w.size(0) % p.groups == 0 && p.stride_h >= 1 && p.stride_w >= 1 &&
                  p.dilation_h >= 1 && p.dilation_w >= 1 && p.pad_h >= 0 && p.pad_w >= 0 && w.size(2) >= 1 &&
                  w.size(3) >= 1,
              "InferencePlan::conv: invalid parameters for weights ", w.shape(), " (groups ", p.groups, ", stride ",
              p.stride_h, "x", p.stride_w, ", padding ", p.pad_h, "x", p.pad_w, ", dilation ", p.dilation_h, "x",
              p.dilation_w, ")");
  Op op;
  op.kind = Kind::conv;
  op.src = x;
  op.residual = residual;
  op.w = own_copy(w);
  op.b = own_copy(bias);
  op.conv = p;
  op.relu = relu;
  impl_->ops.push_back(std::move(op));
  impl_->invalidate();
  return static_cast<Value>(impl_->ops.size()) - 1;
}

InferencePlan::Value InferencePlan::max_pool(Value x, const Pool2dParams& p) {
  check_value(impl_->ops, x, "max_pool");
  RESIN_CHECK(p.kernel_h >= 1 && p.kernel_w >= 1 && p.stride_h >= 1 && p.stride_w >= 1 && p.pad_h >= 0 &&
                  p.pad_w >= 0,
              "InferencePlan::max_pool: invalid window ", p.kernel_h, "x", p.kernel_w, ", stride ", p.stride_h, "x",
              p.stride_w, ", padding ", p.pad_h, "x", p.pad_w);
  Op op;
  op.kind = Kind::max_pool;
  op.src = x;
  op.pool = p;
  impl_->ops.push_back(op);
  impl_->invalidate();
  return static_cast<Value>(impl_->ops.size()) - 1;
}

InferencePlan::Value InferencePlan::global_avg_pool(Value x) {
  check_value(impl_->ops, x, "global_avg_pool");
  Op op;
  op.kind = Kind::avg_pool;
  op.src = x;
  impl_->ops.push_back(op);
  impl_->invalidate();
  return static_cast<Value>(impl_->ops.size()) - 1;
}

InferencePlan::Value InferencePlan::linear(Value x, const Tensor& w, const Tensor& bias) {
  check_value(impl_->ops, x, "linear");
  RESIN_CHECK(w.dim() == 2 && (!bias.defined() || (bias.dim() == 1 && bias.size(0) == w.size(0))),
              "InferencePlan::linear: weights ", w.shape(), " and bias ", bias.defined() ? bias.shape() : Shape{});
  Op op;
  op.kind = Kind::linear;
  op.src = x;
  op.w = own_copy(w);
  op.b = own_copy(bias);
  impl_->ops.push_back(std::move(op));
  impl_->invalidate();
  return static_cast<Value>(impl_->ops.size()) - 1;
}

void InferencePlan::set_output(Value v) {
  check_value(impl_->ops, v, "set_output");
  impl_->output = v;
  impl_->invalidate();
}

Tensor InferencePlan::run(const Tensor& x) {
  RESIN_CHECK(available(), "InferencePlan::run: the oneDNN backend is off (RESIN_BACKEND=ref)");
  RESIN_CHECK(x.defined() && x.dim() == 4, "InferencePlan::run: expected images [N, C, H, W], got ",
              x.defined() ? x.shape() : Shape{});
  // Checked on every call: the compiled forms are keyed by shape and strides only.
  RESIN_CHECK(x.dtype() == DType::f32 && x.device().type == DeviceType::cpu,
              "InferencePlan::run: expected an f32 CPU tensor, got ", x.dtype(), " on ", x.device());
  {
    // Scanned in memory order; with the batch dimension outermost the position names the sample.
    const Tensor dense = x.is_non_overlapping_dense() ? x : x.contiguous();
    const int64_t bad = first_non_finite(static_cast<const float*>(dense.raw_data()), dense.numel());
    const bool batch_outer = x.is_contiguous() || x.is_channels_last() || !x.is_non_overlapping_dense();
    RESIN_CHECK(bad < 0, "InferencePlan::run: the input",
                batch_outer ? " (sample " +
                                  std::to_string(bad / std::max<int64_t>(1, dense.numel() / x.size(0))) + ")"
                            : std::string(),
                " has a NaN or infinite value; the fused plan's ReLUs would turn it into finite outputs "
                "(the unfused model propagates it)");
  }
  const Strides st = normalized_strides(x);
  std::vector<int64_t> key(x.shape().begin(), x.shape().end());
  key.insert(key.end(), st.begin(), st.end());
  auto it = impl_->compiled.find(key);
  if (it == impl_->compiled.end()) it = impl_->compiled.emplace(key, impl_->compile(x)).first;
  Compiled& c = *it->second;
  impl_->last = &c;
  Tensor y = empty(c.out_shape);
  c.in.set_data_handle(x.raw_data());
  c.out.set_data_handle(y.raw_data());
  for (const Step& s : c.steps) execute("InferencePlan", s.prim, s.args);
  return y;
}

std::string InferencePlan::summary() const {
  std::ostringstream os;
  if (impl_->last)
    for (const Step& s : impl_->last->steps) os << s.what << "\n";
  return os.str();
}

}  // namespace resin::backend
