// IDX files (the MNIST / Fashion-MNIST format), gzip-compressed or raw.
//
// Format: a 4-byte magic 00 00 TT NN (TT = element type, only 0x08 = unsigned byte is supported;
// NN = number of dims), then NN big-endian uint32 dims, then the elements row-major. Images files
// have magic 0x00000803 ([N, rows, cols]); labels files 0x00000801 ([N]).
//
// Every reader validates before touching data: magic, dims > 0 (N may be 0), the product of the
// dims (overflow-checked) against the file's actual payload size, image/label counts, label range.
// Failures throw resin::Error naming the file and what to do.
#pragma once
#include <memory>
#include <string>

#include "resin/data/dataset.h"

namespace resin::data {

inline constexpr const char* kFashionMnistRoot = "/usr/share/datasets/fashion-mnist";
inline constexpr float kFashionMnistMean = 0.2860f;  // of pixels / 255, over the training set
inline constexpr float kFashionMnistStd = 0.3530f;
inline constexpr float kMnistMean = 0.1307f;
inline constexpr float kMnistStd = 0.3081f;

// u8 [N, 1, rows, cols] from an images file (magic 0x00000803).
Tensor read_idx_images(const std::string& path);
// i64 [N] from a labels file (magic 0x00000801); when num_classes > 0, labels >= num_classes throw.
Tensor read_idx_labels(const std::string& path, int64_t num_classes = 0);

// The same on a file's bytes (after any gunzip); `source` names them in errors.
Tensor parse_idx_images(const std::vector<uint8_t>& bytes, const std::string& source);
Tensor parse_idx_labels(const std::vector<uint8_t>& bytes, const std::string& source, int64_t num_classes = 0);

// Pairs an images and a labels file (counts must match) into a TensorDataset.
std::shared_ptr<TensorDataset> load_idx_dataset(const std::string& images_path,
                                                const std::string& labels_path, int64_t num_classes);

// Loads {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] from root (".gz" is preferred when both
// exist). 10 classes; u8 images [N, 1, 28, 28] (60000 train / 10000 test for the real data).
// A missing file throws naming the expected files; at the default root it also says to install
// the Debian package dataset-fashion-mnist.
std::shared_ptr<TensorDataset> load_fashion_mnist(const std::string& root = kFashionMnistRoot,
                                                  bool train = true);
std::shared_ptr<TensorDataset> load_mnist(const std::string& root, bool train = true);

}  // namespace resin::data
