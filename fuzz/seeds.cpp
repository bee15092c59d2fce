// The seed corpora: small valid inputs for every target, made with resin's own writers so they
// follow the formats exactly. fuzz/corpus/ holds their output (regenerate with
// scripts/fuzz.sh --seeds); libFuzzer grows its working corpus from them.
#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <vector>

#include "resin/core/error.h"
#include "resin/io/atomic_file.h"
#include "resin/io/safetensors.h"
#include "resin/train/checkpoint.h"
#include "resin/train/metrics.h"
#include "resin/train/trainer.h"
#include "targets.h"

namespace resin::fuzz {
namespace {

using Bytes = std::vector<uint8_t>;

Bytes gzip(const Bytes& in) {
  z_stream zs{};
  RESIN_CHECK(deflateInit2(&zs, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK, "deflateInit2 failed");
  Bytes out(deflateBound(&zs, static_cast<uLong>(in.size())) + 32);
  zs.next_in = const_cast<Bytef*>(in.data());
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  RESIN_CHECK(rc == Z_STREAM_END, "deflate failed");
  return out;
}

Bytes idx(uint32_t magic, const std::vector<uint32_t>& dims, size_t payload_seed) {
  Bytes v;
  auto be32 = [&](uint32_t x) {
    for (int s = 24; s >= 0; s -= 8) v.push_back(static_cast<uint8_t>(x >> s));
  };
  be32(magic);
  uint64_t n = 1;
  for (uint32_t d : dims) {
    be32(d);
    n *= d;
  }
  for (uint64_t i = 0; i < n; ++i) v.push_back(static_cast<uint8_t>((i * 7 + payload_seed) % 10));
  return v;
}

Bytes cifar_records(int label_bytes, int n) {
  Bytes v;
  for (int r = 0; r < n; ++r) {
    for (int l = 0; l < label_bytes; ++l) v.push_back(static_cast<uint8_t>(r + l));
    for (int i = 0; i < 3072; ++i) v.push_back(static_cast<uint8_t>((i * 31 + r) & 0xff));
  }
  return v;
}

Bytes with_mode(uint8_t mode, const Bytes& rest) {
  Bytes v(rest.size() + 1);
  v[0] = mode;
  std::copy(rest.begin(), rest.end(), v.begin() + 1);
  return v;
}

Bytes text(const std::string& s) { return Bytes(s.begin(), s.end()); }

void put(const std::filesystem::path& dir, const std::string& name, const Bytes& b) {
  std::filesystem::create_directories(dir);
  io::atomic_write_file((dir / name).string(), std::string(b.begin(), b.end()));
}

Bytes checkpoint_bytes(TrainingSetup& s, int64_t step) {
  train::CheckpointInfo info{"mlp:width=8,depth=3", 1, 4, 0, step, 0, 12.5, default_generator().state(), "{}"};
  auto state = s.opt->state_dict();
  for (auto& [k, v] : s.sched->state_dict()) state["scheduler." + k] = v;
  return text(train::serialize_checkpoint(info, *s.model, state));
}

}  // namespace

void write_seed_corpora(const std::string& root) {
  const std::filesystem::path dir(root);

  const Tensor f32 = from_data<float>({1.5f, -2.0f, 0.0f, 3.25f, 1e-3f, -7.0f}, {2, 3});
  put(dir / "safetensors", "dtypes", text(io::serialize_safetensors(
                                         {{"a.f32", f32},
                                          {"b.f64", from_data<double>({1.0, -0.5}, {2})},
                                          {"c.i64", from_data<int64_t>({-1, 7}, {2})},
                                          {"d.i32", from_data<int32_t>({1, 2, 3}, {3})},
                                          {"e.u8", from_data<uint8_t>({0, 255, 9, 4}, {2, 2})},
                                          {"f.bf16", f32.to(DType::bf16)}},
                                         {{"format", "pt"}})));
  put(dir / "safetensors", "empty", text(io::serialize_safetensors({})));
  put(dir / "safetensors", "zero_size",
      text(io::serialize_safetensors({{"z", empty({0, 3})}, {"s", from_data<float>({2.0f}, {})}})));

  train::TrainConfig config;
  put(dir / "json", "config", text(train::to_json(config)));
  const train::JsonRecord record{
      {"kind", std::string("train")}, {"step", int64_t{50}}, {"loss", 0.25}, {"lr", 1e-3}};
  put(dir / "json", "metrics", text(train::to_json(record)));
  put(dir / "json", "escapes",
      text(R"({"a":[1,-2,3.5e-3,1E+2,true,false,null],"s":"\u00e9\ud83d\ude00\n\t\"\\/","o":{"":{}},"z":-0.0})"));

  put(dir / "idx", "images", with_mode(1, idx(0x00000803, {2, 3, 4}, 1)));
  put(dir / "idx", "labels", with_mode(2, idx(0x00000801, {5}, 2)));
  put(dir / "idx", "images_gz", with_mode(1 | 4, gzip(idx(0x00000803, {3, 2, 2}, 3))));
  put(dir / "idx", "labels_gz", with_mode(2 | 4, gzip(idx(0x00000801, {4}, 4))));

  put(dir / "cifar", "cifar10", with_mode(0, cifar_records(1, 2)));
  put(dir / "cifar", "cifar100_gz", with_mode(1 | 2 | 4, gzip(cifar_records(2, 2))));

  TrainingSetup fresh = make_training_setup();
  put(dir / "checkpoint", "fresh", checkpoint_bytes(fresh, 0));
  TrainingSetup trained = make_training_setup();
  train_step(trained);
  put(dir / "checkpoint", "trained", checkpoint_bytes(trained, 1));

  auto argv = [](const std::vector<std::string>& args) {
    Bytes v;
    for (size_t i = 0; i < args.size(); ++i) {
      if (i) v.push_back(0);
      v.insert(v.end(), args[i].begin(), args[i].end());
    }
    return v;
  };
  put(dir / "cli", "options", argv({"--model", "resnet20", "--epochs", "3", "--out", "/tmp/run"}));
  put(dir / "cli", "inline", argv({"--lr=1e-3", "--milestones", "1,2,3", "--resume", "--out=o", "--seed", "7"}));
  put(dir / "cli", "help", argv({"--help"}));
}

}  // namespace resin::fuzz
