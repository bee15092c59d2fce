// Helpers of the ONNX tests: models at small inputs, running external programs, raw f32 files.
#pragma once
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "../io/temp_dir.h"
#include "../models/zoo_oracle.h"  // relative_error, randomise_batch_norm
#include "resin/io/atomic_file.h"
#include "resin/models/zoo.h"
#include "resin/onnx/export.h"
#include "resin/onnx/import.h"

namespace resin::testing {

// A zoo model (or lab spec) with random BN statistics, so that folding and eval-mode BN matter,
// and random values in parameters that start at zero (Fixup's head and biases, ReZero's α,
// LAuReL's B and γ), so that every term of the forward shows in the output.
inline nn::ModulePtr make_model(const std::string& name, int64_t in_channels, int64_t classes, int64_t image) {
  auto m = models::create_model(name, {.in_channels = in_channels, .num_classes = classes, .image_size = image});
  randomise_batch_norm(*m);
  for (auto& [_, p] : m->named_parameters())
    if (max_abs(p) == 0) nn::init::uniform_(p, -0.3, 0.3);
  m->eval();
  return m;
}

// Runs a shell command, output to log_path; "" on success, else the exit status and the log.
inline std::string run_command(const std::string& cmd, const std::string& log_path) {
  const auto [rc, log] = run_logged(cmd, log_path);
  return rc == 0 ? "" : "`" + cmd + "` failed with exit status " + std::to_string(rc) + ":\n" + log;
}

inline void write_f32(const std::string& path, const Tensor& t) {
  const Tensor c = t.contiguous();
  io::atomic_write_file(path, std::string(static_cast<const char*>(c.raw_data()), static_cast<size_t>(c.numel()) * 4));
}

inline Tensor read_f32(const std::string& path, const Shape& shape) {
  const std::string bytes = io::read_file(path);
  RESIN_CHECK(static_cast<int64_t>(bytes.size()) == shape.numel() * 4, path, ": ", bytes.size(), " bytes for shape ",
              shape);
  Tensor t = empty(shape);
  std::memcpy(t.raw_data(), bytes.data(), bytes.size());
  return t;
}

}  // namespace resin::testing
