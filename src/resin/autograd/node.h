// Backward graph nodes. Every differentiable op defines a named `XBackward` node next to its
// forward (ops/*.cpp). A node receives one gradient per output of the forward and returns one
// gradient per input (an undefined Tensor where an input needs none).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "resin/tensor/tensor.h"

namespace resin::autograd {

class Node;

// Where a gradient goes: input slot `input_nr` of node `fn`.
struct Edge {
  std::shared_ptr<Node> fn;
  uint32_t input_nr = 0;
  bool valid() const { return fn != nullptr; }
};

class Node : public std::enable_shared_from_this<Node> {
 public:
  // Releases the graph behind this node iteratively: a chain of 100k nodes must not recurse 100k
  // destructors deep (engine.cpp).
  virtual ~Node();
  virtual std::string name() const = 0;
  // grads.size() == num_outputs(); returns one entry per next_edges().
  virtual std::vector<Tensor> apply(std::vector<Tensor>&& grads) = 0;
  // A node with one output whose backward can add two incoming gradients inside its own pass (one
  // pass over memory instead of an add, then the backward) returns true. When two consumers deliver,
  // the engine then calls apply_sum(grads, second) with the last one apart instead of
  // apply(grads[0] + second); the result must equal that exactly (the same addition, not stored).
  virtual bool fuses_gradient_sum() const { return false; }
  virtual std::vector<Tensor> apply_sum(std::vector<Tensor>&& grads, const Tensor& second);
  // Saved tensors are dropped after backward unless retain_graph; nodes that save override both.
  virtual void release_saved() {}
  virtual bool saves_tensors() const { return false; }

  uint32_t num_outputs() const { return num_outputs_; }
  void set_num_outputs(uint32_t n) { num_outputs_ = n; }
  std::vector<Edge>& next_edges() { return next_edges_; }
  // Whether input i wants a gradient (its edge leads somewhere).
  bool needs_input_grad(size_t i) const { return i < next_edges_.size() && next_edges_[i].valid(); }
  const std::vector<Edge>& next_edges() const { return next_edges_; }
  uint64_t sequence_nr() const { return sequence_nr_; }
  bool released() const { return released_; }
  void mark_released() { released_ = true; }

  // Hooks run on the incoming gradient of output `output_nr` before apply().
  void add_pre_hook(uint32_t output_nr, GradHook h);
  std::vector<std::vector<GradHook>>& pre_hooks() { return pre_hooks_; }
  // Metadata of each output, to build zero gradients for outputs that got none.
  struct OutputMeta {
    Shape shape;
    DType dtype = DType::f32;
    Device device;
  };
  std::vector<OutputMeta>& output_meta() { return output_meta_; }

 protected:
  Node();

 private:
  std::vector<Edge> next_edges_;
  uint32_t num_outputs_ = 1;
  uint64_t sequence_nr_;
  bool released_ = false;
  std::vector<std::vector<GradHook>> pre_hooks_;
  std::vector<OutputMeta> output_meta_;
};

// The sink for a leaf tensor: adds incoming gradients into leaf.grad().
class AccumulateGrad final : public Node {
 public:
  explicit AccumulateGrad(std::shared_ptr<TensorImpl> leaf) : leaf_(std::move(leaf)) {}
  std::string name() const override { return "AccumulateGrad"; }
  std::vector<Tensor> apply(std::vector<Tensor>&& grads) override;
  const std::shared_ptr<TensorImpl>& leaf() const { return leaf_; }

 private:
  std::shared_ptr<TensorImpl> leaf_;
};

// The edge a gradient for `t` should flow into (its grad_fn, or its leaf accumulator).
Edge gradient_edge(const Tensor& t);

// True when grad mode is on and any input requires grad.
bool any_requires_grad(std::initializer_list<const Tensor*> inputs);
bool any_requires_grad(const std::vector<Tensor>& inputs);

// Connects a freshly made node to its inputs and makes it the grad_fn of `outputs`.
void set_history(const std::shared_ptr<Node>& node, const std::vector<const Tensor*>& inputs,
                 const std::vector<Tensor*>& outputs);

// Runs backward from `roots` with the given root gradients (engine.cpp).
void run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads,
                  bool retain_graph);

// Computes gradients of `outputs` w.r.t. `inputs` without touching .grad (for gradcheck).
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs, bool retain_graph = false);

}  // namespace resin::autograd
