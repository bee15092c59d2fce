// Parity with PyTorch for multi-head attention and Transformer encoder/decoder layers and stacks
// (post-LN = norm_first False, pre-LN = norm_first True), given the same weights: outputs and the
// gradients of sum_k sum(out_k * r_k) w.r.t. every input and every parameter must match.
//
// ONE /usr/bin/python3 process (transformer_oracle.py) computes torch's answers for every case; they
// are cached in the build tree under a hash of the spec, inputs and script. Tolerances, elementwise:
//   f64 (reference kernels): |resin − torch| <= 1e-10·|torch| + 1e-12·max(1, max|torch|)
//   f32 (oneDNN):            |resin − torch| <= 1e-4·|torch|  + 1e-5·max(1, max|torch|)
// Without an importable torch every test FAILS and says to run scripts/install-deps.sh.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "../io/temp_dir.h"
#include "block_test_util.h"
#include "resin/backend/backend.h"
#include "resin/blocks/transformer.h"
#include "resin/io/atomic_file.h"
#include "resin/io/json.h"
#include "resin/io/safetensors.h"

namespace resin::testing {
namespace {

using namespace blocks;

// r_k of the oracle: ((i * 7919 + k * 104729 + 17) % 2003) / 1001.5 − 1.
Tensor cotangent(const Shape& s, int64_t k, DType t) {
  std::vector<double> v(static_cast<size_t>(s.numel()));
  for (size_t i = 0; i < v.size(); ++i)
    v[i] = static_cast<double>((static_cast<int64_t>(i) * 7919 + k * 104729 + 17) % 2003) / 1001.5 - 1.0;
  return from_vector(v, s, {.dtype = t});
}

struct Spec {
  std::string kind;  // mha | encoder_layer | decoder_layer | encoder | decoder
  std::string label;
  DType dtype = DType::f32;
  int64_t dim = 16, heads = 4, ff = 32, layers = 1;
  Activation act = Activation::relu;
  bool norm_first = false, self_attention = true, final_norm = false;
  std::vector<std::string> masks = {};  // which masks the case uses
};

struct Built {
  Spec spec;
  std::string id;
  nn::ModulePtr module;
  std::map<std::string, Tensor> inputs, masks;
};

TransformerLayerOptions layer_options(const Spec& s) {
  return {.dim = s.dim,
          .heads = s.heads,
          .ff = s.ff,
          .activation = s.act,
          .placement = s.norm_first ? Placement::pre : Placement::post};
}

Tensor mask01(const std::vector<std::vector<int>>& rows, DType t) {
  std::vector<double> v;
  for (auto& r : rows) v.insert(v.end(), r.begin(), r.end());
  return from_vector(v, {static_cast<int64_t>(rows.size()), static_cast<int64_t>(rows[0].size())},
                     {.dtype = t});
}

Built build(const Spec& s, size_t index) {
  manual_seed(1000 + index);
  Built b{s, str_cat("t", index < 10 ? "0" : "", index), nullptr, {}, {}};
  const int64_t N = 2, T = 5, S = 6, E = s.dim;
  if (s.kind == "mha") {
    b.module = std::make_shared<MultiheadAttention>(MultiheadAttentionOptions{.dim = E, .heads = s.heads});
    if (s.self_attention) {
      b.inputs["x"] = randn({N, T, E});
    } else {
      b.inputs["q"] = randn({N, T - 1, E});
      b.inputs["k"] = randn({N, S, E});
      b.inputs["v"] = randn({N, S, E});
    }
  } else if (s.kind == "encoder_layer" || s.kind == "encoder") {
    if (s.kind == "encoder_layer")
      b.module = std::make_shared<TransformerEncoderLayer>(layer_options(s));
    else
      b.module = std::make_shared<TransformerEncoder>(
          TransformerStackOptions{.layer = layer_options(s),
                                  .layers = s.layers,
                                  .final_norm = s.final_norm ? TransformerStackOptions::FinalNorm::on
                                                             : TransformerStackOptions::FinalNorm::off});
    b.inputs["x"] = randn({N, T, E});
  } else {
    if (s.kind == "decoder_layer")
      b.module = std::make_shared<TransformerDecoderLayer>(layer_options(s));
    else
      b.module = std::make_shared<TransformerDecoder>(
          TransformerStackOptions{.layer = layer_options(s),
                                  .layers = s.layers,
                                  .final_norm = s.final_norm ? TransformerStackOptions::FinalNorm::on
                                                             : TransformerStackOptions::FinalNorm::off});
    b.inputs["tgt"] = randn({N, T, E});
    b.inputs["memory"] = randn({N, S, E});
  }
  // Biases start at 0 in torch's init; give them values so their gradients and effects are tested.
  for (auto& [name, p] : b.module->named_parameters())
    if (name.find("bias") != std::string::npos) {
      NoGradGuard ng;
      backend::backend_for(p).copy(mul(randn(p.shape()), 0.1), p);
    }
  const int64_t keys = s.kind == "mha" ? (s.self_attention ? T : S) : T;
  for (const std::string& m : s.masks) {
    if (m == "attn_mask" || m == "tgt_mask")
      b.masks[m] = causal_mask(T, T);
    else if (m == "key_padding_mask" || m == "tgt_key_padding_mask")
      b.masks[m] = keys == S ? mask01({{0, 0, 0, 0, 1, 1}, {0, 0, 0, 0, 0, 1}}, DType::f32)
                             : mask01({{0, 0, 0, 1, 1}, {0, 0, 0, 0, 0}}, DType::f32);
    else if (m == "memory_key_padding_mask")
      b.masks[m] = mask01({{0, 0, 0, 0, 0, 1}, {0, 0, 1, 1, 1, 1}}, DType::f32);
  }
  if (s.dtype == DType::f64) {
    convert(*b.module, DType::f64);
    for (auto& [_, t] : b.inputs) t = t.to(DType::f64);
  }
  return b;
}

std::vector<Spec> specs() {
  std::vector<Spec> base = {
      {.kind = "mha", .label = "self_need_weights"},
      {.kind = "mha", .label = "cross_key_padding", .self_attention = false, .masks = {"key_padding_mask"}},
      {.kind = "mha", .label = "self_causal", .masks = {"attn_mask"}},
      {.kind = "encoder_layer", .label = "post_relu"},
      {.kind = "encoder_layer",
       .label = "pre_gelu_causal_padding",
       .act = Activation::gelu,
       .norm_first = true,
       .masks = {"attn_mask", "key_padding_mask"}},
      {.kind = "encoder_layer",
       .label = "post_gelu_padding",
       .act = Activation::gelu,
       .masks = {"key_padding_mask"}},
      {.kind = "encoder_layer", .label = "pre_relu", .norm_first = true},
      {.kind = "decoder_layer", .label = "post_relu_causal", .masks = {"tgt_mask"}},
      {.kind = "decoder_layer",
       .label = "pre_gelu_causal_memory_padding",
       .act = Activation::gelu,
       .norm_first = true,
       .masks = {"tgt_mask", "memory_key_padding_mask"}},
      {.kind = "decoder_layer",
       .label = "post_gelu_padding",
       .act = Activation::gelu,
       .masks = {"tgt_key_padding_mask", "memory_key_padding_mask"}},
      {.kind = "encoder",
       .label = "pre3_final_norm_causal",
       .layers = 3,
       .norm_first = true,
       .final_norm = true,
       .masks = {"attn_mask"}},
      {.kind = "encoder", .label = "post2", .layers = 2},
      {.kind = "decoder",
       .label = "pre2_final_norm",
       .layers = 2,
       .norm_first = true,
       .final_norm = true,
       .masks = {"tgt_mask"}},
  };
  std::vector<Spec> out;
  for (DType t : {DType::f32, DType::f64})
    for (Spec s : base) {
      s.dtype = t;
      s.label += t == DType::f64 ? "_f64" : "_f32";
      out.push_back(s);
    }
  return out;
}

std::vector<Tensor> run_resin(Built& b, std::map<std::string, Tensor>& leaves) {
  for (auto& [n, t] : b.inputs) {
    leaves[n] = t.clone();
    leaves[n].set_requires_grad(true);
  }
  auto mask = [&](const char* n) { return b.masks.count(n) ? b.masks.at(n) : Tensor(); };
  const std::string& k = b.spec.kind;
  if (k == "mha") {
    auto& m = static_cast<MultiheadAttention&>(*b.module);
    Tensor w;
    const AttentionMask am{.attn_mask = mask("attn_mask"), .key_padding_mask = mask("key_padding_mask")};
    Tensor out = b.spec.self_attention ? m.forward(leaves["x"], leaves["x"], leaves["x"], am, &w)
                                       : m.forward(leaves["q"], leaves["k"], leaves["v"], am, &w);
    return {out, w};
  }
  const AttentionMask src{.attn_mask = mask("attn_mask"), .key_padding_mask = mask("key_padding_mask")};
  const AttentionMask tgt{.attn_mask = mask("tgt_mask"), .key_padding_mask = mask("tgt_key_padding_mask")};
  const AttentionMask mem{.key_padding_mask = mask("memory_key_padding_mask")};
  if (k == "encoder_layer")
    return {static_cast<TransformerEncoderLayer&>(*b.module).forward(leaves["x"], src)};
  if (k == "encoder") return {static_cast<TransformerEncoder&>(*b.module).forward(leaves["x"], src)};
  if (k == "decoder_layer")
    return {
        static_cast<TransformerDecoderLayer&>(*b.module).forward(leaves["tgt"], leaves["memory"], tgt, mem)};
  return {static_cast<TransformerDecoder&>(*b.module).forward(leaves["tgt"], leaves["memory"], tgt, mem)};
}

struct Oracle {
  std::vector<Built> cases;
  io::SafetensorsFile results;
  std::string error;
};

std::string spec_json(const std::vector<Built>& cases) {
  auto list = [](const std::vector<std::string>& v) {
    std::string s = "[";
    for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + io::json_quote(v[i]);
    return s + "]";
  };
  std::string s = "{\"cases\": [\n";
  for (size_t i = 0; i < cases.size(); ++i) {
    const Spec& c = cases[i].spec;
    std::vector<std::string> inputs;
    for (auto& [n, _] : cases[i].inputs) inputs.push_back(n);
    s += str_cat(i ? ",\n" : "", "{\"id\": ", io::json_quote(cases[i].id),
                 ", \"kind\": ", io::json_quote(c.kind), ", \"dtype\": \"",
                 c.dtype == DType::f64 ? "f64" : "f32", "\", \"dim\": ", c.dim, ", \"heads\": ", c.heads,
                 ", \"ff\": ", c.ff, ", \"activation\": \"", c.act == Activation::gelu ? "gelu" : "relu",
                 "\", \"norm_first\": ", c.norm_first ? "true" : "false", ", \"layers\": ", c.layers,
                 ", \"final_norm\": ", c.final_norm ? "true" : "false",
                 ", \"self_attention\": ", c.self_attention ? "true" : "false",
                 ", \"inputs\": ", list(inputs), ", \"masks\": ", list(c.masks), "}");
  }
  return s + "\n]}\n";
}

Oracle run_oracle() {
  Oracle o;
  const auto all = specs();
  for (size_t i = 0; i < all.size(); ++i) o.cases.push_back(build(all[i], i));
  std::map<std::string, Tensor> tensors;
  for (const Built& b : o.cases) {
    for (auto& [n, t] : b.module->state_dict()) tensors[b.id + "/param/" + n] = t;
    for (auto& [n, t] : b.inputs) tensors[b.id + "/input/" + n] = t;
    for (auto& [n, t] : b.masks) tensors[b.id + "/mask/" + n] = t;
  }
  const std::string spec = spec_json(o.cases);
  io::parse_json(spec, "transformer parity spec");
  const std::string script = std::string(RESIN_SOURCE_DIR) + "/tests/blocks/transformer_oracle.py";
  const std::string input_bytes = io::serialize_safetensors(tensors), script_text = io::read_file(script);
  uint64_t h = 1469598103934665603ull;  // FNV-1a over everything torch's answer depends on
  for (const std::string* part : {&spec, &input_bytes, &script_text})
    for (const char ch : *part) h = (h ^ static_cast<unsigned char>(ch)) * 1099511628211ull;
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  const std::string cache = std::string(RESIN_BINARY_DIR) + "/transformer-oracle-" + hex + ".safetensors";
  const char* no_cache = std::getenv("RESIN_PARITY_NO_CACHE");
  if (!(no_cache && std::string(no_cache) == "1") && ::access(cache.c_str(), R_OK) == 0) {
    o.results = io::load_safetensors(cache);
    return o;
  }
  TempDir dir;
  const std::string spec_path = dir.file("spec.json"), in_path = dir.file("inputs.safetensors"),
                    out_path = dir.file("outputs.safetensors"), log_path = dir.file("oracle.log");
  io::atomic_write_file(spec_path, spec);
  io::atomic_write_file(in_path, input_bytes);
  const std::string cmd = "/usr/bin/python3 '" + script + "' '" + spec_path + "' '" + in_path + "' '" +
                          out_path + "' > '" + log_path + "' 2>&1";
  const int status = std::system(cmd.c_str());
  const int rc = status == -1 ? -1 : WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  std::string log;
  try {
    log = io::read_file(log_path);
  } catch (const Error&) {
  }
  if (rc == 3 || rc == 127) {
    o.error =
        "PyTorch is not importable from /usr/bin/python3, so the Transformer parity tests cannot run. "
        "Run scripts/install-deps.sh (it installs python3-torch). Oracle output:\n" +
        log;
  } else if (rc != 0) {
    o.error = "transformer_oracle.py failed with exit status " + std::to_string(rc) + ":\n" + log;
  } else {
    const std::string bytes = io::read_file(out_path);
    o.results = io::parse_safetensors(bytes, out_path);
    io::atomic_write_file(cache, bytes);
  }
  return o;
}

Oracle& oracle() {
  static Oracle o = run_oracle();
  return o;
}

// "" when got matches want, else the worst element.
std::string compare(const Tensor& got, const Tensor& want, DType dtype) {
  if (!got.defined()) return "resin gave no tensor";
  if (got.shape() != want.shape()) return str_cat("shape ", got.shape(), ", torch has ", want.shape());
  const double rtol = dtype == DType::f64 ? 1e-10 : 1e-4, atol_rel = dtype == DType::f64 ? 1e-12 : 1e-5;
  const auto g = got.to_vector(), w = want.to_vector();
  const double atol = atol_rel * std::max(1.0, max_abs(want));
  size_t worst = 0;
  double excess = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    const double e = std::abs(g[i] - w[i]) / (atol + rtol * std::abs(w[i]));
    if (!(e <= excess)) excess = e, worst = i;  // NaN counts as worst
  }
  if (excess <= 1.0) return "";
  return str_cat("element ", worst, ": resin ", g[worst], ", torch ", w[worst], " (", excess,
                 "x the tolerance)");
}

class TransformerParity : public ::testing::TestWithParam<size_t> {};

TEST_P(TransformerParity, OutputsAndGradientsMatchTorch) {
  Oracle& o = oracle();
  ASSERT_TRUE(o.error.empty()) << o.error;
  Built& b = o.cases[GetParam()];
  const DType t = b.spec.dtype;
  b.module->zero_grad();
  std::map<std::string, Tensor> leaves;
  const auto outs = run_resin(b, leaves);
  Tensor loss;
  for (size_t k = 0; k < outs.size(); ++k) {
    Tensor l = sum(mul(outs[k], cotangent(outs[k].shape(), static_cast<int64_t>(k), t)));
    loss = loss.defined() ? add(loss, l) : l;
  }
  loss.backward();
  auto want = [&](const std::string& key) {
    auto it = o.results.tensors.find(b.id + "/" + key);
    EXPECT_NE(it, o.results.tensors.end()) << "torch gave no " << key;
    return it == o.results.tensors.end() ? Tensor() : it->second;
  };
  int checked = 0;
  for (size_t k = 0; k < outs.size(); ++k) {
    Tensor w = want("out" + std::to_string(k));
    if (!w.defined()) continue;
    EXPECT_EQ(compare(outs[k], w, t), "") << "output " << k;
    ++checked;
  }
  for (auto& [n, leaf] : leaves) {
    Tensor w = want("grad_input/" + n);
    if (!w.defined()) continue;
    EXPECT_EQ(compare(leaf.grad(), w, t), "") << "gradient of input " << n;
    ++checked;
  }
  for (auto& [n, p] : b.module->named_parameters()) {
    Tensor w = want("grad_param/" + n);
    if (!w.defined()) continue;
    EXPECT_EQ(compare(p.grad(), w, t), "") << "gradient of " << n;
    ++checked;
  }
  EXPECT_GT(checked, 4);
}

INSTANTIATE_TEST_SUITE_P(Blocks, TransformerParity, ::testing::Range<size_t>(0, specs().size()),
                         [](const ::testing::TestParamInfo<size_t>& info) {
                           const Spec s = specs()[info.param];
                           return s.kind + "_" + s.label;
                         });

}  // namespace
}  // namespace resin::testing
