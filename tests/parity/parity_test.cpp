// PyTorch parity for every op in backend/ops.def.
//
// All cases (parity_cases.h) are written to one safetensors file plus a JSON spec, ONE
// /usr/bin/python3 process (torch_oracle.py) computes torch's forward outputs, input gradients and
// updated running statistics, and each test compares resin against them:
//   f64: |resin - torch| <= 1e-10 * |torch| + 1e-12 * max(1, max|torch|)   (elementwise)
//   f32: |resin - torch| <= 1e-4  * |torch| + 1e-5  * max(1, max|torch|)
// f32 cases run twice: on the default backend for f32 and on the reference backend.
// Without an importable torch every test FAILS (run scripts/install-deps.sh); none is skipped.
// torch's results are cached in the build tree keyed by a hash of everything sent to it.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

#include "../io/temp_dir.h"
#include "parity_cases.h"
#include "resin/autograd/node.h"
#include "resin/backend/backend.h"
#include "resin/io/atomic_file.h"
#include "resin/io/json.h"
#include "resin/io/safetensors.h"
#include "resin/ops/detail.h"
#include "resin/ops/ops.h"

namespace resin::parity {
namespace {

struct OpInfo {
  const char* name;
  int arity;
  const char* kind;
};

const std::vector<OpInfo>& op_table() {
  static const std::vector<OpInfo> ops = {
#define RESIN_OP(name, arity, kind) {#name, arity, #kind},
#include "resin/backend/ops.def"
#undef RESIN_OP
  };
  return ops;
}

// Ops with parity tests: the table plus the composite residual block.
std::vector<std::string> parity_subjects() {
  std::vector<std::string> out;
  for (const OpInfo& op : op_table()) out.push_back(op.name);
  out.push_back("residual_block");
  return out;
}

struct Oracle {
  std::vector<Case> cases;
  std::vector<std::string> ids;
  io::SafetensorsFile results;
  std::string error;  // non-empty when torch could not be run
};

std::string case_id(size_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "c%04zu", i);
  return buf;
}

std::string spec_json(const std::vector<Case>& cases, const std::vector<std::string>& ids) {
  std::string s = "{\"cases\": [\n";
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    s += i ? ",\n" : "";
    s += "{\"id\": " + io::json_quote(ids[i]) + ", \"op\": " + io::json_quote(c.op) + ", \"label\": " +
         io::json_quote(c.label) + ", \"attrs\": " + c.attrs + ", \"inputs\": [";
    for (size_t k = 0; k < c.inputs.size(); ++k) {
      const Input& in = c.inputs[k];
      s += k ? ", " : "";
      s += std::string("{\"present\": ") + (in.value.defined() ? "true" : "false") + ", \"layout\": \"" +
           layout_name(in.layout) + "\", \"grad\": " + (in.grad ? "true" : "false") +
           ", \"state\": " + (in.state ? "true" : "false") + "}";
    }
    s += "]}";
  }
  return s + "\n]}\n";
}

Oracle run_oracle() {
  Oracle o;
  o.cases = all_cases();
  std::map<std::string, Tensor> inputs;
  for (size_t i = 0; i < o.cases.size(); ++i) {
    o.ids.push_back(case_id(i));
    for (size_t k = 0; k < o.cases[i].inputs.size(); ++k)
      if (o.cases[i].inputs[k].value.defined())
        inputs[o.ids[i] + "/in" + std::to_string(k)] = o.cases[i].inputs[k].value;
  }
  // The spec must be valid JSON for Python; parse it back as a check of the attrs text.
  const std::string spec = spec_json(o.cases, o.ids);
  io::parse_json(spec, "parity spec");

  // torch's answers depend only on the spec, the input bytes and the oracle script, so they are
  // cached in the build tree under a hash of those: ctest runs each test in its own process, and
  // importing torch costs seconds. RESIN_PARITY_NO_CACHE=1 forces a fresh torch run.
  const std::string script = std::string(RESIN_SOURCE_DIR) + "/tests/parity/torch_oracle.py";
  const std::string input_bytes = io::serialize_safetensors(inputs);
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  const std::string script_text = io::read_file(script);
  for (const std::string* part : {&spec, &input_bytes, &script_text})
    for (const char ch : *part) h = (h ^ static_cast<unsigned char>(ch)) * 1099511628211ull;
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  const std::string cache = std::string(RESIN_BINARY_DIR) + "/parity-oracle-" + hex + ".safetensors";
  const char* no_cache = std::getenv("RESIN_PARITY_NO_CACHE");
  if (!(no_cache && std::string(no_cache) == "1") && ::access(cache.c_str(), R_OK) == 0) {
    o.results = io::load_safetensors(cache);
    return o;
  }

  testing::TempDir dir;
  const std::string spec_path = dir.file("spec.json"), in_path = dir.file("inputs.safetensors"),
                    out_path = dir.file("outputs.safetensors"), log_path = dir.file("oracle.log");
  io::atomic_write_file(spec_path, spec);
  io::atomic_write_file(in_path, input_bytes);
  const std::string cmd = "/usr/bin/python3 '" + script + "' '" + spec_path + "' '" + in_path + "' '" + out_path +
                          "' > '" + log_path + "' 2>&1";
  const int status = std::system(cmd.c_str());
  const int rc = status == -1 ? -1 : WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  std::string log;
  try {
    log = io::read_file(log_path);
  } catch (const Error&) {
  }
  if (rc == 3 || rc == 127) {
    o.error = "PyTorch is not importable from /usr/bin/python3, so the parity tests cannot run. "
              "Run scripts/install-deps.sh (it installs python3-torch). Oracle output:\n" + log;
  } else if (rc != 0) {
    o.error = "torch_oracle.py failed with exit status " + std::to_string(rc) + ":\n" + log;
  } else {
    const std::string bytes = io::read_file(out_path);
    o.results = io::parse_safetensors(bytes, out_path);
    io::atomic_write_file(cache, bytes);  // parallel test processes race benignly: same bytes
  }
  return o;
}

const Oracle& oracle() {
  static const Oracle o = run_oracle();
  return o;
}

// A fresh resin tensor holding v's values in the requested physical layout, as a leaf.
Tensor materialize(const Tensor& v, Layout l) {
  if (!v.defined()) return {};
  switch (l) {
    case Layout::contiguous: return v.clone();
    case Layout::channels_last: return v.clone(MemoryFormat::channels_last);
    case Layout::transposed: {
      std::vector<int64_t> rev(static_cast<size_t>(v.dim()));
      for (int64_t i = 0; i < v.dim(); ++i) rev[static_cast<size_t>(i)] = v.dim() - 1 - i;
      Tensor p = v.permute(rev).contiguous();
      return detail::make_view(p, v.shape(), p.permute(rev).strides(), 0);
    }
    case Layout::strided: {
      Strides st = contiguous_strides(v.shape());
      int64_t span = 1;
      for (size_t i = 0; i < st.size(); ++i) {
        st[i] *= 2;
        span += (v.shape()[i] - 1) * st[i];
      }
      Tensor base = zeros(Shape{std::max<int64_t>(span, 0) + 1}, {.dtype = v.dtype()});
      Tensor view = detail::make_view(base, v.shape(), st, 1);
      backend::ref_backend().copy(v, view);
      return view;
    }
  }
  return {};
}

// "" when got matches want within tolerance, else what differs.
std::string compare(const Tensor& got, const Tensor& want, DType dtype) {
  if (!got.defined()) return "resin gave no tensor";
  if (got.shape() != want.shape()) return str_cat("shape ", got.shape(), ", torch has ", want.shape());
  if (got.dtype() != want.dtype()) return str_cat("dtype ", got.dtype(), ", torch has ", want.dtype());
  const double rtol = dtype == DType::f64 ? 1e-10 : 1e-4, atol_rel = dtype == DType::f64 ? 1e-12 : 1e-5;
  const auto g = got.to_vector(), w = want.to_vector();
  double scale = 1;
  for (double x : w)
    if (std::isfinite(x)) scale = std::max(scale, std::abs(x));
  const double atol = atol_rel * scale;
  size_t worst = 0, bad = 0;
  double worst_excess = -1;
  for (size_t i = 0; i < g.size(); ++i) {
    const bool same_special = (std::isnan(g[i]) && std::isnan(w[i])) || (std::isinf(w[i]) && g[i] == w[i]);
    const double tol = atol + rtol * std::abs(w[i]);
    const double err = std::abs(g[i] - w[i]);
    if (same_special || err <= tol) continue;  // NaN err fails this test too
    ++bad;
    const double excess = std::isnan(err) ? INFINITY : err / tol;
    if (excess > worst_excess) worst_excess = excess, worst = i;
  }
  if (bad == 0) return "";
  char buf[256];
  std::snprintf(buf, sizeof buf, "%zu of %zu elements differ; worst at flat index %zu: resin %.17g, torch %.17g "
                "(|diff| %.3g, tolerance %.3g)", bad, g.size(), worst, g[worst], w[worst],
                std::abs(g[worst] - w[worst]), atol + rtol * std::abs(w[worst]));
  return buf;
}

struct CheckResult {
  std::vector<std::string> fails;
  int outputs = 0, grads = 0, states = 0;  // tensors compared
};

// Runs one case with resin and compares everything torch computed.
CheckResult check_case(const Case& c, const std::string& id, const io::SafetensorsFile& res) {
  CheckResult result;
  std::vector<std::string>& fails = result.fails;
  if (auto it = res.metadata.find(id); it != res.metadata.end()) return {{"torch raised:\n" + it->second}};
  std::vector<Tensor> ins, leaves;
  std::vector<size_t> leaf_index;
  for (size_t k = 0; k < c.inputs.size(); ++k) {
    ins.push_back(materialize(c.inputs[k].value, c.inputs[k].layout));
    if (c.inputs[k].grad) {
      ins.back().set_requires_grad(true);
      leaves.push_back(ins.back());
      leaf_index.push_back(k);
    }
  }
  std::vector<Tensor> outs;
  try {
    outs = c.run(ins);
  } catch (const Error& e) {
    return {{std::string("resin threw: ") + e.what()}};
  }
  size_t torch_outs = 0;
  while (res.tensors.count(id + "/out" + std::to_string(torch_outs))) ++torch_outs;
  if (torch_outs != outs.size()) return {{str_cat("resin gave ", outs.size(), " outputs, torch ", torch_outs)}};
  for (size_t k = 0; k < outs.size(); ++k) {
    const std::string m = compare(outs[k], res.tensors.at(id + "/out" + std::to_string(k)), c.dtype);
    ++result.outputs;
    if (!m.empty()) fails.push_back(str_cat("output ", k, ": ", m));
    if (c.expect_channels_last && !outs[k].is_channels_last())
      fails.push_back(str_cat("output ", k, " is not channels-last (strides ", outs[k].strides(),
                              ") although the input is"));
  }
  if (!leaves.empty() && fails.empty()) {
    std::vector<Tensor> roots, rs;
    for (size_t k = 0; k < outs.size(); ++k) {
      if (!outs[k].requires_grad()) {
        fails.push_back(str_cat("output ", k, " does not require grad although inputs do"));
        continue;
      }
      roots.push_back(outs[k]);
      rs.push_back(cotangent(outs[k].shape(), static_cast<int64_t>(k), c.dtype));
    }
    if (!fails.empty()) return result;
    std::vector<Tensor> grads;
    try {
      grads = autograd::grad(roots, leaves, rs);
    } catch (const Error& e) {
      return {{std::string("resin backward threw: ") + e.what()}};
    }
    for (size_t j = 0; j < leaves.size(); ++j) {
      const std::string name = id + "/grad" + std::to_string(leaf_index[j]);
      if (!res.tensors.count(name)) {
        fails.push_back(str_cat("torch gave no gradient for input ", leaf_index[j]));
        continue;
      }
      const std::string m = compare(grads[j], res.tensors.at(name), c.dtype);
      ++result.grads;
      if (!m.empty()) fails.push_back(str_cat("gradient of input ", leaf_index[j], ": ", m));
    }
  }
  for (size_t k = 0; k < c.inputs.size(); ++k) {
    if (!c.inputs[k].state) continue;
    const std::string m = compare(ins[k], res.tensors.at(id + "/state" + std::to_string(k)), c.dtype);
    ++result.states;
    if (!m.empty()) fails.push_back(str_cat("input ", k, " after the call (running statistic): ", m));
  }
  return result;
}

class TorchParityOp : public ::testing::TestWithParam<std::string> {};

TEST_P(TorchParityOp, MatchesTorch) {
  const Oracle& o = oracle();
  ASSERT_TRUE(o.error.empty()) << o.error;
  int n = 0;
  for (size_t i = 0; i < o.cases.size(); ++i) {
    const Case& c = o.cases[i];
    if (c.op != GetParam()) continue;
    ++n;
    std::vector<bool> force_ref{false};
    if (c.dtype == DType::f32) force_ref.push_back(true);  // f64 always runs on the reference loops
    for (bool ref : force_ref) {
      backend::ForceReferenceGuard guard(ref);
      const CheckResult r = check_case(c, o.ids[i], o.results);
      const std::string where = str_cat(c.op, " [", dtype_name(c.dtype), ", ", ref ? "ref" : "default", " backend] ",
                                        c.label, " (case ", o.ids[i], "): ");
      for (const std::string& f : r.fails) ADD_FAILURE() << where << f;
      if (!r.fails.empty()) continue;
      // Guard against a harness that silently compares nothing.
      const auto count = [&](bool Input::*flag) {
        return static_cast<int>(std::count_if(c.inputs.begin(), c.inputs.end(), [&](const Input& in) { return in.*flag; }));
      };
      EXPECT_GT(r.outputs, 0) << where;
      EXPECT_EQ(r.grads, count(&Input::grad)) << where << "gradients compared";
      EXPECT_EQ(r.states, count(&Input::state)) << where << "running statistics compared";
    }
  }
  EXPECT_GT(n, 0) << "no parity cases for " << GetParam();
}

INSTANTIATE_TEST_SUITE_P(TorchParity, TorchParityOp, ::testing::ValuesIn(parity_subjects()),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

TEST(TorchParityCoverage, EveryOpHasCasesInBothDtypes) {
  const std::vector<Case> cases = all_cases();
  for (const std::string& op : parity_subjects())
    for (DType t : {DType::f32, DType::f64}) {
      const auto n = std::count_if(cases.begin(), cases.end(), [&](const Case& c) { return c.op == op && c.dtype == t; });
      EXPECT_GE(n, 2) << op << " has " << n << " " << dtype_name(t) << " parity cases";
    }
}

TEST(TorchParityCoverage, EveryCaseNamesAKnownOpAndComparesSomething) {
  const std::vector<std::string> subjects = parity_subjects();
  const std::set<std::string> known(subjects.begin(), subjects.end());
  for (const Case& c : all_cases()) {
    EXPECT_TRUE(known.count(c.op)) << "case '" << c.label << "' names unknown op " << c.op;
    EXPECT_TRUE(c.run) << c.op << " " << c.label;
    EXPECT_NO_THROW(io::parse_json(c.attrs, c.op + " attrs")) << c.label;
  }
  // Every differentiable op is compared with gradients in at least one case.
  for (const OpInfo& op : op_table()) {
    const std::vector<Case> cases = all_cases();
    const bool any_grad = std::any_of(cases.begin(), cases.end(), [&](const Case& c) {
      return c.op == op.name && std::any_of(c.inputs.begin(), c.inputs.end(), [](const Input& in) { return in.grad; });
    });
    EXPECT_TRUE(any_grad) << op.name << " has no case that compares gradients";
  }
}

// Dropout masks are random and cannot match torch's, so training mode is checked against the
// definition: P(zero) = p, survivors scaled by exactly 1/(1-p), gradient = r * mask, the same
// generator seed gives the same mask. Eval and p = 0 are compared with torch above.
TEST(TorchParity, DropoutTrainingStatistics) {
  for (DType t : {DType::f64, DType::f32}) {
    const double p = 0.3;
    const int64_t n = 100000;
    Generator data_gen(7);
    Tensor x = add(abs(randn({200, 500}, {.dtype = t}, &data_gen)), 0.1);  // never 0
    x.set_requires_grad(true);
    Generator g1(99), g2(99), g3(100);
    Tensor y = dropout(x, p, true, &g1);
    const auto xv = x.to_vector(), yv = dropout(x.detach(), p, true, &g2).to_vector(), yv1 = y.to_vector();
    EXPECT_EQ(yv, yv1) << "same seed, different mask";
    EXPECT_NE(dropout(x.detach(), p, true, &g3).to_vector(), yv1) << "different seeds, same mask";
    int64_t zeros_count = 0;
    const double scale = t == DType::f64 ? 1e-15 : 1e-6;
    for (int64_t i = 0; i < n; ++i) {
      if (yv1[static_cast<size_t>(i)] == 0) {
        ++zeros_count;
        continue;
      }
      ASSERT_NEAR(yv1[static_cast<size_t>(i)], xv[static_cast<size_t>(i)] / (1 - p),
                  scale * std::abs(xv[static_cast<size_t>(i)]) * 4)
          << i;
    }
    const double frac = static_cast<double>(zeros_count) / static_cast<double>(n);
    const double sigma = std::sqrt(p * (1 - p) / static_cast<double>(n));
    EXPECT_NEAR(frac, p, 5 * sigma) << dtype_name(t);
    Tensor r = cotangent(x.shape(), 0, t);
    y.backward(r);
    const auto gv = x.grad().to_vector(), rv = r.to_vector();
    for (int64_t i = 0; i < n; ++i) {
      const size_t u = static_cast<size_t>(i);
      const double want = yv1[u] == 0 ? 0.0 : rv[u] / (1 - p);
      ASSERT_NEAR(gv[u], want, scale * 4 * std::abs(want) + 1e-30) << i;
    }
    Tensor all_dropped = dropout(x.detach(), 1.0, true, &g1);
    EXPECT_EQ(sum(abs(all_dropped)).item(), 0.0);
  }
}

}  // namespace
}  // namespace resin::parity
