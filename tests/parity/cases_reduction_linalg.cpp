// Parity cases for reductions (dims, keepdim, layouts, ties, var correction) and for matmul and
// linear (every rank combination torch.matmul accepts, broadcast batches, transposed operands).
#include "parity_cases.h"
#include "resin/ops/ops.h"

namespace resin::parity {
namespace {

using ReduceFn = std::function<Tensor(const Tensor&, std::vector<int64_t>, bool)>;

void reduction_cases(std::vector<Case>& out, DType t, Data& d, const std::string& op, ReduceFn f,
                     const Attrs& base = Attrs(), const std::string& extra_label = "") {
  struct Spec {
    Shape shape;
    std::vector<int64_t> dims;
    bool keepdim;
    Layout layout;
  };
  const Spec specs[] = {
      {{3, 4, 5}, {}, false, Layout::contiguous},     {{3, 4, 5}, {1}, false, Layout::contiguous},
      {{3, 4, 5}, {0, 2}, true, Layout::contiguous},  {{3, 4, 5}, {-1}, true, Layout::transposed},
      {{4, 6}, {0}, false, Layout::strided},          {{2, 3, 4, 5}, {0, 2, 3}, true, Layout::channels_last},
      {{2, 3, 4, 5}, {1}, false, Layout::channels_last}, {{7}, {0}, false, Layout::contiguous},
      {{3, 4, 5}, {}, true, Layout::strided},
  };
  for (const Spec& s : specs) {
    std::string dims_text = "dims {";
    for (size_t i = 0; i < s.dims.size(); ++i) {
      if (i) dims_text += ",";
      dims_text += std::to_string(s.dims[i]);
    }
    dims_text += "}";
    out.push_back(make_case(op,
                            s.shape.str() + " " + dims_text + (s.keepdim ? " keepdim " : " ") + layout_name(s.layout) +
                                extra_label,
                            t, Attrs(base).ints("dims", s.dims).boolean("keepdim", s.keepdim).json(),
                            {arg(d.randn(s.shape, t), s.layout)},
                            [f, s](const std::vector<Tensor>& in) { return std::vector<Tensor>{f(in[0], s.dims, s.keepdim)}; }));
  }
}

}  // namespace

void add_reduction_linalg_cases(std::vector<Case>& out, DType t) {
  Data d(t == DType::f64 ? 21 : 22);
  reduction_cases(out, t, d, "sum", [](const Tensor& x, std::vector<int64_t> dims, bool k) { return sum(x, dims, k); });
  reduction_cases(out, t, d, "mean", [](const Tensor& x, std::vector<int64_t> dims, bool k) { return mean(x, dims, k); });
  reduction_cases(out, t, d, "max", [](const Tensor& x, std::vector<int64_t> dims, bool k) { return max(x, dims, k); });
  reduction_cases(out, t, d, "min", [](const Tensor& x, std::vector<int64_t> dims, bool k) { return min(x, dims, k); });
  // Ties: torch.amax/amin split the gradient evenly between the tied elements.
  Tensor ties = d.values({1, 3, 3, 0, -2, -2, 5, 5, 5, -1, 0, -2}, {3, 4}, t);
  for (bool is_max : {true, false})
    for (std::vector<int64_t> dims : {std::vector<int64_t>{1}, std::vector<int64_t>{}})
      out.push_back(make_case(is_max ? "max" : "min", "ties dims " + std::to_string(dims.size()), t,
                              Attrs().ints("dims", dims).boolean("keepdim", false).json(), {arg(ties)},
                              [is_max, dims](const std::vector<Tensor>& in) {
                                return std::vector<Tensor>{is_max ? max(in[0], dims) : min(in[0], dims)};
                              }));
  for (int64_t correction : {0, 1, 2}) {
    reduction_cases(
        out, t, d, "var",
        [correction](const Tensor& x, std::vector<int64_t> dims, bool k) { return var(x, dims, correction, k); },
        Attrs().integer("correction", correction), " correction " + std::to_string(correction));
  }

  // matmul: every rank combination, broadcast batch dims, transposed and strided operands.
  auto run_mm = [](const std::vector<Tensor>& in) { return std::vector<Tensor>{matmul(in[0], in[1])}; };
  struct MM {
    Shape a, b;
    Layout la, lb;
  };
  const MM mms[] = {
      {{5}, {5}, Layout::contiguous, Layout::contiguous},
      {{3, 5}, {5}, Layout::contiguous, Layout::strided},
      {{5}, {5, 4}, Layout::contiguous, Layout::transposed},
      {{3, 5}, {5, 4}, Layout::contiguous, Layout::contiguous},
      {{3, 5}, {5, 4}, Layout::transposed, Layout::transposed},
      {{3, 5}, {5, 4}, Layout::strided, Layout::strided},
      {{2, 3, 5}, {5, 4}, Layout::contiguous, Layout::contiguous},
      {{5}, {2, 5, 4}, Layout::contiguous, Layout::contiguous},
      {{2, 3, 5}, {5}, Layout::transposed, Layout::contiguous},
      {{2, 1, 3, 5}, {4, 5, 2}, Layout::contiguous, Layout::transposed},
      {{1, 3, 5}, {2, 5, 4}, Layout::contiguous, Layout::contiguous},
      {{1, 1}, {1, 7}, Layout::contiguous, Layout::contiguous},
  };
  for (const MM& m : mms)
    out.push_back(make_case("matmul", m.a.str() + " @ " + m.b.str() + " " + layout_name(m.la) + "/" + layout_name(m.lb), t,
                            "{}", {arg(d.randn(m.a, t), m.la), arg(d.randn(m.b, t), m.lb)}, run_mm));

  auto run_linear = [](const std::vector<Tensor>& in) { return std::vector<Tensor>{linear(in[0], in[1], in[2])}; };
  out.push_back(make_case("linear", "x [4,5] w [3,5] b [3]", t, "{}",
                          {arg(d.randn({4, 5}, t)), arg(d.randn({3, 5}, t)), arg(d.randn({3}, t))}, run_linear));
  out.push_back(make_case("linear", "x [2,4,5] transposed w, no bias", t, "{}",
                          {arg(d.randn({2, 4, 5}, t)), arg(d.randn({3, 5}, t), Layout::transposed), none()}, run_linear));
  out.push_back(make_case("linear", "x [5] (1-D) strided", t, "{}",
                          {arg(d.randn({5}, t), Layout::strided), arg(d.randn({3, 5}, t)), arg(d.randn({3}, t))},
                          run_linear));
  out.push_back(make_case("linear", "batch 1, 1 output", t, "{}",
                          {arg(d.randn({1, 6}, t)), arg(d.randn({1, 6}, t)), arg(d.randn({1}, t))}, run_linear));
  out.push_back(make_case("linear", "fixed weight (grad to x and bias only)", t, "{}",
                          {arg(d.randn({3, 4}, t), Layout::transposed), fixed(d.randn({2, 4}, t)), arg(d.randn({2}, t))},
                          run_linear));
}

}  // namespace resin::parity
