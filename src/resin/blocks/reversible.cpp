#include "resin/blocks/reversible.h"

#include <map>
#include <optional>

#include "resin/autograd/grad_mode.h"
#include "resin/autograd/node.h"
#include "resin/backend/backend.h"

namespace resin::blocks {

namespace {

std::pair<Tensor, Tensor> halves(const Tensor& x, int64_t dim, const char* who) {
  RESIN_CHECK(x.defined() && x.dim() > 0, who, ": input is undefined or 0-d");
  const int64_t d = dim < 0 ? dim + x.dim() : dim;
  RESIN_CHECK(d >= 0 && d < x.dim() && x.size(d) % 2 == 0, who, ": dim ", dim, " of shape ", x.shape(),
              " must exist and have an even size");
  auto parts = chunk(x, 2, d);
  return {parts[0], parts[1]};
}

// F or G on a stream tensor: runs in `compute` (the dtype of the stack's input) and returns the
// stream's dtype, so a wide (f64) stream can carry f32 branches.
Tensor call(nn::Module& m, const Tensor& x, DType compute) {
  if (x.dtype() == compute) return m.forward(x);
  return m.forward(x.to(compute)).to(x.dtype());
}

// Grad mode on for the local recomputation graph (the engine runs nodes with it off).
struct GradEnabledGuard {
  bool prev = GradMode::is_enabled();
  GradEnabledGuard() { GradMode::set_enabled(true); }
  ~GradEnabledGuard() { GradMode::set_enabled(prev); }
};

// Copies of every buffer under some modules, written back on destruction: recomputation and
// inversion leave BatchNorm running statistics as the forward pass left them.
class BufferSnapshot {
 public:
  explicit BufferSnapshot(const std::vector<nn::Module*>& roots) {
    NoGradGuard ng;
    for (nn::Module* m : roots)
      for (auto& [_, t] : m->named_buffers())
        if (t.defined()) saved_.emplace_back(t, t.clone());
  }
  ~BufferSnapshot() {
    NoGradGuard ng;
    for (auto& [t, copy] : saved_) backend::backend_for(t).copy(copy, t);
  }
  BufferSnapshot(const BufferSnapshot&) = delete;
  BufferSnapshot& operator=(const BufferSnapshot&) = delete;

 private:
  std::vector<std::pair<Tensor, Tensor>> saved_;
};

// The default generator's state before a call of F or G, kept only if the call drew from it (so a
// stack without dropout stores nothing per block). Only training mode draws random numbers.
struct RngRecorder {
  std::optional<Generator> before;
  explicit RngRecorder(bool on) {
    if (on) before = default_generator();
  }
  std::optional<Generator> take() {
    if (!before || before->state() == default_generator().state()) return std::nullopt;
    return std::move(before);
  }
};

class ReversibleBackward : public autograd::Node {
 public:
  std::string name() const override { return "ReversibleBackward"; }
  bool saves_tensors() const override { return true; }
  void release_saved() override {
    y1.reset();
    y2.reset();
  }
  std::vector<Tensor> apply(std::vector<Tensor>&& grads) override;

  std::vector<std::shared_ptr<RevBlock>> blocks;
  std::vector<Tensor> params;                           // unique parameters that require grad
  std::vector<std::vector<size_t>> f_params, g_params;  // per block: indices into params
  std::vector<std::optional<Generator>> rng_f, rng_g;
  std::optional<Tensor> y1, y2;  // detached outputs of the last block (stream dtype)
  DType compute = DType::f32;    // dtype F and G run in
};

std::vector<Tensor> ReversibleBackward::apply(std::vector<Tensor>&& grads) {
  RESIN_CHECK(y1 && y2, name(),
              ": saved outputs were released; pass retain_graph=true to the first backward");
  GradEnabledGuard grad_on;
  // The backward leaves the generator where the forward left it, whatever F and G draw.
  struct RngRestore {
    Generator saved = default_generator();
    ~RngRestore() { default_generator() = saved; }
  } rng_restore;
  std::vector<Tensor> pgrad(params.size());
  auto run_local = [&](nn::Module& m, const Tensor& in, const std::vector<size_t>& idx,
                       const std::optional<Generator>& rng, const Tensor& grad_out, Tensor& out_value) {
    if (rng) default_generator() = *rng;
    Tensor out = call(m, in, compute);
    out_value = out.detach();
    std::vector<Tensor> inputs{in};
    for (size_t k : idx) inputs.push_back(params[k]);
    if (!out.requires_grad()) return Tensor();  // F or G ignores its input and has no parameters
    auto g = autograd::grad({out}, inputs, {grad_out});
    for (size_t k = 0; k < idx.size(); ++k)
      pgrad[idx[k]] = pgrad[idx[k]].defined() ? add(pgrad[idx[k]], g[k + 1]) : g[k + 1];
    return g[0];
  };
  Tensor cy1 = *y1, cy2 = *y2, dy1 = grads[0], dy2 = grads[1];
  for (size_t i = blocks.size(); i-- > 0;) {
    RevBlock& b = *blocks[i];
    const BufferSnapshot buffers({&b});  // per block: O(1) extra memory in depth
    // y2 = x2 + G(y1): dL/dy1 gains G'(y1)ᵀ dy2, and x2 = y2 − G(y1).
    Tensor z1 = cy1.detach();
    z1.set_requires_grad(true);
    Tensor gval;
    Tensor dz = run_local(b.g(), z1, g_params[i], rng_g[i], dy2, gval);
    Tensor dz1 = dz.defined() ? add(dy1, dz) : dy1;
    Tensor x2;
    {
      NoGradGuard ng;
      x2 = sub(cy2, gval);
    }
    // y1 = x1 + F(x2): dL/dx2 = dy2 + F'(x2)ᵀ dz1, dL/dx1 = dz1, and x1 = y1 − F(x2).
    Tensor x2_leaf = x2.detach();
    x2_leaf.set_requires_grad(true);
    Tensor fval;
    Tensor dx = run_local(b.f(), x2_leaf, f_params[i], rng_f[i], dz1, fval);
    Tensor x1;
    {
      NoGradGuard ng;
      x1 = sub(cy1, fval);
    }
    dy2 = dx.defined() ? add(dy2, dx) : dy2;
    dy1 = dz1;
    cy1 = x1;
    cy2 = x2;
  }
  std::vector<Tensor> out{dy1, dy2};
  for (size_t k = 0; k < params.size(); ++k)
    out.push_back(pgrad[k].defined() ? pgrad[k] : zeros_like(params[k]));
  return out;
}

}  // namespace

RevBlock::RevBlock(nn::ModulePtr f, nn::ModulePtr g) {
  RESIN_CHECK(f && g, "RevBlock: F and G must be modules");
  f_ = register_module("f", std::move(f));
  g_ = register_module("g", std::move(g));
}

std::pair<Tensor, Tensor> RevBlock::forward(const Tensor& x1, const Tensor& x2,
                                            std::optional<DType> compute) {
  const DType c = compute.value_or(x1.dtype());
  Tensor y1 = add(x1, call(*f_, x2, c));
  Tensor y2 = add(x2, call(*g_, y1, c));
  return {y1, y2};
}

std::pair<Tensor, Tensor> RevBlock::inverse(const Tensor& y1, const Tensor& y2,
                                            std::optional<DType> compute) {
  const DType c = compute.value_or(y1.dtype());
  Tensor x2 = sub(y2, call(*g_, y1, c));
  Tensor x1 = sub(y1, call(*f_, x2, c));
  return {x1, x2};
}

Tensor RevBlock::forward(const Tensor& x) {
  auto [x1, x2] = halves(x, 1, "RevBlock");
  auto [y1, y2] = forward(x1, x2);
  return concat({y1, y2}, 1);
}

ReversibleSequence::ReversibleSequence(std::vector<std::shared_ptr<RevBlock>> blocks,
                                       const ReversibleOptions& o)
    : blocks_(std::move(blocks)), o_(o) {
  for (size_t i = 0; i < blocks_.size(); ++i) {
    RESIN_CHECK(blocks_[i] != nullptr, "ReversibleSequence: block ", i, " is null");
    add_child(std::to_string(i), blocks_[i]);
  }
}

std::string ReversibleSequence::extra_repr() const {
  return str_cat("y1 = x1 + F(x2), y2 = x2 + G(y1); dim=", o_.dim,
                 o_.recompute ? ", recompute" : ", store activations", o_.wide_stream ? ", f64 stream" : "");
}

Tensor ReversibleSequence::forward(const Tensor& x) {
  RESIN_CHECK(x.defined(), "ReversibleSequence: input is undefined");
  const DType compute = x.dtype();
  const bool widen = o_.wide_stream && compute == DType::f32;
  auto [x1, x2] = halves(widen ? x.to(DType::f64) : x, o_.dim, "ReversibleSequence");
  auto [y1, y2] = forward(x1, x2, compute);
  Tensor y = concat({y1, y2}, o_.dim < 0 ? o_.dim + x.dim() : o_.dim);
  return widen ? y.to(compute) : y;
}

std::pair<Tensor, Tensor> ReversibleSequence::forward(const Tensor& x1, const Tensor& x2,
                                                      std::optional<DType> compute_opt) {
  RESIN_CHECK(x1.defined() && x2.defined() && x1.shape() == x2.shape() && x1.dtype() == x2.dtype(),
              "ReversibleSequence: the halves must be defined and of one shape and dtype");
  const DType compute = compute_opt.value_or(x1.dtype());
  auto node = std::make_shared<ReversibleBackward>();
  std::map<TensorImpl*, size_t> index;
  auto collect = [&](nn::Module& m) {
    std::vector<size_t> idx;
    for (Tensor& p : m.parameters()) {
      if (!p.requires_grad()) continue;
      auto [it, fresh] = index.emplace(p.impl(), node->params.size());
      if (fresh) node->params.push_back(p);
      idx.push_back(it->second);
    }
    return idx;
  };
  for (auto& b : blocks_) {
    node->f_params.push_back(collect(b->f()));
    node->g_params.push_back(collect(b->g()));
  }
  const bool need_grad =
      GradMode::is_enabled() && (x1.requires_grad() || x2.requires_grad() || !node->params.empty());
  Tensor a = x1, b = x2;
  if (!o_.recompute || !need_grad) {
    for (auto& blk : blocks_) std::tie(a, b) = blk->forward(a, b, compute);
    return {a, b};
  }
  {
    NoGradGuard ng;  // nothing inside the stack is recorded
    for (auto& blk : blocks_) {
      RngRecorder rf(is_training());
      Tensor y1 = add(a, call(blk->f(), b, compute));
      node->rng_f.push_back(rf.take());
      RngRecorder rg(is_training());
      Tensor y2 = add(b, call(blk->g(), y1, compute));
      node->rng_g.push_back(rg.take());
      a = y1;
      b = y2;
    }
  }
  node->blocks = blocks_;
  node->compute = compute;
  node->y1 = a.detach();
  node->y2 = b.detach();
  std::vector<const Tensor*> inputs{&x1, &x2};
  for (const Tensor& p : node->params) inputs.push_back(&p);
  autograd::set_history(node, inputs, {&a, &b});
  return {a, b};
}

Tensor ReversibleSequence::inverse(const Tensor& y) {
  RESIN_CHECK(y.defined(), "ReversibleSequence::inverse: input is undefined");
  const DType compute = y.dtype();
  const bool widen = o_.wide_stream && compute == DType::f32;
  auto [a, b] = halves(widen ? y.to(DType::f64) : y, o_.dim, "ReversibleSequence::inverse");
  auto [x1, x2] = inverse(a, b, compute);
  Tensor x = concat({x1, x2}, o_.dim < 0 ? o_.dim + y.dim() : o_.dim);
  return widen ? x.to(compute) : x;
}

std::pair<Tensor, Tensor> ReversibleSequence::inverse(const Tensor& y1, const Tensor& y2,
                                                      std::optional<DType> compute) {
  NoGradGuard ng;
  const BufferSnapshot buffers({this});
  Tensor a = y1, b = y2;
  for (size_t i = blocks_.size(); i-- > 0;) std::tie(a, b) = blocks_[i]->inverse(a, b, compute);
  return {a, b};
}

}  // namespace resin::blocks
