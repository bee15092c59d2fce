#include "resin/data/cifar.h"

#include <cstring>

#include "resin/data/io.h"

namespace resin::data {

namespace {

constexpr int64_t kPixels = 3 * 32 * 32;

// Resolves the folder holding `probe` (root itself or root/subdir) and returns the full paths.
std::vector<std::string> resolve(const std::string& root, const std::string& subdir,
                                 const std::vector<std::string>& names, const std::string& dataset,
                                 const std::string& all_files) {
  for (const std::string& dir : {root, root + "/" + subdir}) {
    std::vector<std::string> paths;
    for (const auto& n : names) {
      const std::string p = dir + "/" + n;
      if (file_exists(p))
        paths.push_back(p);
      else if (file_exists(p + ".gz"))
        paths.push_back(p + ".gz");
      else
        break;
    }
    if (paths.size() == names.size()) return paths;
    if (!paths.empty() || dir == root + "/" + subdir) {
      // Some files present in this folder (or the last candidate): name the first missing one.
      const std::string missing = dir + "/" + names[paths.size()];
      RESIN_FAIL(dataset, ": missing file ", missing, " in ", root,
                 dir_exists(root) ? "" : " (the directory does not exist)", "; expected ", all_files,
                 " (the binary version, e.g. unpacked into ", subdir, "/) in ", root, " or ", root, "/",
                 subdir);
    }
  }
  RESIN_FAIL("unreachable");
}

}  // namespace

std::shared_ptr<TensorDataset> read_cifar_files(const std::vector<std::string>& paths, int label_bytes,
                                                int label_index, int64_t num_classes) {
  std::vector<std::vector<uint8_t>> files;
  for (const auto& p : paths) files.push_back(read_file_maybe_gz(p));
  return parse_cifar_files(std::move(files), paths, label_bytes, label_index, num_classes);
}

std::shared_ptr<TensorDataset> parse_cifar_files(std::vector<std::vector<uint8_t>> files,
                                                 const std::vector<std::string>& paths, int label_bytes,
                                                 int label_index, int64_t num_classes) {
  RESIN_CHECK(label_bytes >= 1 && label_index >= 0 && label_index < label_bytes,
              "read_cifar_files: bad label layout ", label_bytes, "/", label_index);
  RESIN_CHECK(files.size() == paths.size(), "parse_cifar_files: ", files.size(), " files but ", paths.size(),
              " names");
  const int64_t record = label_bytes + kPixels;
  int64_t total = 0;
  for (size_t f = 0; f < files.size(); ++f) {
    const std::string& p = paths[f];
    const auto size = static_cast<int64_t>(files[f].size());
    RESIN_CHECK(size % record == 0, "CIFAR file ", p, " has ", size, " bytes, not a multiple of the ", record,
                "-byte record (", label_bytes, " label byte", label_bytes > 1 ? "s" : "", " + 3072 pixels)",
                "; the file is truncated or is not a ", label_bytes == 1 ? "CIFAR-10" : "CIFAR-100",
                " binary file");
    total += size / record;
  }
  Tensor images = empty({total, 3, 32, 32}, {.dtype = DType::u8});
  Tensor labels = empty({total}, {.dtype = DType::i64});
  uint8_t* img = images.data<uint8_t>();
  int64_t* lab = labels.data<int64_t>();
  int64_t k = 0;
  for (size_t f = 0; f < files.size(); ++f) {
    const std::vector<uint8_t>& b = files[f];
    const int64_t n = static_cast<int64_t>(b.size()) / record;
    for (int64_t r = 0; r < n; ++r, ++k) {
      const uint8_t* rec = b.data() + r * record;
      const int64_t label = rec[label_index];
      RESIN_CHECK(label < num_classes, "CIFAR file ", paths[f], ": label ", label, " of record ", r,
                  " is out of range [0, ", num_classes, ") (corrupt file, or CIFAR-10/CIFAR-100 mixed up)");
      lab[k] = label;
      std::memcpy(img + k * kPixels, rec + label_bytes, kPixels);
    }
    files[f].clear();
    files[f].shrink_to_fit();
  }
  return std::make_shared<TensorDataset>(images, labels, num_classes);
}

std::shared_ptr<TensorDataset> load_cifar10(const std::string& root, bool train) {
  std::vector<std::string> names;
  if (train) {
    for (int i = 1; i <= 5; ++i) names.push_back("data_batch_" + std::to_string(i) + ".bin");
  } else {
    names = {"test_batch.bin"};
  }
  const auto paths = resolve(root, "cifar-10-batches-bin", names, "CIFAR-10",
                             "data_batch_1.bin .. data_batch_5.bin and test_batch.bin");
  return read_cifar_files(paths, 1, 0, 10);
}

std::shared_ptr<TensorDataset> load_cifar100(const std::string& root, bool train, bool fine) {
  const auto paths = resolve(root, "cifar-100-binary", {train ? "train.bin" : "test.bin"}, "CIFAR-100",
                             "train.bin and test.bin");
  return read_cifar_files(paths, 2, fine ? 1 : 0, fine ? 100 : 20);
}

}  // namespace resin::data
