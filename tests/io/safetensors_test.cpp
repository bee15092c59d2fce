#include "resin/io/safetensors.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>

#include "resin/io/atomic_file.h"
#include "resin/ops/ops.h"
#include "temp_dir.h"

namespace resin::io {
namespace {

using resin::testing::TempDir;

std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  return s;
}

// A file with the given header text and data bytes (header length computed).
std::string file_with(const std::string& header, const std::string& data) {
  return le64(header.size()) + header + data;
}

std::map<std::string, Tensor> all_dtypes() {
  std::map<std::string, Tensor> t;
  t["f32"] = from_vector({1.5, -2.25, 3e30, -0.0, 1e-40, 7}, {2, 3}, {.dtype = DType::f32});
  t["f64"] = from_vector({3.141592653589793, -1e-300, 1e300}, {3}, {.dtype = DType::f64});
  t["bf16"] = from_vector({1.0, -2.5, 65280.0, 0.0078125}, {2, 2}, {.dtype = DType::bf16});
  t["i64"] = from_data<int64_t>({INT64_MIN, -1, 0, INT64_MAX}, {4, 1});
  t["i32"] = from_data<int32_t>({INT32_MIN, 42, INT32_MAX}, {3});
  t["u8"] = from_data<uint8_t>({0, 1, 127, 128, 255}, {5});
  t["scalar"] = from_vector({2.5}, Shape{}, {.dtype = DType::f64});
  t["empty"] = empty(Shape{0, 3}, {.dtype = DType::f32});
  return t;
}

void expect_same(const Tensor& a, const Tensor& b, const std::string& name) {
  ASSERT_EQ(a.dtype(), b.dtype()) << name;
  ASSERT_EQ(a.shape(), b.shape()) << name;
  ASSERT_TRUE(b.is_contiguous()) << name;
  const size_t n = static_cast<size_t>(a.numel()) * dtype_size(a.dtype());
  Tensor ac = a.contiguous();
  if (n) {
    EXPECT_EQ(std::memcmp(ac.raw_data(), b.raw_data(), n), 0) << name << ": bytes differ";
  }
}

TEST(Safetensors, RoundTripAllDtypes) {
  TempDir dir;
  const auto tensors = all_dtypes();
  const std::map<std::string, std::string> meta{{"format", "pt"}, {"note", "quote \" and \\ and \n ok"}};
  save_safetensors(dir.file("all.safetensors"), tensors, meta);
  const SafetensorsFile f = load_safetensors(dir.file("all.safetensors"));
  EXPECT_EQ(f.metadata, meta);
  ASSERT_EQ(f.tensors.size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    ASSERT_TRUE(f.tensors.count(name)) << name;
    expect_same(t, f.tensors.at(name), name);
  }
  EXPECT_EQ(f.tensors.at("i64").values<int64_t>()[0], INT64_MIN);
  EXPECT_EQ(f.tensors.at("f64").to_vector()[1], -1e-300);
}

TEST(Safetensors, HeaderPaddedToEightBytes) {
  const std::string bytes = serialize_safetensors({{"x", ones({3}, {.dtype = DType::u8})}});
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[static_cast<size_t>(i)]);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(bytes.size(), 8 + n + 3);
  EXPECT_EQ(bytes.substr(8, n).find("{\"x\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]}}"), 0u);
}

TEST(Safetensors, NonContiguousTensorsAreWrittenInLogicalOrder) {
  Tensor base = arange(0, 24, 1, {.dtype = DType::f64}).reshape({2, 3, 4});
  Tensor t = base.permute({2, 0, 1}).narrow(0, 1, 2);  // [2, 2, 3], strided, offset 1
  Tensor cl = arange(0, 2 * 3 * 4 * 5, 1, {.dtype = DType::f32})
                  .reshape({2, 3, 4, 5})
                  .contiguous(MemoryFormat::channels_last);
  const SafetensorsFile f = parse_safetensors(serialize_safetensors({{"t", t}, {"cl", cl}}), "mem");
  EXPECT_EQ(f.tensors.at("t").to_vector(), t.to_vector());
  EXPECT_EQ(f.tensors.at("cl").to_vector(), cl.to_vector());
}

TEST(Safetensors, GradientStateIsIgnored) {
  Tensor x = from_vector({1, 2}, {2}, {.dtype = DType::f64});
  x.set_requires_grad(true);
  Tensor y = mul(x, 2.0);
  const SafetensorsFile f = parse_safetensors(serialize_safetensors({{"y", y}}), "mem");
  EXPECT_FALSE(f.tensors.at("y").requires_grad());
  EXPECT_EQ(f.tensors.at("y").to_vector(), (std::vector<double>{2, 4}));
}

TEST(Safetensors, EmptyFileHasNoTensors) {
  const SafetensorsFile f = parse_safetensors(serialize_safetensors({}), "mem");
  EXPECT_TRUE(f.tensors.empty());
  EXPECT_TRUE(f.metadata.empty());
}

TEST(Safetensors, RejectsReservedName) {
  EXPECT_THROW(serialize_safetensors({{"__metadata__", ones({1})}}), Error);
}

TEST(Safetensors, AcceptsZeroSizedTensorsSharingAnOffset) {
  const std::string h =
      R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
      R"("c":{"dtype":"I64","shape":[3,0],"data_offsets":[2,2]}})";
  const SafetensorsFile f = parse_safetensors(file_with(h, "\x01\x02"), "mem");
  EXPECT_EQ(f.tensors.at("b").values<uint8_t>(), (std::vector<uint8_t>{1, 2}));
  EXPECT_EQ(f.tensors.at("c").shape(), (Shape{3, 0}));
}

struct Hostile {
  const char* what;
  std::string bytes;
  const char* expected;  // substring of the error message
};

std::vector<Hostile> hostile_files() {
  const std::string ok_entry = R"("x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const std::string data8(8, '\0');
  const std::string valid = file_with("{" + ok_entry + "}", data8);
  auto one = [&](const std::string& entry, const std::string& data) { return file_with("{" + entry + "}", data); };
  return {
      {"empty file", "", "too short"},
      {"five bytes", "abcde", "too short"},
      {"header length 2^63", le64(1ull << 63) + "{}", "exceeds the limit"},
      {"header length just over the limit", le64(kMaxSafetensorsHeader + 1) + "{}", "exceeds the limit"},
      {"header longer than file", le64(100) + "{\"a\":1}", "exceeds the 7 bytes that follow"},
      {"truncated in the header", valid.substr(0, 30), "bytes that follow it (truncated file?)"},
      {"truncated in the data", valid.substr(0, valid.size() - 1), "runs past the end of the data section"},
      {"trailing bytes", valid + "zz", "trailing bytes"},
      {"header not an object", file_with("[1, 2]", ""), "does not start with '{'"},
      {"header empty", le64(0), "does not start with '{'"},
      {"bad json: unterminated", file_with("{\"x\": {", ""), "invalid JSON"},
      {"bad json: trailing garbage", file_with("{} }", ""), "trailing data"},
      {"bad json: duplicate key", file_with("{" + ok_entry + "," + ok_entry + "}", data8),
       "duplicate key \"x\""},
      {"bad json: float in shape", one(R"("x":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]})", data8),
       "shape entries must be integers, got number"},
      {"bad json: invalid utf-8 name", file_with("{\"\xff\":1}", ""), "UTF-8"},
      {"bad json: deep nesting",
       file_with("{\"x\":" + std::string(500, '[') + std::string(500, ']') + "}", ""), "nesting deeper"},
      {"bad json: NUL padding", file_with("{" + ok_entry + "}" + std::string(3, '\0'), data8),
       "trailing data"},
      {"unknown dtype", one(R"("x":{"dtype":"F31","shape":[2],"data_offsets":[0,8]})", data8),
       "unknown dtype \"F31\""},
      {"unsupported dtype", one(R"("x":{"dtype":"I16","shape":[4],"data_offsets":[0,8]})", data8),
       "dtype I16 is not supported"},
      {"dtype not a string", one(R"("x":{"dtype":4,"shape":[2],"data_offsets":[0,8]})", data8),
       "dtype must be a string"},
      {"entry not an object", file_with(R"({"x":[1,2]})", ""), "expected an object"},
      {"missing shape", one(R"("x":{"dtype":"F32","data_offsets":[0,8]})", data8), "missing field shape"},
      {"extra field", one(R"("x":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"q":1})", data8),
       "unexpected field \"q\""},
      {"shape not an array", one(R"("x":{"dtype":"F32","shape":2,"data_offsets":[0,8]})", data8),
       "shape must be an array"},
      {"negative shape", one(R"("x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]})", data8),
       "negative dimension"},
      {"string in shape", one(R"("x":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]})", data8),
       "shape entries must be integers"},
      {"three offsets", one(R"("x":{"dtype":"F32","shape":[2],"data_offsets":[0,4,8]})", data8),
       "data_offsets must be an array [begin, end]"},
      {"negative offset", one(R"("x":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]})", data8),
       "negative data offset"},
      {"reversed offsets", one(R"("x":{"dtype":"U8","shape":[0],"data_offsets":[8,0]})", data8),
       "end before"},
      {"size mismatch",
       one(R"("x":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]})", std::string(20, 'a')),
       "needs 24 bytes but data_offsets [0, 20] span 20"},
      {"dtype size mismatch", one(R"("x":{"dtype":"F64","shape":[2],"data_offsets":[0,8]})", data8),
       "needs 16 bytes"},
      {"overlapping offsets",
       file_with(
           R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
           std::string(12, 'a')),
       "overlaps the previous tensor"},
      {"hole between tensors",
       file_with(
           R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})",
           std::string(20, 'a')),
       "hole in the data section: bytes [8, 12)"},
      {"first tensor not at 0",
       one(R"("x":{"dtype":"F32","shape":[2],"data_offsets":[4,12]})", std::string(12, 'a')),
       "hole in the data section: bytes [0, 4)"},
      {"offsets past the end", one(R"("x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]})", data8),
       "runs past the end of the data section"},
      {"huge offsets",
       one(R"("x":{"dtype":"U8","shape":[1],"data_offsets":[9223372036854775806,9223372036854775807]})",
           data8),
       "hole in the data section"},
      {"shape overflows",
       one(R"("x":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]})", data8),
       "overflows 64-bit size arithmetic"},
      {"shape x dtype overflows",
       one(R"("x":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,8]})", data8),
       "overflows 64-bit size arithmetic"},
      {"zero dim hides overflow",
       one(R"("x":{"dtype":"F32","shape":[4611686018427387904,4,0],"data_offsets":[0,0]})", ""),
       "overflows 64-bit size arithmetic"},
      {"metadata not an object", file_with(R"({"__metadata__":[1]})", ""), "must be an object of strings"},
      {"metadata value not a string", file_with(R"({"__metadata__":{"epoch":3}})", ""), "must be a string"},
  };
}

TEST(Safetensors, HostileFilesGiveClearErrors) {
  TempDir dir;
  int i = 0;
  for (const Hostile& h : hostile_files()) {
    const std::string path = dir.file("hostile" + std::to_string(i++) + ".safetensors");
    atomic_write_file(path, h.bytes);
    try {
      load_safetensors(path);
      ADD_FAILURE() << h.what << ": accepted";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(path), std::string::npos) << h.what << ": error does not name the file: " << msg;
      EXPECT_NE(msg.find(h.expected), std::string::npos) << h.what << ": expected '" << h.expected << "' in: " << msg;
    }
  }
}

// Every truncation and every single-byte corruption of a valid file is either rejected with a
// resin::Error or parses to tensors of the declared size; nothing crashes (run under ASan too).
TEST(Safetensors, TruncationsAndByteFlipsNeverCrash) {
  const std::string valid = serialize_safetensors(all_dtypes(), {{"k", "v"}});
  for (size_t n = 0; n < valid.size(); ++n) EXPECT_THROW(parse_safetensors(valid.substr(0, n), "cut"), Error) << n;
  int accepted = 0;
  for (size_t i = 0; i < valid.size(); ++i)
    for (unsigned char x : {0x01, 0x20, 0x80, 0xff}) {
      std::string b = valid;
      b[i] = static_cast<char>(static_cast<unsigned char>(b[i]) ^ x);
      try {
        const SafetensorsFile f = parse_safetensors(b, "flip");
        for (const auto& [_, t] : f.tensors) EXPECT_GE(t.numel(), 0);
        ++accepted;
      } catch (const Error&) {
      }
    }
  EXPECT_GT(accepted, 0);  // flips in the data section are legal files
}

// ---- compatibility with the format as Python writes and reads it (json + struct only; no
// safetensors or torch package needed).
int run_python(const std::string& script_path, const std::string& arg) {
  const std::string cmd = "/usr/bin/python3 '" + script_path + "' '" + arg + "' 2>&1";
  return std::system(cmd.c_str());
}

TEST(SafetensorsPython, PythonWritesResinReads) {
  TempDir dir;
  const std::string script = dir.file("w.py"), out = dir.file("py.safetensors");
  atomic_write_file(script, R"PY(
import json, struct, sys
tensors = [
    ("weight", "F32", [2, 3], struct.pack("<6f", 1.0, -2.0, 0.5, 3.25, -0.125, 100.0)),
    ("bias", "F64", [3], struct.pack("<3d", 0.1, -1e-300, 2.5)),
    ("labels", "I64", [4], struct.pack("<4q", 0, -1, 7, 2**62)),
    ("count", "I32", [], struct.pack("<i", -12345)),
    ("image", "U8", [2, 2], bytes([0, 255, 17, 128])),
    ("half", "BF16", [2], struct.pack("<2H", 0x3f80, 0xc020)),
    ("f16", "F16", [4], struct.pack("<4e", 1.0, -2.5, 65504.0, 2.0 ** -24)),
]
header, data = {"__metadata__": {"framework": "python", "epoch": "3"}}, b""
for name, dtype, shape, raw in tensors:
    header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
    data += raw
h = json.dumps(header).encode()
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + data)
)PY");
  ASSERT_EQ(run_python(script, out), 0) << "/usr/bin/python3 failed to write " << out;
  const SafetensorsFile f = load_safetensors(out);
  EXPECT_EQ(f.metadata, (std::map<std::string, std::string>{{"framework", "python"}, {"epoch", "3"}}));
  EXPECT_EQ(f.tensors.at("weight").shape(), (Shape{2, 3}));
  EXPECT_EQ(f.tensors.at("weight").to_vector(), (std::vector<double>{1.0, -2.0, 0.5, 3.25, -0.125, 100.0}));
  EXPECT_EQ(f.tensors.at("bias").to_vector(), (std::vector<double>{0.1, -1e-300, 2.5}));
  EXPECT_EQ(f.tensors.at("labels").values<int64_t>(), (std::vector<int64_t>{0, -1, 7, int64_t{1} << 62}));
  EXPECT_EQ(f.tensors.at("count").shape(), Shape{});
  EXPECT_EQ(f.tensors.at("count").values<int32_t>(), (std::vector<int32_t>{-12345}));
  EXPECT_EQ(f.tensors.at("image").values<uint8_t>(), (std::vector<uint8_t>{0, 255, 17, 128}));
  EXPECT_EQ(f.tensors.at("half").to_vector(), (std::vector<double>{1.0, -2.5}));
  EXPECT_EQ(f.tensors.at("f16").dtype(), DType::f16);
  EXPECT_EQ(f.tensors.at("f16").to_vector(), (std::vector<double>{1.0, -2.5, 65504.0, std::ldexp(1.0, -24)}));
}

TEST(SafetensorsPython, ResinWritesPythonReads) {
  TempDir dir;
  const std::string script = dir.file("r.py"), in = dir.file("resin.safetensors");
  save_safetensors(in, all_dtypes(), {{"written_by", "resin"}});
  atomic_write_file(script, R"PY(
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
assert n % 8 == 0, n
header = json.loads(raw[8:8 + n])
data = raw[8 + n:]
assert header.pop("__metadata__") == {"written_by": "resin"}
fmt = {"F32": "f", "F64": "d", "I64": "q", "I32": "i", "U8": "B", "BF16": "H"}
def values(name):
    e = header[name]
    b, end = e["data_offsets"]
    count = 1
    for d in e["shape"]:
        count *= d
    return e["shape"], list(struct.unpack("<%d%s" % (count, fmt[e["dtype"]]), data[b:end]))
assert sorted(header) == ["bf16", "empty", "f32", "f64", "i32", "i64", "scalar", "u8"], sorted(header)
assert header["f32"]["dtype"] == "F32"
shape, v = values("f32")
assert shape == [2, 3] and v[:4] == [1.5, -2.25, struct.unpack("<f", struct.pack("<f", 3e30))[0], -0.0], v
assert values("f64") == ([3], [3.141592653589793, -1e-300, 1e300])
assert values("i64") == ([4, 1], [-2**63, -1, 0, 2**63 - 1])
assert values("i32") == ([3], [-2**31, 42, 2**31 - 1])
assert values("u8") == ([5], [0, 1, 127, 128, 255])
assert values("bf16") == ([2, 2], [0x3f80, 0xc020, 0x477f, 0x3c00]), values("bf16")
assert values("scalar") == ([], [2.5])
assert values("empty") == ([0, 3], [])
ends = sorted(tuple(e["data_offsets"]) for e in header.values())
assert ends[-1][1] == len(data)
print("python read OK")
)PY");
  EXPECT_EQ(run_python(script, in), 0) << "/usr/bin/python3 rejected the file resin wrote";
}

}  // namespace
}  // namespace resin::io
