// CIFAR-10 / CIFAR-100 in the "binary version" format.
//
// A record is the label byte(s) followed by 3072 pixel bytes: 1024 red, 1024 green, 1024 blue, each
// 32x32 row-major, which is exactly a [3, 32, 32] image. CIFAR-10 records have 1 label byte (< 10);
// CIFAR-100 records have 2 (coarse < 20, then fine < 100).
//   CIFAR-10 files:  data_batch_1.bin .. data_batch_5.bin (train, 50000), test_batch.bin (10000)
//   CIFAR-100 files: train.bin (50000), test.bin (10000)
// root may be the folder holding the files or its parent holding cifar-10-batches-bin/ or
// cifar-100-binary/ (as the tarballs unpack). Files may also be gzip-compressed with a ".gz" suffix.
// Errors (resin::Error): missing files (naming them), a size that is not a multiple of the record
// size, labels out of range.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "resin/data/dataset.h"

namespace resin::data {

// Per-channel statistics of the training sets (pixels / 255), for Normalize.
inline const std::vector<float> kCifar10Mean = {0.4914f, 0.4822f, 0.4465f};
inline const std::vector<float> kCifar10Std = {0.2470f, 0.2435f, 0.2616f};
inline const std::vector<float> kCifar100Mean = {0.5071f, 0.4865f, 0.4409f};
inline const std::vector<float> kCifar100Std = {0.2673f, 0.2564f, 0.2762f};

// Reads records from the given files in order. label_bytes is 1 (CIFAR-10) or 2 (CIFAR-100);
// label_index picks which label byte is the label; num_classes bounds it.
std::shared_ptr<TensorDataset> read_cifar_files(const std::vector<std::string>& paths, int label_bytes,
                                                int label_index, int64_t num_classes);
// The same on the files' bytes (after any gunzip); names[i] names files[i] in errors. The buffers
// are released as they are consumed.
std::shared_ptr<TensorDataset> parse_cifar_files(std::vector<std::vector<uint8_t>> files,
                                                 const std::vector<std::string>& names, int label_bytes,
                                                 int label_index, int64_t num_classes);

std::shared_ptr<TensorDataset> load_cifar10(const std::string& root, bool train = true);
// fine = true: 100 fine labels; false: 20 coarse labels.
std::shared_ptr<TensorDataset> load_cifar100(const std::string& root, bool train = true, bool fine = true);

}  // namespace resin::data
