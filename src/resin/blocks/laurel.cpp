#include "resin/blocks/laurel.h"

#include "resin/blocks/param.h"
#include "resin/nn/init.h"

namespace resin::blocks {

LaurelBlock::LaurelBlock(nn::ModulePtr branch, const LaurelOptions& o) : o_(o) {
  RESIN_CHECK(branch != nullptr, "LaurelBlock: the branch module is null");
  RESIN_CHECK(o.features > 0 && o.lr_rank >= 0 && o.pa_k >= 0 && o.pa_rank >= 0,
              "LaurelBlock: invalid options features=", o.features, " lr_rank=", o.lr_rank, " pa_k=", o.pa_k,
              " pa_rank=", o.pa_rank);
  const int64_t D = o.features;
  branch_ = register_module("branch", std::move(branch));
  if (o.rw) register_parameter("rw", zeros({2}));
  auto low_rank = [&](const char* an, const char* bn, int64_t r, bool zero_b) {
    Tensor& a = register_parameter(an, empty({r, D}));
    nn::init::xavier_uniform_(a);
    Tensor& b = register_parameter(bn, empty({D, r}));
    if (zero_b)
      nn::init::constant_(b, 0.0);
    else
      nn::init::xavier_uniform_(b);
  };
  // LR: B = 0 makes the block start as x + F(x); B's gradient (through A·x ≠ 0) is not zero.
  if (o.lr_rank > 0) low_rank("lr_a", "lr_b", o.lr_rank, true);
  if (o.pa_k > 0) {
    register_parameter("pa_gamma", zeros({o.pa_k}));
    // γ = 0 already makes PA vanish at init; h stays non-zero so that γ gets a gradient.
    if (o.pa_rank > 0) low_rank("pa_a", "pa_b", o.pa_rank, false);
  }
}

std::string LaurelBlock::extra_repr() const {
  std::string s = o_.rw ? "RW" : "";
  if (o_.lr_rank > 0) s += str_cat(s.empty() ? "" : "+", "LR(r=", o_.lr_rank, ")");
  if (o_.pa_k > 0) s += str_cat(s.empty() ? "" : "+", "PA(k=", o_.pa_k, ", r=", o_.pa_rank, ")");
  return s.empty() ? "x + F(x)" : s;
}

Tensor LaurelBlock::p(const char* name) const { return own_param(*this, name); }

int64_t LaurelBlock::added_parameters() const {
  int64_t n = 0;
  for (const char* name : {"rw", "lr_a", "lr_b", "pa_gamma", "pa_a", "pa_b"})
    if (Tensor t = p(name); t.defined()) n += t.numel();
  return n;
}

Tensor LaurelBlock::map(const Tensor& x, const Tensor& a, const Tensor& b) const {
  if (o_.layer == Layer::linear) return linear(linear(x, a), b);
  RESIN_CHECK(x.dim() == 4, "LaurelBlock: Layer::conv expects [N, C, H, W], got shape ", x.shape());
  Tensor h = conv2d(x, a.reshape({a.size(0), a.size(1), 1, 1}));
  return conv2d(h, b.reshape({b.size(0), b.size(1), 1, 1}));
}

Tensor LaurelBlock::forward(const Tensor& x, const std::vector<Tensor>& history) {
  const int64_t fdim = o_.layer == Layer::linear ? x.dim() - 1 : 1;
  RESIN_CHECK(x.dim() >= 1 && x.size(fdim) == o_.features, "LaurelBlock: expected ", o_.features,
              " features in dim ", fdim, ", got shape ", x.shape());
  Tensor f = branch_->forward(x);
  RESIN_CHECK(f.shape() == x.shape(), "LaurelBlock: the branch changes the shape ", x.shape(), " -> ",
              f.shape());
  Tensor g = x;
  if (o_.lr_rank > 0) g = add(g, map(x, p("lr_a"), p("lr_b")));
  for (int64_t j = 0; j < o_.pa_k; ++j) {
    const int64_t back = static_cast<int64_t>(history.size()) - j;  // j = 0 is x itself
    if (j > 0 && back < 0) break;
    const Tensor& xj = j == 0 ? x : history[static_cast<size_t>(back)];
    Tensor hj = o_.pa_rank > 0 ? map(xj, p("pa_a"), p("pa_b")) : xj;
    g = add(g, mul(hj, p("pa_gamma").select(0, j)));
  }
  if (!o_.rw) return add(f, g);
  Tensor ab = mul(softmax(p("rw"), 0), 2.0);
  return add(mul(f, ab.select(0, 0)), mul(g, ab.select(0, 1)));
}

LaurelSequence& LaurelSequence::push_back(std::shared_ptr<LaurelBlock> b) {
  RESIN_CHECK(b != nullptr, "LaurelSequence: null block");
  add_child(std::to_string(blocks_.size()), b);
  blocks_.push_back(std::move(b));
  return *this;
}

Tensor LaurelSequence::forward(const Tensor& x) {
  std::vector<Tensor> history;
  Tensor h = x;
  for (auto& b : blocks_) {
    Tensor y = b->forward(h, history);
    history.push_back(h);
    h = y;
  }
  return h;
}

}  // namespace resin::blocks
