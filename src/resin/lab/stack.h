// A network seen as stem → blocks → head, the view every lab analysis works on: run it block by
// block, delete or reorder blocks at test time (Veit et al. 2016), or restrict the backward pass of
// each residual block to its branch or its skip connection.
//
//   auto net = models::make_res_mlp({.width = 64, .blocks = 54, .placement = UnitPlacement::full_preact});
//   BlockStack s = block_stack(*net);
//   Tensor logits = run_stack(s, x, {.modes = delete_blocks(s.size(), {3, 17})});
//
// Block kinds: blocks::Residual (the combinator of residual.h, all units), BasicBlock/Bottleneck
// (resnet_blocks.h), and any other module, treated as a plain single-path block. Modes:
//   full         the block as built
//   deleted      residual blocks: y = h(S(x)), the shortcut alone (the identity when shapes match;
//                ×(1 − p) with unrescaled shortcut dropout, as the full block in eval mode; the mix's
//                scale λ_s is not applied); plain blocks: y = x (throws if the block changes the
//                shape; probed in eval mode without gradients on every call)
//   skip_path    y has the forward value of the full block, but gradients flow back only through
//   branch_path  the skip term (skip_path) or only through the branch term (branch_path); the
//                other term is detached. Residual with Mix sum/scaled/learned_scale only; for a
//                plain block branch_path = full and skip_path throws (it has no skip).
// Training-time randomness (drop-path, shortcut dropout) is not applied in the split and deleted
// modes: shortcut dropout enters at its eval value (Residual::shortcut_term(x, false)), so in eval
// mode the split modes reproduce the full block's value exactly. Run analyses in eval mode.
#pragma once
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "resin/core/rng.h"
#include "resin/nn/module.h"

namespace resin::models {
class LabNet;
class TransformerClassifier;
}  // namespace resin::models
namespace resin::nn {
class Sequential;
}

namespace resin::lab {

using NamedModule = std::pair<std::string, nn::ModulePtr>;

struct BlockStack {
  std::function<Tensor(const Tensor&)> prepare{};  // applied to the input first (e.g. flatten); may be empty
  std::vector<NamedModule> stem{}, blocks{}, head{};  // each run in order; names label tables and plots
  size_t size() const { return blocks.size(); }
  // The device of the first module with tensors (Module::placement; the CPU when none has any):
  // run_stem moves its input there, so host data can be fed to a model on a GPU.
  Device device() const;
};

// LabNet: prepare = its input flattening, stem, the blocks of a Sequential stack, final + head.
// Throws for LaurelSequence / ReversibleSequence stacks (their blocks see more than one input).
BlockStack block_stack(models::LabNet& net);
// Transformer classifier: embed | encoder layers | final LN (if any) + head.
BlockStack block_stack(models::TransformerClassifier& net);
// A bare Sequential of blocks (empty stem and head).
BlockStack block_stack(nn::Sequential& blocks);

enum class BlockMode : uint8_t { full, deleted, skip_path, branch_path };

// Whether a block has a skip connection (Residual with a mixing rule, BasicBlock/Bottleneck with
// residual = true).
bool is_residual_block(const nn::Module& block);

struct RunOptions {
  std::vector<size_t> order{};     // block indices in execution order (empty: 0..n−1); may repeat/omit
  std::vector<BlockMode> modes{};  // per block index (empty: all full)
  // Called with x_p, the representation at position p: p = 0 the stem output, p = i + 1 after the
  // i-th block executed. The visitor may register gradient hooks on it.
  std::function<void(size_t p, const Tensor& x)> on_output{};
  bool run_head = true;  // false: return the last block's output
};

// One block in the given mode.
Tensor apply_block(nn::Module& block, const Tensor& x, BlockMode mode);
// prepare → stem → blocks (order, modes) → head.
Tensor run_stack(const BlockStack& s, const Tensor& input, const RunOptions& o = {});
// The stem alone (input moved to s.device(), then prepare + stem): x_0.
Tensor run_stem(const BlockStack& s, const Tensor& input);
// The blocks and head from a given x_0 (for analyses that differentiate w.r.t. x_0).
Tensor run_from_stem(const BlockStack& s, const Tensor& x0, const RunOptions& o = {});

// ---- lesion plans (Veit et al. 2016 §4–5)
// Modes with the listed blocks deleted.
std::vector<BlockMode> delete_blocks(size_t n, const std::vector<size_t>& deleted);
// k distinct indices drawn uniformly from `candidates` (k ≤ candidates.size()).
std::vector<size_t> sample_without_replacement(const std::vector<size_t>& candidates, size_t k, Generator& g);
// 0..n−1 with k random transpositions of two distinct positions among `candidates` applied in
// turn (the same pair may be drawn twice, as in Veit's reordering).
std::vector<size_t> swap_random_pairs(size_t n, const std::vector<size_t>& candidates, size_t k,
                                      Generator& g);
// Kendall's τ between a permutation of 0..n−1 and the identity: 1 − 4·inversions / (n(n−1)).
double kendall_tau(const std::vector<size_t>& order);
// Indices of the blocks with a skip connection (deletion candidates); with identity_shortcut_only,
// only those whose shortcut is the identity (shape-preserving: the candidates for reordering).
std::vector<size_t> residual_blocks(const BlockStack& s, bool identity_shortcut_only = false);

// Top-1 error (fraction) of the stack's logits on (x, labels) in batches, without gradients.
double classification_error(const BlockStack& s, const Tensor& x, const Tensor& labels,
                            const RunOptions& o = {}, int64_t batch = 500);

}  // namespace resin::lab
