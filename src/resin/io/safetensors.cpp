#include "resin/io/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <vector>

#include "resin/io/atomic_file.h"
#include "resin/io/json.h"

namespace resin::io {

// The data section is copied byte for byte; a big-endian host would need swaps.
static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

namespace {

constexpr const char* kMetadataKey = "__metadata__";

bool dtype_from_safetensors(const std::string& name, DType* out) {
  static const std::pair<const char*, DType> kTable[] = {
      {"F32", DType::f32}, {"F64", DType::f64}, {"BF16", DType::bf16}, {"F16", DType::f16},
      {"I64", DType::i64}, {"I32", DType::i32}, {"U8", DType::u8}};
  for (const auto& [n, t] : kTable)
    if (name == n) {
      *out = t;
      return true;
    }
  return false;
}

bool is_other_safetensors_dtype(const std::string& name) {
  static const char* kOthers[] = {"BOOL",    "I8",      "I16",     "U16",     "U32", "U64", "F8_E5M2",
                                  "F8_E4M3", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4",  "C64"};
  for (const char* n : kOthers)
    if (name == n) return true;
  return false;
}

std::string shape_text(const JsonValue& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.array.size(); ++i) {
    if (i) s += ", ";
    s += shape.array[i].kind == JsonValue::Kind::integer ? std::to_string(shape.array[i].integer) : "?";
  }
  return s + "]";
}

struct Entry {
  std::string name;
  DType dtype = DType::f32;
  Shape shape;
  uint64_t begin = 0, end = 0;
};

// Validates one header entry; `where` is "source: tensor 'name'".
Entry parse_entry(const std::string& name, const JsonValue& v, const std::string& where) {
  RESIN_CHECK(v.is_object(), where, ": expected an object with dtype, shape and data_offsets, got ",
              json_kind_name(v.kind));
  for (const auto& [k, _] : v.object)
    RESIN_CHECK(k == "dtype" || k == "shape" || k == "data_offsets", where, ": unexpected field ", json_quote(k),
                " (expected dtype, shape, data_offsets)");
  const JsonValue* dt = v.find("dtype");
  const JsonValue* shape = v.find("shape");
  const JsonValue* offs = v.find("data_offsets");
  RESIN_CHECK(dt && shape && offs, where, ": missing field ", !dt ? "dtype" : !shape ? "shape" : "data_offsets");
  RESIN_CHECK(dt->kind == JsonValue::Kind::string, where, ": dtype must be a string, got ", json_kind_name(dt->kind));
  Entry e;
  e.name = name;
  if (!dtype_from_safetensors(dt->string, &e.dtype)) {
    RESIN_CHECK(!is_other_safetensors_dtype(dt->string), where, ": dtype ", dt->string,
                " is not supported by resin (supported: F32 F64 BF16 F16 I64 I32 U8)");
    RESIN_FAIL(where, ": unknown dtype ", json_quote(dt->string),
               " (supported: F32 F64 BF16 F16 I64 I32 U8)");
  }
  RESIN_CHECK(shape->kind == JsonValue::Kind::array, where, ": shape must be an array, got ",
              json_kind_name(shape->kind));
  uint64_t numel = 1;
  bool overflow = false;
  for (const JsonValue& d : shape->array) {
    RESIN_CHECK(d.kind == JsonValue::Kind::integer, where, ": shape entries must be integers, got ",
                json_kind_name(d.kind));
    RESIN_CHECK(d.integer >= 0, where, ": negative dimension in shape ", shape_text(*shape));
    overflow |= __builtin_mul_overflow(numel, static_cast<uint64_t>(d.integer), &numel);
    e.shape.push_back(d.integer);
  }
  uint64_t nbytes = 0;
  overflow |= __builtin_mul_overflow(numel, static_cast<uint64_t>(dtype_size(e.dtype)), &nbytes);
  // numel must also fit an int64 (Shape::numel) even when a zero dimension makes the product 0.
  uint64_t check = 1;
  for (int64_t d : e.shape)
    if (d != 0) overflow |= __builtin_mul_overflow(check, static_cast<uint64_t>(d), &check);
  overflow |= check > static_cast<uint64_t>(INT64_MAX);
  RESIN_CHECK(!overflow, where, ": shape ", shape_text(*shape), " with dtype ", dt->string,
              " overflows 64-bit size arithmetic");
  RESIN_CHECK(offs->kind == JsonValue::Kind::array && offs->array.size() == 2, where,
              ": data_offsets must be an array [begin, end]");
  for (const JsonValue& o : offs->array) {
    RESIN_CHECK(o.kind == JsonValue::Kind::integer, where, ": data_offsets entries must be integers, got ",
                json_kind_name(o.kind));
    RESIN_CHECK(o.integer >= 0, where, ": negative data offset ", o.integer);
  }
  e.begin = static_cast<uint64_t>(offs->array[0].integer);
  e.end = static_cast<uint64_t>(offs->array[1].integer);
  RESIN_CHECK(e.begin <= e.end, where, ": data_offsets [", e.begin, ", ", e.end, "] end before they begin");
  RESIN_CHECK(e.end - e.begin == nbytes, where, ": shape ", shape_text(*shape), " with dtype ", dt->string,
              " needs ", nbytes, " bytes but data_offsets [", e.begin, ", ", e.end, "] span ", e.end - e.begin);
  return e;
}

}  // namespace

const char* safetensors_dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "F32";
    case DType::f64: return "F64";
    case DType::bf16: return "BF16";
    case DType::i64: return "I64";
    case DType::i32: return "I32";
    case DType::u8: return "U8";
    case DType::f16:
      return "F16";
  }
  return "?";
}

std::string serialize_safetensors(const std::map<std::string, Tensor>& tensors,
                                  const std::map<std::string, std::string>& metadata) {
  std::string header = "{";
  bool first = true;
  if (!metadata.empty()) {
    header += json_quote(kMetadataKey) + ":{";
    for (const auto& [k, v] : metadata) {
      if (!first) header += ",";
      first = false;
      header += json_quote(k) + ":" + json_quote(v);
    }
    header += "}";
    first = false;
  }
  std::vector<Tensor> dense;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    RESIN_CHECK(name != kMetadataKey, "save_safetensors: a tensor cannot be named ", kMetadataKey);
    RESIN_CHECK(t.defined(), "save_safetensors: tensor '", name, "' is undefined");
    // Device tensors (a model trained on a GPU) are written from a host copy.
    Tensor c = t.detach().to(Device::cpu()).contiguous();
    const uint64_t nbytes = static_cast<uint64_t>(c.numel()) * dtype_size(c.dtype());
    if (!first) header += ",";
    first = false;
    header += json_quote(name) + ":{\"dtype\":\"" + safetensors_dtype_name(c.dtype()) + "\",\"shape\":[";
    for (size_t i = 0; i < c.shape().size(); ++i) {
      if (i) header += ',';
      header += std::to_string(c.shape()[i]);
    }
    header += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + nbytes) + "]}";
    offset += nbytes;
    dense.push_back(c);
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');
  std::string out;
  out.reserve(8 + header.size() + offset);
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out += static_cast<char>((n >> (8 * i)) & 0xff);
  out += header;
  for (const Tensor& c : dense)
    if (c.numel() > 0)
      out.append(static_cast<const char*>(c.raw_data()), static_cast<size_t>(c.numel()) * dtype_size(c.dtype()));
  return out;
}

void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  atomic_write_file(path, serialize_safetensors(tensors, metadata));
}

SafetensorsFile parse_safetensors(const std::string& bytes, const std::string& source) {
  RESIN_CHECK(bytes.size() >= 8, source, ": not a safetensors file: ", bytes.size(),
              " bytes, too short for the 8-byte header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[static_cast<size_t>(i)]);
  RESIN_CHECK(n <= kMaxSafetensorsHeader, source, ": header length ", n, " exceeds the limit of ",
              kMaxSafetensorsHeader, " bytes (not a safetensors file?)");
  const uint64_t rest = bytes.size() - 8;
  RESIN_CHECK(n <= rest, source, ": header length ", n, " exceeds the ", rest,
              " bytes that follow it (truncated file?)");
  const std::string header = bytes.substr(8, static_cast<size_t>(n));
  RESIN_CHECK(!header.empty() && header[0] == '{', source, ": header does not start with '{'");
  const JsonValue root = parse_json(header, source + " (header)");
  RESIN_CHECK(root.is_object(), source, ": header is not a JSON object");

  SafetensorsFile out;
  std::vector<Entry> entries;
  for (const auto& [name, v] : root.object) {
    if (name == kMetadataKey) {
      RESIN_CHECK(v.is_object(), source, ": ", kMetadataKey, " must be an object of strings, got ",
                  json_kind_name(v.kind));
      for (const auto& [k, mv] : v.object) {
        RESIN_CHECK(mv.kind == JsonValue::Kind::string, source, ": ", kMetadataKey, " value for ", json_quote(k),
                    " must be a string, got ", json_kind_name(mv.kind));
        out.metadata[k] = mv.string;
      }
      continue;
    }
    entries.push_back(parse_entry(name, v, str_cat(source, ": tensor '", name, "'")));
  }
  // The spans, sorted, must tile [0, data size) exactly.
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  const uint64_t data_size = rest - n;
  uint64_t expected = 0;
  for (const Entry& e : entries) {
    RESIN_CHECK(e.begin >= expected, source, ": tensor '", e.name, "' at data_offsets [", e.begin, ", ", e.end,
                "] overlaps the previous tensor, which ends at ", expected);
    RESIN_CHECK(e.begin == expected, source, ": hole in the data section: bytes [", expected, ", ", e.begin,
                ") before tensor '", e.name, "' belong to no tensor");
    RESIN_CHECK(e.end <= data_size, source, ": tensor '", e.name, "' at data_offsets [", e.begin, ", ", e.end,
                "] runs past the end of the data section (", data_size, " bytes; truncated file?)");
    expected = e.end;
  }
  RESIN_CHECK(expected == data_size, source, ": the tensors cover ", expected, " bytes but the data section has ",
              data_size, " (trailing bytes after the last tensor)");

  const size_t data_start = 8 + static_cast<size_t>(n);
  for (const Entry& e : entries) {
    Tensor t = empty(e.shape, {.dtype = e.dtype});
    if (e.end > e.begin) std::memcpy(t.raw_data(), bytes.data() + data_start + e.begin, e.end - e.begin);
    out.tensors.emplace(e.name, std::move(t));
  }
  return out;
}

SafetensorsFile load_safetensors(const std::string& path) { return parse_safetensors(read_file(path), path); }

}  // namespace resin::io
