#include "resin/data/idx.h"

#include <cstring>

#include "resin/data/io.h"

namespace resin::data {

namespace {

constexpr uint32_t kImagesMagic = 0x00000803;
constexpr uint32_t kLabelsMagic = 0x00000801;

uint32_t read_be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

// The dims and payload start of a u8 IDX array with `ndims` dims; validates size exactly.
struct IdxHeader {
  std::vector<int64_t> dims;
  size_t data_offset = 0;
};

IdxHeader parse_header(const std::vector<uint8_t>& bytes, uint32_t expected_magic, const std::string& path) {
  const char* kind = expected_magic == kImagesMagic ? "images" : "labels";
  RESIN_CHECK(bytes.size() >= 4, "IDX ", kind, " file ", path, " is too short (", bytes.size(),
              " bytes) to hold the 4-byte magic number");
  const uint32_t magic = read_be32(bytes.data());
  if (magic != expected_magic) {
    std::string hint;
    if (magic == kImagesMagic || magic == kLabelsMagic) {
      hint = "; this is an IDX " + std::string(magic == kImagesMagic ? "images" : "labels") +
             " file: were the images and labels files swapped?";
    } else if ((magic >> 16) == 0 && ((magic >> 8) & 0xff) != 0x08) {
      hint = "; only unsigned-byte IDX data (type 0x08) is supported";
    } else {
      hint = "; this is not an IDX file (or it is damaged)";
    }
    RESIN_FAIL("IDX ", kind, " file ", path, ": bad magic number ", hex32(magic), ", expected ",
               hex32(expected_magic), hint);
  }
  const size_t ndims = magic & 0xff;
  const size_t header = 4 + 4 * ndims;
  RESIN_CHECK(bytes.size() >= header, "IDX ", kind, " file ", path, " is truncated: ", bytes.size(),
              " bytes cannot hold the ", header, "-byte header");
  IdxHeader h;
  h.data_offset = header;
  // The size of one example (dims 1..) must fit int64 even when there are 0 examples: the tensor
  // [0, rows, cols] still has strides rows*cols and cols.
  uint64_t per_example = 1, count = 0;
  for (size_t d = 0; d < ndims; ++d) {
    const uint32_t v = read_be32(bytes.data() + 4 + 4 * d);
    RESIN_CHECK(d == 0 || v > 0, "IDX ", kind, " file ", path, ": dimension ", d, " is 0");
    RESIN_CHECK(d == 0 || (!__builtin_mul_overflow(per_example, uint64_t{v}, &per_example) &&
                           per_example <= uint64_t{INT64_MAX}),
                "IDX ", kind, " file ", path, ": the dimensions overflow 64 bits (corrupt header)");
    h.dims.push_back(v);
  }
  RESIN_CHECK(ndims > 0 && !__builtin_mul_overflow(uint64_t(h.dims[0]), per_example, &count), "IDX ", kind, " file ",
              path, ": the dimensions overflow 64 bits (corrupt header)");
  const uint64_t payload = bytes.size() - header;
  if (payload != count) {
    std::string dims;
    for (auto v : h.dims) dims += (dims.empty() ? "" : " x ") + std::to_string(v);
    RESIN_FAIL("IDX ", kind, " file ", path, ": header dims ", dims, " need ", count, " data bytes but the ",
               "file has ", payload,
               payload < count ? " (truncated file)" : " (trailing bytes; corrupt file)");
  }
  return h;
}

std::string fashion_hint(std::string root) {
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  if (root == kFashionMnistRoot) {
    return "; install Debian package dataset-fashion-mnist: sudo apt-get install dataset-fashion-mnist";
  }
  return std::string("; the Debian package dataset-fashion-mnist installs these files in ") +
         kFashionMnistRoot;
}

// root/stem.gz if present, else root/stem; throws listing both names when neither exists.
std::string find_idx_file(const std::string& root, const std::string& stem, const std::string& dataset,
                          const std::string& hint) {
  const std::string base = root + "/" + stem;
  if (file_exists(base + ".gz")) return base + ".gz";
  if (file_exists(base)) return base;
  RESIN_FAIL(dataset, ": missing file ", base, ".gz (or uncompressed ", stem, ") in ", root,
             dir_exists(root) ? "" : " (the directory does not exist)", "; expected ",
             "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and ",
             "t10k-labels-idx1-ubyte (each optionally .gz)", hint);
}

std::shared_ptr<TensorDataset> load_idx_pair(const std::string& root, bool train, const std::string& dataset,
                                             const std::string& hint) {
  const std::string split = train ? "train" : "t10k";
  const std::string images = find_idx_file(root, split + "-images-idx3-ubyte", dataset, hint);
  const std::string labels = find_idx_file(root, split + "-labels-idx1-ubyte", dataset, hint);
  return load_idx_dataset(images, labels, 10);
}

}  // namespace

Tensor read_idx_images(const std::string& path) { return parse_idx_images(read_file_maybe_gz(path), path); }

Tensor read_idx_labels(const std::string& path, int64_t num_classes) {
  return parse_idx_labels(read_file_maybe_gz(path), path, num_classes);
}

Tensor parse_idx_images(const std::vector<uint8_t>& bytes, const std::string& path) {
  const IdxHeader h = parse_header(bytes, kImagesMagic, path);
  Tensor t = empty({h.dims[0], 1, h.dims[1], h.dims[2]}, {.dtype = DType::u8});
  if (t.numel() > 0)
    std::memcpy(t.data<uint8_t>(), bytes.data() + h.data_offset, static_cast<size_t>(t.numel()));
  return t;
}

Tensor parse_idx_labels(const std::vector<uint8_t>& bytes, const std::string& path, int64_t num_classes) {
  const IdxHeader h = parse_header(bytes, kLabelsMagic, path);
  Tensor t = empty({h.dims[0]}, {.dtype = DType::i64});
  int64_t* out = t.data<int64_t>();
  const uint8_t* in = bytes.data() + h.data_offset;
  for (int64_t i = 0; i < h.dims[0]; ++i) {
    RESIN_CHECK(num_classes <= 0 || in[i] < num_classes, "IDX labels file ", path, ": label ", int{in[i]},
                " of example ", i, " is out of range [0, ", num_classes, ") (corrupt or wrong file)");
    out[i] = in[i];
  }
  return t;
}

std::shared_ptr<TensorDataset> load_idx_dataset(const std::string& images_path,
                                                const std::string& labels_path, int64_t num_classes) {
  Tensor images = read_idx_images(images_path);
  Tensor labels = read_idx_labels(labels_path, num_classes);
  RESIN_CHECK(images.size(0) == labels.size(0), "IDX: ", images_path, " has ", images.size(0), " images but ",
              labels_path, " has ", labels.size(0), " labels; the files do not belong together");
  return std::make_shared<TensorDataset>(images, labels, num_classes);
}

std::shared_ptr<TensorDataset> load_fashion_mnist(const std::string& root, bool train) {
  return load_idx_pair(root, train, "Fashion-MNIST", fashion_hint(root));
}

std::shared_ptr<TensorDataset> load_mnist(const std::string& root, bool train) {
  return load_idx_pair(root, train, "MNIST", "");
}

}  // namespace resin::data
