// The backward engine: Kahn's algorithm over the graph reachable from the roots, with an explicit
// stack — never recursion — so a 1001-layer network cannot overflow the C++ stack.
#include <algorithm>
#include <atomic>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "resin/autograd/grad_mode.h"
#include "resin/autograd/node.h"
#include "resin/backend/backend.h"
#include "resin/ops/ops.h"

namespace resin {

namespace {
thread_local bool t_grad_enabled = true;
}
bool GradMode::is_enabled() { return t_grad_enabled; }
void GradMode::set_enabled(bool e) { t_grad_enabled = e; }

namespace autograd {

namespace {
std::atomic<uint64_t> g_next_sequence_nr{0};

Tensor accumulate(const Tensor& a, const Tensor& b) {
  if (!a.defined()) return b;
  if (!b.defined()) return a;
  return add(a, b);  // out of place: gradient tensors are never mutated
}

// True while autograd::grad runs on this thread: it returns gradients instead of storing them, so
// retain_grad hooks must not fill .grad either.
thread_local bool t_capturing = false;

struct CaptureGuard {
  bool prev;
  explicit CaptureGuard(bool on) : prev(t_capturing) { t_capturing = on; }
  ~CaptureGuard() { t_capturing = prev; }
};

struct CaptureSlot {
  Node* fn;
  uint32_t input_nr;
};

void execute(const std::vector<Edge>& roots, const std::vector<Tensor>& root_grads,
             bool retain_graph, const std::vector<CaptureSlot>* capture,
             std::vector<Tensor>* captured) {
  NoGradGuard no_grad;
  CaptureGuard capturing(capture != nullptr);
  // 1. Dependency counts: how many edges point at each node.
  std::unordered_map<Node*, int> deps;
  std::unordered_map<Node*, std::shared_ptr<Node>> keep_alive;
  std::vector<Node*> stack;
  std::unordered_set<Node*> seen;
  for (const Edge& r : roots) {
    if (seen.insert(r.fn.get()).second) {
      stack.push_back(r.fn.get());
      keep_alive[r.fn.get()] = r.fn;
    }
  }
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (const Edge& e : n->next_edges()) {
      if (!e.fn) continue;
      ++deps[e.fn.get()];
      if (seen.insert(e.fn.get()).second) stack.push_back(e.fn.get());
    }
  }
  // 2. Seed the input buffers with the root gradients.
  std::unordered_map<Node*, std::vector<Tensor>> buffers;
  // For a node that fuses the sum (Node::fuses_gradient_sum), the last of several gradients is kept
  // apart until the node runs; earlier ones are added as they come, so the additions happen in the
  // order they would without fusion and no more than one extra tensor is held.
  std::unordered_map<Node*, Tensor> second_parts;
  auto deliver = [&](Node* fn, uint32_t slot, const Tensor& g) {
    auto& buf = buffers[fn];
    if (buf.size() < fn->num_outputs()) buf.resize(fn->num_outputs());
    if (buf[slot].defined() && fn->num_outputs() == 1 && fn->fuses_gradient_sum()) {
      const auto d = deps.find(fn);
      if (d != deps.end() && d->second == 1) {  // this edge is the node's last one
        Tensor& second = second_parts[fn];
        // Only a root delivered twice can come here with one already set: it is added as usual.
        if (second.defined()) buf[slot] = accumulate(buf[slot], second);
        second = g;
        return;
      }
    }
    buf[slot] = accumulate(buf[slot], g);
  };
  for (size_t i = 0; i < roots.size(); ++i) deliver(roots[i].fn.get(), roots[i].input_nr, root_grads[i]);
  std::vector<Node*> ready;
  for (auto& [fn, _] : keep_alive)
    if (deps[fn] == 0) ready.push_back(fn);

  // 3. Run nodes once all their consumers have delivered.
  while (!ready.empty()) {
    Node* n = ready.back();
    ready.pop_back();
    std::vector<Tensor> grads = std::move(buffers[n]);
    buffers.erase(n);
    grads.resize(n->num_outputs());
    Tensor second;
    if (auto it = second_parts.find(n); it != second_parts.end()) {
      second = std::move(it->second);
      second_parts.erase(it);
    }
    auto& hooks = n->pre_hooks();
    // Hooks and captures see the summed gradient: then the sum is not fused (checked only for the
    // nodes that hold a second part, not for every node of every backward).
    auto observed = [&] {
      return (!hooks.empty() && !hooks[0].empty()) ||
             (capture && std::any_of(capture->begin(), capture->end(),
                                     [n](const CaptureSlot& c) { return c.fn == n; }));
    };
    if (second.defined() && observed()) grads[0] = accumulate(grads[0], std::exchange(second, Tensor()));
    for (uint32_t k = 0; k < grads.size(); ++k) {
      if (!grads[k].defined() && k < n->output_meta().size()) {
        const auto& m = n->output_meta()[k];
        grads[k] = zeros(m.shape, {.dtype = m.dtype, .device = m.device});
      }
      if (k < hooks.size())
        for (auto& h : hooks[k]) {
          Tensor r = h(grads[k]);
          if (r.defined()) grads[k] = r;
        }
    }
    if (capture) {
      for (size_t c = 0; c < capture->size(); ++c)
        if ((*capture)[c].fn == n) (*captured)[c] = accumulate((*captured)[c], grads[(*capture)[c].input_nr]);
      if (dynamic_cast<AccumulateGrad*>(n)) continue;  // autograd::grad leaves .grad untouched
    }
    RESIN_CHECK(!(n->released() && n->saves_tensors()), n->name(),
                ": trying to backward through the graph a second time, but its saved tensors "
                "were already freed. Pass retain_graph=true to the first backward.");
    std::vector<Tensor> outs =
        second.defined() ? n->apply_sum(std::move(grads), second) : n->apply(std::move(grads));
    second = Tensor();
    RESIN_CHECK(outs.size() == n->next_edges().size(), n->name(), ": returned ", outs.size(),
                " gradients for ", n->next_edges().size(), " inputs");
    if (!retain_graph) {
      n->release_saved();
      n->mark_released();
    }
    for (size_t i = 0; i < outs.size(); ++i) {
      const Edge& e = n->next_edges()[i];
      if (!e.fn) continue;
      if (outs[i].defined()) deliver(e.fn.get(), e.input_nr, outs[i]);
      if (--deps[e.fn.get()] == 0) {
        keep_alive.emplace(e.fn.get(), e.fn);
        ready.push_back(e.fn.get());
      }
    }
  }
}

}  // namespace

Node::Node() : sequence_nr_(g_next_sequence_nr++) {}

std::vector<Tensor> Node::apply_sum(std::vector<Tensor>&& grads, const Tensor& second) {
  grads[0] = accumulate(grads[0], second);
  return apply(std::move(grads));
}

namespace {
// Nodes whose last reference is being dropped by an enclosing ~Node on this thread.
thread_local std::vector<std::shared_ptr<Node>>* t_pending_release = nullptr;
}  // namespace

Node::~Node() {
  // Dropping an edge may destroy the next node, whose destructor would drop its edges, and so on
  // down the whole graph: recursion as deep as the network. Instead the outermost destructor
  // collects the edges and releases them in a loop; nested destructors only hand theirs over.
  if (t_pending_release) {
    for (Edge& e : next_edges_)
      if (e.fn) t_pending_release->push_back(std::move(e.fn));
    return;
  }
  std::vector<std::shared_ptr<Node>> pending;
  for (Edge& e : next_edges_)
    if (e.fn) pending.push_back(std::move(e.fn));
  t_pending_release = &pending;
  while (!pending.empty()) {
    std::shared_ptr<Node> n = std::move(pending.back());
    pending.pop_back();
    n.reset();  // may run ~Node, which appends to `pending`
  }
  t_pending_release = nullptr;
}

void Node::add_pre_hook(uint32_t output_nr, GradHook h) {
  if (pre_hooks_.size() <= output_nr) pre_hooks_.resize(output_nr + 1);
  pre_hooks_[output_nr].push_back(std::move(h));
}

namespace {
// The first gradient stored in a leaf's .grad: optimisers update it in place and may walk it
// alongside the parameter's data, so it must own its storage (not alias another leaf's gradient,
// a view of a bigger buffer, or the tensor passed to backward) and have the leaf's strides.
Tensor owned_gradient(Tensor g, const std::shared_ptr<TensorImpl>& leaf) {
  const Tensor lt(leaf);
  const Strides want = lt.is_non_overlapping_dense() ? lt.strides() : contiguous_strides(lt.shape());
  const bool exclusive = g.impl_ptr().use_count() == 1 && g.impl()->storage().use_count() == 1;
  if (exclusive && g.strides() == want) return g;
  Tensor out = empty_strided(lt.shape(), want, {.dtype = g.dtype(), .device = g.device()});
  backend::backend_for(out).copy(g, out);
  return out;
}
}  // namespace

std::vector<Tensor> AccumulateGrad::apply(std::vector<Tensor>&& grads) {
  Tensor g = std::move(grads[0]);
  auto& meta = leaf_->autograd_mut();
  for (auto& h : meta.hooks) {
    Tensor r = h(g);
    if (r.defined()) g = r;
  }
  RESIN_CHECK(g.shape() == leaf_->shape(), "AccumulateGrad: gradient of shape ", g.shape(),
              " for a leaf of shape ", leaf_->shape());
  // Accumulation allocates a fresh tensor with the layout of the stored gradient.
  meta.grad = meta.grad.defined() ? add(meta.grad, g) : owned_gradient(std::move(g), leaf_);
  if (!meta.post_accumulate_hooks.empty()) {
    const Tensor leaf(leaf_);
    for (auto& h : meta.post_accumulate_hooks) h(leaf);
  }
  return {};
}

Edge gradient_edge(const Tensor& t) {
  if (auto fn = t.grad_fn()) return {fn, t.output_nr()};
  if (!t.requires_grad()) return {};
  auto& meta = t.impl()->autograd_mut();
  auto acc = meta.grad_accumulator.lock();
  if (!acc) {
    acc = std::make_shared<AccumulateGrad>(t.impl_ptr());
    meta.grad_accumulator = acc;
  }
  return {acc, 0};
}

bool any_requires_grad(std::initializer_list<const Tensor*> inputs) {
  if (!GradMode::is_enabled()) return false;
  for (const Tensor* t : inputs)
    if (t && t->defined() && t->requires_grad()) return true;
  return false;
}

bool any_requires_grad(const std::vector<Tensor>& inputs) {
  if (!GradMode::is_enabled()) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

void set_history(const std::shared_ptr<Node>& node, const std::vector<const Tensor*>& inputs,
                 const std::vector<Tensor*>& outputs) {
  for (const Tensor* in : inputs)
    node->next_edges().push_back(in && in->defined() && in->requires_grad() ? gradient_edge(*in) : Edge{});
  node->set_num_outputs(static_cast<uint32_t>(outputs.size()));
  for (uint32_t k = 0; k < outputs.size(); ++k) {
    auto& meta = outputs[k]->impl()->autograd_mut();
    meta.requires_grad = true;
    meta.grad_fn = node;
    meta.output_nr = k;
    node->output_meta().push_back({outputs[k]->shape(), outputs[k]->dtype(), outputs[k]->device()});
  }
}

static std::vector<Edge> root_edges(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads) {
  RESIN_CHECK(roots.size() == grads.size(), "backward: ", roots.size(), " outputs but ",
              grads.size(), " gradients");
  std::vector<Edge> edges;
  for (size_t i = 0; i < roots.size(); ++i) {
    RESIN_CHECK(roots[i].requires_grad(), "backward: output ", i,
                " does not require grad and has no grad_fn");
    RESIN_CHECK(grads[i].defined() && grads[i].shape() == roots[i].shape(), "backward: gradient for output ", i,
                " has shape ", grads[i].defined() ? grads[i].shape().str() : "undefined",
                ", expected ", roots[i].shape());
    RESIN_CHECK(grads[i].dtype() == roots[i].dtype(), "backward: gradient for output ", i, " has dtype ",
                grads[i].dtype(), ", expected ", roots[i].dtype());
    RESIN_CHECK(grads[i].device() == roots[i].device(), "backward: gradient for output ", i, " is on ",
                grads[i].device(), ", expected ", roots[i].device());
    edges.push_back(gradient_edge(roots[i]));
  }
  return edges;
}

void run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads, bool retain_graph) {
  execute(root_edges(roots, grads), grads, retain_graph, nullptr, nullptr);
}

std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs, bool retain_graph) {
  std::vector<CaptureSlot> slots;
  std::vector<Edge> keep;
  for (const Tensor& in : inputs) {
    RESIN_CHECK(in.requires_grad(), "autograd::grad: an input does not require grad");
    Edge e = gradient_edge(in);
    keep.push_back(e);
    slots.push_back({e.fn.get(), e.input_nr});
  }
  std::vector<Tensor> captured(inputs.size());
  execute(root_edges(outputs, grad_outputs), grad_outputs, retain_graph, &slots, &captured);
  for (size_t i = 0; i < captured.size(); ++i)
    if (!captured[i].defined()) captured[i] = zeros_like(inputs[i]);
  return captured;
}

}  // namespace autograd

// ---- Tensor methods that need the engine
void Tensor::backward(const Tensor& g, bool retain_graph) const {
  Tensor grad = g;
  if (!grad.defined()) {
    RESIN_CHECK(numel() == 1, "backward: grad can be implicitly created only for scalar outputs, got shape ",
                shape());
    grad = ones(shape(), {.dtype = dtype(), .device = device()});
  }
  autograd::run_backward({*this}, {grad}, retain_graph);
}

void Tensor::retain_grad() const {
  RESIN_CHECK(requires_grad(), "retain_grad: tensor does not require grad");
  if (is_leaf()) return;
  auto& meta = impl()->autograd_mut();
  if (meta.retains_grad) return;
  meta.retains_grad = true;
  std::weak_ptr<TensorImpl> weak = impl_ptr();
  grad_fn()->add_pre_hook(output_nr(), [weak](const Tensor& g) {
    if (autograd::t_capturing) return Tensor();  // autograd::grad leaves .grad untouched
    if (auto p = weak.lock()) {
      auto& m = p->autograd_mut();
      m.grad = m.grad.defined() ? add(m.grad, g) : g;
    }
    return Tensor();
  });
}

void Tensor::register_hook(GradHook hook) const {
  RESIN_CHECK(requires_grad(), "register_hook: cannot register a hook on a tensor that does not require grad");
  if (is_leaf()) {
    impl()->autograd_mut().hooks.push_back(std::move(hook));
  } else if (impl()->autograd()->retains_grad) {
    // The retain_grad hook stays last, so .grad shows the gradient after every user hook.
    auto& slot = grad_fn()->pre_hooks()[output_nr()];
    slot.insert(slot.end() - 1, std::move(hook));
  } else {
    grad_fn()->add_pre_hook(output_nr(), std::move(hook));
  }
}

void Tensor::register_post_accumulate_grad_hook(PostAccumulateGradHook hook) const {
  RESIN_CHECK(requires_grad() && is_leaf(),
              "register_post_accumulate_grad_hook: only leaves that require grad accumulate gradients");
  impl()->autograd_mut().post_accumulate_hooks.push_back(std::move(hook));
}

}  // namespace resin
