// A tiny Fashion-MNIST directory for tests that run the real loaders and trainers in seconds: IDX
// files (uncompressed) whose images show their label (pixels p with p % 10 == label are bright, with
// noise), label i % 10, so a network learns them quickly.
#pragma once
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "resin/core/rng.h"

namespace resin::test {

inline void put_idx_u32(std::ofstream& f, uint32_t v) {
  const unsigned char b[4] = {static_cast<unsigned char>(v >> 24), static_cast<unsigned char>(v >> 16),
                              static_cast<unsigned char>(v >> 8), static_cast<unsigned char>(v)};
  f.write(reinterpret_cast<const char*>(b), 4);
}

// `prefix`-images-idx3-ubyte and `prefix`-labels-idx1-ubyte with n 28x28 images in `dir`.
inline void write_fake_fashion_mnist_split(const std::string& dir, const std::string& prefix, uint32_t n,
                                           uint64_t seed) {
  Generator g(seed);
  std::ofstream img(dir + "/" + prefix + "-images-idx3-ubyte", std::ios::binary);
  std::ofstream lab(dir + "/" + prefix + "-labels-idx1-ubyte", std::ios::binary);
  put_idx_u32(img, 0x803), put_idx_u32(img, n), put_idx_u32(img, 28), put_idx_u32(img, 28);
  put_idx_u32(lab, 0x801), put_idx_u32(lab, n);
  for (uint32_t i = 0; i < n; ++i) {
    const unsigned char y = static_cast<unsigned char>(i % 10);
    lab.write(reinterpret_cast<const char*>(&y), 1);
    for (int p = 0; p < 784; ++p) {
      const bool on = (p % 10) == y && g.uniform() < 0.8;
      const unsigned char v = static_cast<unsigned char>(on ? 200 + g.below(56) : g.below(40));
      img.write(reinterpret_cast<const char*>(&v), 1);
    }
  }
}

// A Fashion-MNIST directory `dir` (created) with train_n training and test_n test images.
inline std::string write_fake_fashion_mnist(const std::string& dir, uint32_t train_n, uint32_t test_n = 500) {
  std::filesystem::create_directories(dir);
  write_fake_fashion_mnist_split(dir, "train", train_n, 1);
  write_fake_fashion_mnist_split(dir, "t10k", test_n, 2);
  return dir;
}

}  // namespace resin::test
