// Parity cases for softmax/log_softmax, the losses (reductions, label smoothing), dropout in its
// deterministic settings (eval, p = 0) and embedding (repeated indices).
#include "parity_cases.h"
#include "resin/ops/ops.h"

namespace resin::parity {
namespace {

const char* reduction_name(Reduction r) {
  switch (r) {
    case Reduction::none: return "none";
    case Reduction::mean: return "mean";
    case Reduction::sum: return "sum";
  }
  return "?";
}

}  // namespace

void add_loss_cases(std::vector<Case>& out, DType t) {
  Data d(t == DType::f64 ? 61 : 62);
  const Layout C = Layout::contiguous, T = Layout::transposed, S = Layout::strided, CL = Layout::channels_last;

  for (bool log : {false, true}) {
    const std::string op = log ? "log_softmax" : "softmax";
    auto sm = [&](const std::string& label, const Shape& s, int64_t dim, Layout l, double scale) {
      Case c = make_case(op, label, t, Attrs().integer("dim", dim).json(), {arg(d.randn(s, t, scale), l)},
                         [dim, log](const std::vector<Tensor>& x) {
                           return std::vector<Tensor>{log ? log_softmax(x[0], dim) : softmax(x[0], dim)};
                         });
      c.expect_channels_last = l == CL;
      out.push_back(std::move(c));
    };
    sm("[4,7] dim 1", {4, 7}, 1, C, 1.0);
    sm("[3,4,5] dim 0", {3, 4, 5}, 0, C, 1.0);
    sm("dim -1, transposed", {3, 4, 5}, -1, T, 1.0);
    sm("dim 1, strided", {4, 6}, 1, S, 1.0);
    sm("large logits (stability)", {3, 6}, 1, C, 40.0);
    sm("channels_last over channels", {2, 5, 3, 4}, 1, CL, 1.0);
    sm("single class", {4, 1}, 1, C, 1.0);
  }

  for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none})
    for (double eps : {0.0, 0.1, 0.3}) {
      const CrossEntropyOptions o{r, eps};
      out.push_back(make_case(
          "cross_entropy", std::string("reduction ") + reduction_name(r) + " label_smoothing " + std::to_string(eps), t,
          Attrs().str("reduction", reduction_name(r)).num("label_smoothing", eps).json(),
          {arg(d.randn({6, 5}, t, 2.0), eps == 0.1 ? T : C), fixed(d.labels({6}, 5))},
          [o](const std::vector<Tensor>& x) { return std::vector<Tensor>{cross_entropy(x[0], x[1], o)}; }));
    }
  out.push_back(make_case("cross_entropy", "batch 1, smoothing 0.2", t,
                          Attrs().str("reduction", "mean").num("label_smoothing", 0.2).json(),
                          {arg(d.randn({1, 4}, t)), fixed(d.labels({1}, 4))}, [](const std::vector<Tensor>& x) {
                            return std::vector<Tensor>{cross_entropy(x[0], x[1], {.label_smoothing = 0.2})};
                          }));

  for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none}) {
    out.push_back(make_case("nll_loss", std::string("reduction ") + reduction_name(r), t,
                            Attrs().str("reduction", reduction_name(r)).json(),
                            {arg(d.randn({7, 4}, t), r == Reduction::sum ? S : C), fixed(d.labels({7}, 4))},
                            [r](const std::vector<Tensor>& x) { return std::vector<Tensor>{nll_loss(x[0], x[1], r)}; }));
    out.push_back(make_case("mse_loss", std::string("reduction ") + reduction_name(r), t,
                            Attrs().str("reduction", reduction_name(r)).json(),
                            {arg(d.randn({3, 4, 2}, t), r == Reduction::mean ? T : C), arg(d.randn({3, 4, 2}, t), S)},
                            [r](const std::vector<Tensor>& x) { return std::vector<Tensor>{mse_loss(x[0], x[1], r)}; }));
  }
  out.push_back(make_case("mse_loss", "target fixed", t, Attrs().str("reduction", "mean").json(),
                          {arg(d.randn({5}, t)), fixed(d.randn({5}, t))},
                          [](const std::vector<Tensor>& x) { return std::vector<Tensor>{mse_loss(x[0], x[1])}; }));

  // Dropout masks cannot match torch's; only the deterministic settings are compared here
  // (eval and p = 0 are the identity). The statistics of training-mode masks are checked
  // against the definition in parity_test.cpp (TorchParity.DropoutTrainingStatistics).
  for (auto [p, training] : {std::pair{0.5, false}, std::pair{0.0, true}, std::pair{1.0, false}}) {
    out.push_back(make_case("dropout", "p " + std::to_string(p) + (training ? " training" : " eval"), t,
                            Attrs().num("p", p).boolean("training", training).json(), {arg(d.randn({3, 4}, t), S)},
                            [p, training](const std::vector<Tensor>& x) {
                              return std::vector<Tensor>{dropout(x[0], p, training)};
                            }));
  }

  auto emb = [&](const std::string& label, Tensor idx, const Shape& w, Layout l) {
    out.push_back(make_case("embedding", label, t, "{}", {fixed(std::move(idx)), arg(d.randn(w, t), l)},
                            [](const std::vector<Tensor>& x) { return std::vector<Tensor>{embedding(x[0], x[1])}; }));
  };
  emb("[2,3] indices with repeats", from_data<int64_t>({1, 4, 1, 9, 0, 4}, {2, 3}), {10, 4}, C);
  emb("1-D indices, transposed weight", from_data<int64_t>({2, 2, 2, 0}, {4}), {3, 5}, T);
  emb("0-d index", from_data<int64_t>({3}, {}), {5, 2}, C);
}

}  // namespace resin::parity
