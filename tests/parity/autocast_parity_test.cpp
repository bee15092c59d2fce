// bf16 autocast against PyTorch's: conv2d forward and gradients under AutocastGuard(DType::bf16)
// vs torch.autocast(device_type="cpu", dtype=torch.bfloat16) on the same inputs (torch_autocast.py,
// one /usr/bin/python3 process for every case).
//
// Both round x, w and the incoming gradient to bf16 (round to nearest even) and accumulate in f32.
// The differences are torch's: its outputs and gradients are bf16 tensors (rounded once more,
// relative error <= u = 2^-8), and it rounds the bias to bf16 too where resin keeps it f32. So,
// elementwise: |resin - torch| <= (u + 1e-4) |torch| + u |bias| + 1e-5 max(1, max|torch|), the last
// two terms of which are the f32 parity tolerance (accumulation order) of tests/parity.
// Runs only where oneDNN computes bf16 natively; without torch every test FAILS (as in parity_test).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdlib>

#include "../io/temp_dir.h"
#include "resin/backend/backend.h"
#include "resin/io/atomic_file.h"
#include "resin/io/safetensors.h"
#include "resin/resin.h"

namespace resin {
namespace {

struct ConvCase {
  const char* id;
  int64_t n, c, h, w, o, k, stride, pad, groups;
  bool channels_last, bias;
};

const ConvCase kCases[] = {
    {"a0_3x3_16_cl_bias", 4, 16, 10, 10, 16, 3, 1, 1, 1, true, true},
    {"a1_3x3_16_nchw", 4, 16, 10, 10, 16, 3, 1, 1, 1, false, false},
    {"a2_3x3_s2_32_to_64_cl", 2, 32, 9, 9, 64, 3, 2, 1, 1, true, false},
    {"a3_1x1_s2_16_to_32_nchw_bias", 3, 16, 8, 8, 32, 1, 2, 0, 1, false, true},
    {"a4_groups2_32_cl", 2, 32, 7, 7, 32, 3, 1, 1, 2, true, true},
};

void expect_matches_torch(const Tensor& got, const Tensor& torch, const Tensor& bias,
                          const std::string& what) {
  ASSERT_EQ(got.shape(), torch.shape()) << what;
  const std::vector<double> g = got.to_vector(), t = torch.to_vector();
  std::vector<double> b(t.size(), 0.0);
  if (bias.defined()) {  // y [N, O, H, W]: the bias of each element's channel
    const std::vector<double> bv = bias.to_vector();
    const int64_t per = torch.size(2) * torch.size(3);
    for (size_t i = 0; i < b.size(); ++i) b[i] = bv[(static_cast<int64_t>(i) / per) % torch.size(1)];
  }
  double scale = 1;
  for (double v : t) scale = std::max(scale, std::abs(v));
  const double u = 1.0 / 256;
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    const double allowed = (u + 1e-4) * std::abs(t[i]) + u * std::abs(b[i]) + 1e-5 * scale;
    if (!(std::abs(g[i] - t[i]) <= allowed) && bad++ == 0) first = i;
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << g.size() << " elements off; first at " << first
                     << ": resin " << g[first] << ", torch " << t[first];
}

TEST(AutocastParity, Conv2dMatchesTorchAutocast) {
  if (!backend::bf16_compute_supported()) {
    std::printf("[ SKIPPED-ISA ] oneDNN reports %s: no native bf16\n", backend::cpu_isa_name().c_str());
    GTEST_SKIP();
  }
  Generator gen(99);
  std::map<std::string, Tensor> inputs;
  std::string spec = "{\"cases\": [";
  for (const ConvCase& c : kCases) {
    const std::string id = c.id;
    const Shape ys{c.n, c.o, (c.h + 2 * c.pad - c.k) / c.stride + 1, (c.w + 2 * c.pad - c.k) / c.stride + 1};
    inputs[id + "/x"] = randn({c.n, c.c, c.h, c.w}, {}, &gen);
    inputs[id + "/w"] = randn({c.o, c.c / c.groups, c.k, c.k}, {}, &gen);
    inputs[id + "/gy"] = randn(ys, {}, &gen);
    if (c.bias) inputs[id + "/b"] = randn({c.o}, {}, &gen);
    spec += str_cat(&c == kCases ? "" : ", ", "{\"id\": \"", id, "\", \"stride\": ", c.stride,
                    ", \"padding\": ", c.pad, ", \"groups\": ", c.groups,
                    ", \"channels_last\": ", c.channels_last ? "true" : "false",
                    ", \"bias\": ", c.bias ? "true" : "false", "}");
  }
  spec += "]}";

  testing::TempDir dir;
  io::atomic_write_file(dir.file("spec.json"), spec);
  io::save_safetensors(dir.file("in.safetensors"), inputs);
  const std::string script = std::string(RESIN_SOURCE_DIR) + "/tests/parity/torch_autocast.py";
  const std::string cmd = "/usr/bin/python3 '" + script + "' '" + dir.file("spec.json") + "' '" +
                          dir.file("in.safetensors") + "' '" + dir.file("out.safetensors") + "' > '" +
                          dir.file("log") + "' 2>&1";
  const int status = std::system(cmd.c_str());
  ASSERT_TRUE(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "torch_autocast.py failed (run scripts/install-deps.sh for python3-torch):\n"
      << io::read_file(dir.file("log"));
  const io::SafetensorsFile torch = io::load_safetensors(dir.file("out.safetensors"));

  for (const ConvCase& c : kCases) {
    const std::string id = c.id;
    Tensor x =
        inputs[id + "/x"].clone(c.channels_last ? MemoryFormat::channels_last : MemoryFormat::contiguous);
    Tensor w = inputs[id + "/w"].clone(), b = c.bias ? inputs[id + "/b"].clone() : Tensor();
    for (Tensor* t : {&x, &w, &b})
      if (t->defined()) t->set_requires_grad(true);
    Tensor y;
    {
      AutocastGuard autocast(DType::bf16);
      y = conv2d(x, w, b, {.stride = {c.stride}, .padding = {c.pad}, .groups = c.groups});
    }
    sum(mul(y, inputs[id + "/gy"])).backward();
    expect_matches_torch(y, torch.tensors.at(id + "/y"), b, id + " y");
    expect_matches_torch(x.grad(), torch.tensors.at(id + "/gx"), Tensor(), id + " gx");
    expect_matches_torch(w.grad(), torch.tensors.at(id + "/gw"), Tensor(), id + " gw");
    if (c.bias) expect_matches_torch(b.grad(), torch.tensors.at(id + "/gb"), Tensor(), id + " gb");
  }
}

}  // namespace
}  // namespace resin
