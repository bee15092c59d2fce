#include "resin/onnx/ops.h"

#include <atomic>

#include "resin/onnx/import.h"

namespace resin::onnx {

const nn::OnnxAttr* OpContext::find(const std::string& name) const {
  for (const auto& a : node_.attrs)
    if (a.name == name) return &a;
  return nullptr;
}

void OpContext::fail(const std::string& message) const { RESIN_FAIL(message); }

template <class T>
const T& OpContext::get(const std::string& name, const char* type) const {
  const nn::OnnxAttr* a = find(name);
  if (!a) fail("missing required attribute '" + name + "'");
  const T* v = std::get_if<T>(&a->value);
  if (!v) fail("attribute '" + name + "' must be of type " + type);
  return *v;
}

int64_t OpContext::i(const std::string& name, int64_t def) const { return has(name) ? i(name) : def; }
int64_t OpContext::i(const std::string& name) const { return get<int64_t>(name, "INT"); }
double OpContext::f(const std::string& name, double def) const {
  return has(name) ? get<double>(name, "FLOAT") : def;
}
std::string OpContext::s(const std::string& name, const std::string& def) const {
  return has(name) ? get<std::string>(name, "STRING") : def;
}
std::vector<int64_t> OpContext::ints(const std::string& name, const std::vector<int64_t>& def) const {
  return has(name) ? ints(name) : def;
}
std::vector<int64_t> OpContext::ints(const std::string& name) const {
  return get<std::vector<int64_t>>(name, "INTS");
}
std::vector<double> OpContext::floats(const std::string& name, const std::vector<double>& def) const {
  return has(name) ? get<std::vector<double>>(name, "FLOATS") : def;
}
Tensor OpContext::tensor(const std::string& name) const { return get<Tensor>(name, "TENSOR"); }

const OpTable& op_table() {
  static const OpTable table = [] {
    OpTable t;
    add_math_ops(t);
    add_nn_ops(t);
    add_shape_ops(t);
    return t;
  }();
  return table;
}

std::vector<Tensor> run_node(const Node& node, const std::vector<Tensor>& inputs, int64_t opset, bool training) {
  const auto& table = op_table();
  auto it = table.find(node.op);
  RESIN_CHECK(it != table.end(), "node '", node.name, "': unsupported ONNX op '", node.op, "'");
  try {
    OpContext c(node, opset, training);
    std::vector<Tensor> out = it->second(c, inputs);
    for (size_t i = 0; i < node.outputs.size(); ++i)
      if (!node.outputs[i].empty() && (i >= out.size() || !out[i].defined()))
        c.fail("output " + std::to_string(i) + " ('" + node.outputs[i] + "') is not supported");
    out.resize(node.outputs.size());
    return out;
  } catch (const Error& e) {
    RESIN_FAIL("node '", node.name, "' (", node.op, "): ", e.what());
  }
}

std::vector<int64_t> int_values(const Tensor& t, const char* what) {
  RESIN_CHECK(t.defined(), what, " is missing");
  RESIN_CHECK(t.dtype() == DType::i64 || t.dtype() == DType::i32, what, " must be an integer tensor, got ",
              t.dtype());
  RESIN_CHECK(t.dim() <= 1, what, " must be a scalar or 1-D, got shape ", t.shape());
  return t.values<int64_t>();
}

namespace {
std::atomic<int64_t> g_element_limit{kDefaultElementLimit};
}  // namespace

int64_t element_limit() { return g_element_limit.load(); }
void set_element_limit(int64_t n) {
  RESIN_CHECK(n > 0, "set_element_limit: the limit must be positive, got ", n);
  g_element_limit.store(n);
}

void check_size(const OpContext& c, const Shape& s, const char* what) {
  const int64_t limit = element_limit();
  int64_t n = 1;
  for (int64_t d : s)
    if (d < 0 || __builtin_mul_overflow(n, d, &n) || n > limit)
      c.fail(str_cat(what, " of shape ", s, " exceeds the import limit of ", limit,
                     " elements per tensor (onnx::set_element_limit)"));
}

const Tensor& need(const OpContext& c, const std::vector<Tensor>& in, size_t i, const char* what) {
  if (i >= in.size() || !in[i].defined()) c.fail(str_cat("input ", i, " (", what, ") is missing"));
  return in[i];
}

int64_t axis(const OpContext& c, int64_t a, int64_t rank) {
  if (a < -rank || a >= std::max<int64_t>(rank, 1)) c.fail(str_cat("axis ", a, " is out of range for rank ", rank));
  return a < 0 ? a + rank : a;
}

}  // namespace resin::onnx
