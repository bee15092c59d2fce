// ONNX's own operator test cases (Debian libonnx-testdata 1.12: data/node/<case>/model.onnx with
// test_data_set_*/input_*.pb and output_*.pb). Every case whose ops are all ones resin imports
// (supported_ops()) and whose opset is in range must pass with ONNX's backend-test tolerance
// (|got − expected| <= 1e-7 + 1e-3·|expected|), unless it is listed in kUnsupportedVariants with the
// error resin must give for it. Every supported op must pass at least one case of its own.
#include <filesystem>
#include <set>

#include "onnx_test_util.h"

namespace resin::onnx {
namespace {

namespace fs = std::filesystem;
const char* kNodeDir = "/usr/share/libonnx-testdata/data/node";

// Cases whose ops resin imports but whose variant it does not: the error each must give (a
// substring). docs/onnx.md lists them.
const std::map<std::string, std::string> kUnsupportedVariants = {
    {"test_averagepool_3d_default", "only 1-D and 2-D spatial inputs"},
    {"test_maxpool_3d_default", "only 1-D and 2-D spatial inputs"},
    {"test_maxpool_2d_dilations", "dilated pooling is not supported"},
    {"test_maxpool_with_argmax_2d_precomputed_pads", "the Indices output is not supported"},
    {"test_maxpool_with_argmax_2d_precomputed_strides", "the Indices output is not supported"},
    // bfloat16 test data is stored as UINT16 tensors.
    {"test_cast_BFLOAT16_to_FLOAT", "element type UINT16"},
    {"test_cast_FLOAT_to_BFLOAT16", "element type UINT16"},
    {"test_castlike_BFLOAT16_to_FLOAT_expanded", "element type UINT16"},
    {"test_castlike_FLOAT_to_BFLOAT16_expanded", "element type UINT16"},
    {"test_cast_FLOAT_to_STRING", "element type STRING"},
    {"test_cast_STRING_to_FLOAT", "element type STRING"},
    {"test_castlike_FLOAT_to_STRING_expanded", "element type STRING"},
    {"test_castlike_STRING_to_FLOAT_expanded", "element type STRING"},
    {"test_clip_default_int8_inbounds", "element type INT8"},
    {"test_clip_default_int8_max", "element type INT8"},
    {"test_clip_default_int8_min", "element type INT8"},
    {"test_pow_types_float32_uint32", "element type UINT32"},
    {"test_pow_types_float32_uint64", "element type UINT64"},
    {"test_identity_opt", "only tensor types are supported"},
    {"test_identity_sequence", "only tensor types are supported"},
};

// Training-mode Dropout: the expected outputs come from numpy's generator, so these cases are
// checked for dropout's semantics instead (each output 0 or x/(1 − ratio), the mask marking the
// kept elements).
const std::set<std::string> kRandomCases = {"test_training_dropout", "test_training_dropout_default",
                                            "test_training_dropout_default_mask", "test_training_dropout_mask"};

// Ops without a test case of their own in the 1.12 data (they are covered by the export/import
// tests).
const std::set<std::string> kNoOwnCase = {};

std::vector<Tensor> read_set(const fs::path& dir, const char* prefix) {
  std::vector<Tensor> out;
  for (int i = 0;; ++i) {
    const fs::path p = dir / (std::string(prefix) + std::to_string(i) + ".pb");
    if (!fs::exists(p)) return out;
    out.push_back(parse_tensor(io::read_file(p.string()), p.string()));
  }
}

// "" when got matches expected.
std::string compare(const Tensor& got, const Tensor& want) {
  if (!got.defined()) return "output missing";
  if (got.shape() != want.shape()) return str_cat("shape ", got.shape(), ", expected ", want.shape());
  if (got.dtype() != want.dtype()) return str_cat("dtype ", got.dtype(), ", expected ", want.dtype());
  const auto g = got.to_vector(), w = want.to_vector();
  for (size_t i = 0; i < g.size(); ++i) {
    if (std::isnan(w[i]) && std::isnan(g[i])) continue;
    const bool exact = !is_floating(want.dtype());
    if (exact ? g[i] != w[i] : !(std::abs(g[i] - w[i]) <= 1e-7 + 1e-3 * std::abs(w[i])))
      return str_cat("element ", i, ": ", g[i], ", expected ", w[i]);
  }
  return "";
}

// Dropout's contract on a random case's first data set; "" when it holds.
std::string check_dropout(const fs::path& dir) {
  auto g = OnnxGraph::load((dir / "model.onnx").string());
  const auto inputs = read_set(dir / "test_data_set_0", "input_");
  const auto got = g->run(inputs);
  const double ratio = inputs.size() > 1 ? inputs[1].item() : 0.5;
  const auto x = inputs[0].to_vector(), y = got[0].to_vector();
  const auto mask = got.size() > 1 ? got[1].to_vector() : std::vector<double>();
  int dropped = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const bool kept = std::abs(y[i] - x[i] / (1 - ratio)) <= 1e-6 * std::abs(x[i]) + 1e-7;
    if (!kept && y[i] != 0) return str_cat("element ", i, " is ", y[i], ", neither 0 nor x/(1 - ratio)");
    if (!mask.empty() && mask[i] != (kept ? 1 : 0)) return str_cat("mask element ", i, " is ", mask[i]);
    dropped += !kept;
  }
  const double frac = static_cast<double>(dropped) / static_cast<double>(x.size());
  return std::abs(frac - ratio) < 0.25 ? "" : str_cat("dropped ", frac, " of the elements at ratio ", ratio);
}

// Runs every data set of a case; "" on success, else what went wrong.
std::string run_case(const fs::path& dir) {
  try {
    if (kRandomCases.count(dir.filename().string())) return check_dropout(dir);
    auto g = OnnxGraph::load((dir / "model.onnx").string());
    int sets = 0;
    for (const auto& entry : fs::directory_iterator(dir)) {
      if (!entry.is_directory()) continue;
      const auto inputs = read_set(entry.path(), "input_"), expected = read_set(entry.path(), "output_");
      const auto got = g->run(inputs);
      if (got.size() != expected.size()) return str_cat(got.size(), " outputs, expected ", expected.size());
      for (size_t i = 0; i < got.size(); ++i)
        if (auto d = compare(got[i], expected[i]); !d.empty()) return str_cat("output ", i, ": ", d);
      ++sets;
    }
    return sets ? "" : "no test data";
  } catch (const Error& e) {
    return str_cat("error: ", e.what());
  }
}

TEST(OnnxNodeTests, EverySupportedCasePasses) {
  ASSERT_TRUE(fs::is_directory(kNodeDir)) << kNodeDir << " is missing; scripts/install-deps.sh installs libonnx-testdata";
  const auto ops = supported_ops();
  const std::set<std::string> supported(ops.begin(), ops.end());
  std::vector<fs::path> cases;
  for (const auto& e : fs::directory_iterator(kNodeDir)) cases.push_back(e.path());
  std::sort(cases.begin(), cases.end());
  std::map<std::string, int> passed_own;  // op → passing cases that consist of that op alone
  std::set<std::string> seen_unsupported;
  int run = 0, passed = 0;
  for (const fs::path& dir : cases) {
    const std::string name = dir.filename().string();
    const ModelSummary s = peek_model(io::read_file((dir / "model.onnx").string()), name);
    const bool all_supported = std::all_of(s.ops.begin(), s.ops.end(), [&](const auto& o) { return supported.count(o); });
    const bool old_ok = std::all_of(s.ops.begin(), s.ops.end(), [](const auto& o) {
      return std::find(std::begin(kOpsetOneOps), std::end(kOpsetOneOps), o) != std::end(kOpsetOneOps);
    });
    if (!all_supported || s.opset < 1 || s.opset > kMaxOpset || (s.opset < kMinOpset && !old_ok)) continue;
    ++run;
    const std::string result = run_case(dir);
    auto expected_error = kUnsupportedVariants.find(name);
    if (expected_error != kUnsupportedVariants.end()) {
      seen_unsupported.insert(name);
      EXPECT_NE(result.find(expected_error->second), std::string::npos)
          << name << ": expected an error containing '" << expected_error->second << "', got: "
          << (result.empty() ? "success" : result);
      continue;
    }
    EXPECT_EQ(result, "") << name << " (" << s.ops.size() << " nodes, opset " << s.opset << ")";
    if (!result.empty()) continue;
    ++passed;
    if (std::set<std::string>(s.ops.begin(), s.ops.end()).size() == 1) ++passed_own[s.ops[0]];
  }
  for (const auto& [name, _] : kUnsupportedVariants)
    EXPECT_TRUE(seen_unsupported.count(name)) << name << " is listed as unsupported but was not run";
  for (const auto& op : supported)
    EXPECT_TRUE(passed_own[op] > 0 || kNoOwnCase.count(op)) << op << " passed no node test case of its own";
  std::string per_op;
  for (const auto& [op, n] : passed_own) per_op += str_cat(per_op.empty() ? "" : ", ", op, " ", n);
  std::cout << "[ node tests ] single-op cases passed per op: " << per_op << "\n";
  std::cout << "[ node tests ] " << passed << " of " << run << " runnable cases pass, " << kUnsupportedVariants.size()
            << " give their documented error\n";
}

}  // namespace
}  // namespace resin::onnx
