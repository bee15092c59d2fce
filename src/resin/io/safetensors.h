// The safetensors file format (https://github.com/huggingface/safetensors), read and written
// without the Python package:
//
//   [8 bytes: header length N, little-endian u64][N bytes: JSON header][data section]
//
// The header is a JSON object: {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [b, e]},
// ..., "__metadata__": {"key": "value"}}; offsets are relative to the start of the data section.
// resin reads and writes the dtypes F32 F64 BF16 I64 I32 U8 (the other safetensors dtypes are
// recognised and rejected by name). Tensors are stored contiguous (row-major), little-endian.
//
// Validation on load is as strict as the reference implementation, and stricter where it is
// cheap: header length <= kMaxSafetensorsHeader and within the file, header starts with '{' and
// is one valid JSON object (no duplicate keys, no trailing data except spaces), every entry has
// exactly dtype/shape/data_offsets, shape entries are non-negative, shape x dtype size (overflow
// checked) equals the byte span, the spans sorted by offset start at 0 and tile the data section
// with no gap and no overlap, and the data section ends exactly at the end of the file.
// __metadata__ must map strings to strings. Every violation throws resin::Error naming the source
// (file name) and the problem; nothing is read out of bounds.
#pragma once
#include <cstdint>
#include <map>
#include <string>

#include "resin/tensor/tensor.h"

namespace resin::io {

inline constexpr uint64_t kMaxSafetensorsHeader = 100'000'000;

struct SafetensorsFile {
  std::map<std::string, Tensor> tensors;  // contiguous CPU tensors, no autograd state
  std::map<std::string, std::string> metadata;
};

// Writes atomically (see atomic_file.h). Tensors are written contiguous little-endian; dtypes
// F32 F64 BF16 I64 I32 U8. Any layout is accepted; autograd state is ignored. The header is
// padded with spaces so the data section starts 8-byte aligned. A tensor may not be named
// "__metadata__".
void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});
std::string serialize_safetensors(const std::map<std::string, Tensor>& tensors,
                                  const std::map<std::string, std::string>& metadata = {});

SafetensorsFile load_safetensors(const std::string& path);
// `source_name` names the bytes in error messages.
SafetensorsFile parse_safetensors(const std::string& bytes, const std::string& source_name);

// safetensors dtype name <-> resin dtype ("F32" <-> f32, ...).
const char* safetensors_dtype_name(DType t);

}  // namespace resin::io
