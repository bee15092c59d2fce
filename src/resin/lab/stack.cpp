#include "resin/lab/stack.h"

#include <algorithm>
#include <numeric>

#include "resin/autograd/grad_mode.h"
#include "resin/blocks/resnet_blocks.h"
#include "resin/models/lab_models.h"

namespace resin::lab {

using blocks::Mix;
using blocks::Post;
using blocks::Residual;

namespace {

nn::ModulePtr find_child(const nn::Module& m, const std::string& name) {
  for (const auto& [n, c] : m.children())
    if (n == name) return c;
  return nullptr;
}

std::vector<NamedModule> sequence_of(const nn::Sequential& seq, const std::string& prefix) {
  std::vector<NamedModule> out;
  for (const auto& [n, m] : seq.children()) out.emplace_back(prefix + n, m);
  return out;
}

// y = post(a·h(S(x)) + b·F(x)) with one of the two terms detached (Residual, linear mixes only); h
// (shortcut dropout) at its eval value, through the block's own shortcut_term so the two cannot drift.
Tensor residual_split(Residual& r, const Tensor& x, bool through_branch) {
  const auto& o = r.options();
  RESIN_CHECK(o.mix == Mix::sum || o.mix == Mix::scaled || o.mix == Mix::learned_scale,
              "lab: path-restricted backward needs a Residual with mix sum, scaled or learned_scale (a gate "
              "couples both terms), got ",
              r.formula());
  Tensor s = r.shortcut_term(x, /*training=*/false), f = r.branch(x);
  if (o.mix == Mix::scaled) {
    if (o.shortcut_scale != 1.0) s = mul(s, o.shortcut_scale);
    if (o.branch_scale != 1.0) f = mul(f, o.branch_scale);
  } else if (o.mix == Mix::learned_scale) {
    f = mul(f, r.alpha());
  }
  return r.post(through_branch ? add(s.detach(), f) : add(s, f.detach()));
}

template <class Block>
Tensor torchvision_block(Block& b, const Tensor& x, BlockMode mode) {
  switch (mode) {
    case BlockMode::full:
      return b.forward(x);
    case BlockMode::deleted:
      return b.shortcut(x);
    case BlockMode::skip_path:
      return relu(add(b.shortcut(x), b.branch(x).detach()));
    case BlockMode::branch_path:
      return relu(add(b.shortcut(x).detach(), b.branch(x)));
  }
  return x;
}

}  // namespace

bool is_residual_block(const nn::Module& block) {
  if (auto* r = dynamic_cast<const Residual*>(&block)) return r->options().mix != Mix::none;
  const std::string t = block.type_name();
  return t == "BasicBlock" || t == "Bottleneck";
}

BlockStack block_stack(models::LabNet& net) {
  auto seq = std::dynamic_pointer_cast<nn::Sequential>(net.blocks());
  RESIN_CHECK(seq != nullptr, "lab: block_stack needs a Sequential block stack, but ", net.type_name(),
              " has a ", net.blocks()->type_name(), " (its blocks take more than one input)");
  BlockStack s;
  if (net.flattens_input()) s.prepare = [](const Tensor& x) { return x.dim() == 2 ? x : x.flatten(1); };
  s.stem.emplace_back("stem", net.child("stem"));
  s.blocks = sequence_of(*seq, "blocks.");
  for (const char* n : {"final", "head"})
    if (auto m = find_child(net, n)) s.head.emplace_back(n, m);
  return s;
}

BlockStack block_stack(models::TransformerClassifier& net) {
  BlockStack s;
  s.stem.emplace_back("embed", net.child("embed"));
  auto layers = std::dynamic_pointer_cast<nn::Sequential>(net.encoder().child("layers"));
  RESIN_CHECK(layers != nullptr, "lab: TransformerEncoder without a layers Sequential");
  s.blocks = sequence_of(*layers, "encoder.layers.");
  if (auto norm = find_child(net.encoder(), "norm")) s.head.emplace_back("encoder.norm", norm);
  s.head.emplace_back("head", net.child("head"));
  return s;
}

BlockStack block_stack(nn::Sequential& blocks) {
  BlockStack s;
  s.blocks = sequence_of(blocks, "");
  return s;
}

Tensor apply_block(nn::Module& block, const Tensor& x, BlockMode mode) {
  if (auto* r = dynamic_cast<Residual*>(&block); r && r->options().mix != Mix::none) {
    switch (mode) {
      case BlockMode::full:
        return r->forward(x);
      case BlockMode::deleted:
        return r->shortcut_term(x, /*training=*/false);
      case BlockMode::skip_path:
        return residual_split(*r, x, false);
      case BlockMode::branch_path:
        return residual_split(*r, x, true);
    }
  }
  if (auto* b = dynamic_cast<blocks::BasicBlock*>(&block); b && is_residual_block(block))
    return torchvision_block(*b, x, mode);
  if (auto* b = dynamic_cast<blocks::Bottleneck*>(&block); b && is_residual_block(block))
    return torchvision_block(*b, x, mode);
  // A plain, single-path block.
  switch (mode) {
    case BlockMode::full:
    case BlockMode::branch_path:
      return block.forward(x);
    case BlockMode::deleted: {
      // y = x is only meaningful for a shape-preserving block: probe its output shape in eval mode
      // without gradients (so BN statistics are not updated).
      NoGradGuard ng;
      const bool was_training = block.is_training();
      block.eval();
      const Shape out = block.forward(x).shape();
      block.train(was_training);
      RESIN_CHECK(out == x.shape(), "lab: cannot delete plain block ", block.type_name(), ": it maps ",
                  x.shape(), " to ", out);
      return x;
    }
    case BlockMode::skip_path:
      RESIN_FAIL("lab: block ", block.type_name(),
                 " has no skip connection (skip_path needs a residual block)");
  }
  return x;
}

Device BlockStack::device() const {
  for (const auto* part : {&stem, &blocks, &head})
    for (const auto& [_, m] : *part)
      if (const auto d = m->placement()) return *d;
  return Device::cpu();
}

Tensor run_stem(const BlockStack& s, const Tensor& input) {
  const Tensor x = input.to(s.device());
  Tensor h = s.prepare ? s.prepare(x) : x;
  for (const auto& [_, m] : s.stem) h = m->forward(h);
  return h;
}

Tensor run_from_stem(const BlockStack& s, const Tensor& x0, const RunOptions& o) {
  RESIN_CHECK(o.modes.empty() || o.modes.size() == s.size(), "lab: run_stack: ", o.modes.size(),
              " modes for ", s.size(), " blocks");
  Tensor h = x0;
  if (o.on_output) o.on_output(0, h);
  const size_t steps = o.order.empty() ? s.size() : o.order.size();
  for (size_t p = 0; p < steps; ++p) {
    const size_t i = o.order.empty() ? p : o.order[p];
    RESIN_CHECK(i < s.size(), "lab: run_stack: block index ", i, " out of range (", s.size(), " blocks)");
    const BlockMode mode = o.modes.empty() ? BlockMode::full : o.modes[i];
    h = apply_block(*s.blocks[i].second, h, mode);
    if (o.on_output) o.on_output(p + 1, h);
  }
  if (o.run_head)
    for (const auto& [_, m] : s.head) h = m->forward(h);
  return h;
}

Tensor run_stack(const BlockStack& s, const Tensor& input, const RunOptions& o) {
  return run_from_stem(s, run_stem(s, input), o);
}

std::vector<BlockMode> delete_blocks(size_t n, const std::vector<size_t>& deleted) {
  std::vector<BlockMode> m(n, BlockMode::full);
  for (size_t i : deleted) {
    RESIN_CHECK(i < n, "lab: delete_blocks: index ", i, " out of range (", n, " blocks)");
    m[i] = BlockMode::deleted;
  }
  return m;
}

std::vector<size_t> sample_without_replacement(const std::vector<size_t>& candidates, size_t k,
                                               Generator& g) {
  RESIN_CHECK(k <= candidates.size(), "lab: cannot draw ", k, " of ", candidates.size(), " blocks");
  std::vector<size_t> pool = candidates;
  // Partial Fisher–Yates: the first k entries are a uniform k-subset.
  for (size_t i = 0; i < k; ++i) std::swap(pool[i], pool[i + g.below(pool.size() - i)]);
  pool.resize(k);
  return pool;
}

std::vector<size_t> swap_random_pairs(size_t n, const std::vector<size_t>& candidates, size_t k,
                                      Generator& g) {
  RESIN_CHECK(candidates.size() >= 2 || k == 0, "lab: swapping needs at least two candidate blocks");
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  for (size_t t = 0; t < k; ++t) {
    const auto pair = sample_without_replacement(candidates, 2, g);
    RESIN_CHECK(pair[0] < n && pair[1] < n, "lab: swap candidate out of range");
    std::swap(order[pair[0]], order[pair[1]]);
  }
  return order;
}

double kendall_tau(const std::vector<size_t>& order) {
  const size_t n = order.size();
  if (n < 2) return 1.0;
  int64_t inversions = 0;
  for (size_t i = 0; i < n; ++i)
    for (size_t j = i + 1; j < n; ++j) inversions += order[i] > order[j];
  return 1.0 - 4.0 * static_cast<double>(inversions) / static_cast<double>(n * (n - 1));
}

std::vector<size_t> residual_blocks(const BlockStack& s, bool identity_shortcut_only) {
  std::vector<size_t> out;
  for (size_t i = 0; i < s.size(); ++i) {
    const nn::Module& b = *s.blocks[i].second;
    // Residual names a non-identity shortcut "shortcut", torchvision blocks "downsample".
    if (is_residual_block(b) &&
        !(identity_shortcut_only && (find_child(b, "shortcut") || find_child(b, "downsample"))))
      out.push_back(i);
  }
  return out;
}

double classification_error(const BlockStack& s, const Tensor& x, const Tensor& labels, const RunOptions& o,
                            int64_t batch) {
  RESIN_CHECK(x.dim() >= 2 && labels.dim() == 1 && x.size(0) == labels.size(0),
              "lab: classification_error: ", x.shape(), " inputs for ", labels.shape(), " labels");
  NoGradGuard ng;
  const int64_t n = x.size(0);
  int64_t wrong = 0;
  const auto lab = labels.values<int64_t>();
  for (int64_t b0 = 0; b0 < n; b0 += batch) {
    const int64_t len = std::min(batch, n - b0);
    const auto pred = argmax(run_stack(s, x.narrow(0, b0, len), o).to(Device::cpu()), 1).values<int64_t>();
    for (int64_t i = 0; i < len; ++i)
      wrong += pred[static_cast<size_t>(i)] != lab[static_cast<size_t>(b0 + i)];
  }
  return n ? static_cast<double>(wrong) / static_cast<double>(n) : 0.0;
}

}  // namespace resin::lab
