// PyTorch parity cases. A case names an op from backend/ops.def, its attributes (a JSON object
// that torch_oracle.py reads), its inputs (logical values plus the physical layout resin gets
// them in) and a function that runs the op with resin. The harness (parity_test.cpp) sends every
// case to one torch_oracle.py process and compares forward outputs, the gradients of
// sum_k sum(out_k * r_k) for every input marked `grad`, and the in-place-updated `state` inputs.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "resin/core/rng.h"
#include "resin/tensor/tensor.h"

namespace resin::parity {

// How resin receives an input (the oracle always gets the logical values; it applies
// channels_last too, the other layouts only matter to resin).
enum class Layout {
  contiguous,
  channels_last,  // 4-D NHWC strides
  transposed,     // dense, dims physically reversed
  strided,        // every stride doubled and a non-zero offset: not dense
};
const char* layout_name(Layout l);

struct Input {
  Tensor value;  // contiguous logical values; undefined = the argument is absent (None in torch)
  Layout layout = Layout::contiguous;
  bool grad = false;   // compare the gradient w.r.t. this input
  bool state = false;  // the op updates it in place: compare its value after the call
};

using RunFn = std::function<std::vector<Tensor>(const std::vector<Tensor>&)>;

struct Case {
  std::string op;     // a name from ops.def, or "residual_block"
  std::string label;  // what is awkward about it, for failure messages
  DType dtype = DType::f64;
  std::string attrs = "{}";
  std::vector<Input> inputs;
  RunFn run;
  bool expect_channels_last = false;  // every output must come back channels-last
};

// Builds the JSON attribute object.
class Attrs {
 public:
  Attrs& num(const std::string& k, double v);
  Attrs& integer(const std::string& k, int64_t v);
  Attrs& ints(const std::string& k, const std::vector<int64_t>& v);
  Attrs& boolean(const std::string& k, bool v);
  Attrs& str(const std::string& k, const std::string& v);
  std::string json() const { return "{" + body_ + "}"; }

 private:
  void key(const std::string& k);
  std::string body_;
};

// Deterministic input data, generated in f64 and rounded to the case dtype, so resin and torch
// see identical values.
class Data {
 public:
  explicit Data(uint64_t seed) : gen_(seed) {}
  Tensor randn(const Shape& s, DType t, double scale = 1.0);
  Tensor uniform(const Shape& s, double lo, double hi, DType t);
  Tensor labels(const Shape& s, int64_t classes);  // i64 in [0, classes)
  Tensor values(const std::vector<double>& v, const Shape& s, DType t);

 private:
  Generator gen_;
};

// Input shorthands: a differentiable input, a fixed (no-gradient) input, an absent one.
inline Input arg(Tensor v, Layout l = Layout::contiguous) { return {std::move(v), l, true, false}; }
inline Input fixed(Tensor v, Layout l = Layout::contiguous) { return {std::move(v), l, false, false}; }
inline Input state(Tensor v) { return {std::move(v), Layout::contiguous, false, true}; }
inline Input none() { return {}; }

inline Case make_case(std::string op, std::string label, DType t, std::string attrs, std::vector<Input> inputs,
                      RunFn run) {
  Case c;
  c.op = std::move(op);
  c.label = std::move(label);
  c.dtype = t;
  c.attrs = std::move(attrs);
  c.inputs = std::move(inputs);
  c.run = std::move(run);
  return c;
}

// Case lists per op group (cases_*.cpp); each is called once per dtype (f32, f64).
void add_elementwise_cases(std::vector<Case>& out, DType t);
void add_reduction_linalg_cases(std::vector<Case>& out, DType t);
void add_conv_norm_cases(std::vector<Case>& out, DType t);
void add_pool_cases(std::vector<Case>& out, DType t);
void add_shape_cases(std::vector<Case>& out, DType t);
void add_loss_cases(std::vector<Case>& out, DType t);

// Every case, both dtypes, in a fixed order.
std::vector<Case> all_cases();

// r_k in the gradient check: r[i] = ((i * 7919 + k * 104729) % 2003) / 1001.5 - 1 over the
// logical flat index i (torch_oracle.py computes the same).
Tensor cotangent(const Shape& s, int64_t k, DType t);

}  // namespace resin::parity
