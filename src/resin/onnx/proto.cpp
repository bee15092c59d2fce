// onnx.proto ↔ resin::onnx::Graph. Everything read from a file is validated here (types, dims,
// data sizes, names, order) so that the interpreter can trust the graph's structure; the values
// themselves (shapes of activations, indices) are checked by each op when it runs.
#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <set>
#include <unordered_set>

#include "resin/onnx/graph.h"

namespace resin::onnx {

namespace {

namespace pb = ::onnx;

// ONNX TensorProto.DataType codes resin can hold.
DType dtype_from_onnx(int32_t t, const std::string& what) {
  switch (t) {
    case pb::TensorProto::FLOAT: return DType::f32;
    case pb::TensorProto::DOUBLE: return DType::f64;
    case pb::TensorProto::INT64: return DType::i64;
    case pb::TensorProto::INT32: return DType::i32;
    case pb::TensorProto::UINT8:
    case pb::TensorProto::BOOL: return DType::u8;
    case pb::TensorProto::BFLOAT16: return DType::bf16;
    case pb::TensorProto::FLOAT16:
      return DType::f16;
    default: break;
  }
  const std::string name = pb::TensorProto::DataType_IsValid(t)
                               ? pb::TensorProto::DataType_Name(static_cast<pb::TensorProto::DataType>(t))
                               : std::to_string(t);
  RESIN_FAIL(what, ": element type ", name,
             " is not supported (resin holds FLOAT, DOUBLE, INT64, INT32, UINT8, BOOL, BFLOAT16, FLOAT16)");
}

int32_t dtype_to_onnx(DType t) {
  switch (t) {
    case DType::f32: return pb::TensorProto::FLOAT;
    case DType::f64: return pb::TensorProto::DOUBLE;
    case DType::i64: return pb::TensorProto::INT64;
    case DType::i32: return pb::TensorProto::INT32;
    case DType::u8: return pb::TensorProto::UINT8;
    case DType::bf16: return pb::TensorProto::BFLOAT16;
    case DType::f16:
      return pb::TensorProto::FLOAT16;
  }
  return pb::TensorProto::UNDEFINED;
}

Tensor tensor_from_proto(const pb::TensorProto& p, const std::string& what) {
  RESIN_CHECK(p.data_location() != pb::TensorProto::EXTERNAL && p.external_data_size() == 0, what,
              ": tensor data stored in an external file is not supported");
  RESIN_CHECK(!p.has_segment(), what, ": segmented tensors are not supported");
  const DType dt = dtype_from_onnx(p.data_type(), what);
  std::vector<int64_t> dims;
  int64_t numel = 1;
  for (int64_t d : p.dims()) {
    RESIN_CHECK(d >= 0, what, ": negative dim ", d);
    RESIN_CHECK(!__builtin_mul_overflow(numel, d, &numel), what, ": element count overflows");
    dims.push_back(d);
  }
  const size_t esize = dtype_size(dt);
  size_t bytes = 0;
  RESIN_CHECK(!__builtin_mul_overflow(static_cast<size_t>(numel), esize, &bytes), what, ": size overflows");
  // Every element must be in the file, and is counted before anything is allocated, so
  // allocations are bounded by the input's size.
  if (p.has_raw_data()) {
    RESIN_CHECK(p.raw_data().size() == bytes, what, ": raw data holds ", p.raw_data().size(), " bytes, shape [",
                Shape(dims).str(), "] of ", dtype_name(dt), " needs ", bytes);
  } else {
    int64_t have = p.int32_data_size();  // INT32, BFLOAT16 and FLOAT16 (16 bits per int32), UINT8, BOOL
    if (p.data_type() == pb::TensorProto::FLOAT) have = p.float_data_size();
    if (p.data_type() == pb::TensorProto::DOUBLE) have = p.double_data_size();
    if (p.data_type() == pb::TensorProto::INT64) have = p.int64_data_size();
    RESIN_CHECK(have == numel, what, ": ", have, " values stored for shape [", Shape(dims).str(), "] (", numel,
                " elements)");
  }
  Tensor t = empty(Shape(dims), {.dtype = dt});
  if (p.has_raw_data()) {
    if (bytes) std::memcpy(t.raw_data(), p.raw_data().data(), bytes);  // ONNX raw data is little-endian, as the host
    return t;
  }
  switch (p.data_type()) {
    case pb::TensorProto::FLOAT:
      std::copy(p.float_data().begin(), p.float_data().end(), t.data<float>());
      break;
    case pb::TensorProto::DOUBLE:
      std::copy(p.double_data().begin(), p.double_data().end(), t.data<double>());
      break;
    case pb::TensorProto::INT64:
      std::copy(p.int64_data().begin(), p.int64_data().end(), t.data<int64_t>());
      break;
    case pb::TensorProto::INT32:
      std::copy(p.int32_data().begin(), p.int32_data().end(), t.data<int32_t>());
      break;
    case pb::TensorProto::BFLOAT16:
    case pb::TensorProto::FLOAT16: {  // the 16 bits of each value, one per int32 (BFloat16 and Float16 alike)
      auto* out = static_cast<uint16_t*>(t.raw_data());
      for (int64_t i = 0; i < numel; ++i) out[i] = static_cast<uint16_t>(p.int32_data(static_cast<int>(i)));
      break;
    }
    default: {  // UINT8, BOOL: one value per int32
      auto* out = t.data<uint8_t>();
      for (int64_t i = 0; i < numel; ++i) out[i] = static_cast<uint8_t>(p.int32_data(static_cast<int>(i)));
    }
  }
  return t;
}

void tensor_to_proto(const Tensor& t, const std::string& name, pb::TensorProto& p) {
  p.set_name(name);
  p.set_data_type(dtype_to_onnx(t.dtype()));
  for (int64_t d : t.shape()) p.add_dims(d);
  const Tensor c = t.contiguous();
  p.set_raw_data(static_cast<const char*>(c.raw_data()), static_cast<size_t>(c.numel()) * dtype_size(c.dtype()));
}

nn::OnnxAttr attr_from_proto(const pb::AttributeProto& a, const std::string& what) {
  const std::string w = what + ", attribute '" + a.name() + "'";
  switch (a.type()) {
    case pb::AttributeProto::FLOAT: return {a.name(), static_cast<double>(a.f())};
    case pb::AttributeProto::INT: return {a.name(), static_cast<int64_t>(a.i())};
    case pb::AttributeProto::STRING: return {a.name(), a.s()};
    case pb::AttributeProto::TENSOR: return {a.name(), tensor_from_proto(a.t(), w)};
    case pb::AttributeProto::FLOATS: return {a.name(), std::vector<double>(a.floats().begin(), a.floats().end())};
    case pb::AttributeProto::INTS: return {a.name(), std::vector<int64_t>(a.ints().begin(), a.ints().end())};
    case pb::AttributeProto::STRINGS:
      return {a.name(), std::vector<std::string>(a.strings().begin(), a.strings().end())};
    default: break;
  }
  const std::string type = pb::AttributeProto::AttributeType_IsValid(a.type())
                               ? pb::AttributeProto::AttributeType_Name(a.type())
                               : std::to_string(a.type());
  RESIN_FAIL(w, ": attributes of type ", type, " (subgraphs, sparse tensors, types) are not supported");
}

void attr_to_proto(const nn::OnnxAttr& a, pb::AttributeProto& p) {
  p.set_name(a.name);
  std::visit(
      [&](const auto& v) {
        using V = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<V, int64_t>) {
          p.set_type(pb::AttributeProto::INT);
          p.set_i(v);
        } else if constexpr (std::is_same_v<V, double>) {
          p.set_type(pb::AttributeProto::FLOAT);
          p.set_f(static_cast<float>(v));
        } else if constexpr (std::is_same_v<V, std::string>) {
          p.set_type(pb::AttributeProto::STRING);
          p.set_s(v);
        } else if constexpr (std::is_same_v<V, std::vector<int64_t>>) {
          p.set_type(pb::AttributeProto::INTS);
          for (int64_t i : v) p.add_ints(i);
        } else if constexpr (std::is_same_v<V, std::vector<double>>) {
          p.set_type(pb::AttributeProto::FLOATS);
          for (double f : v) p.add_floats(static_cast<float>(f));
        } else if constexpr (std::is_same_v<V, std::vector<std::string>>) {
          p.set_type(pb::AttributeProto::STRINGS);
          for (const auto& s : v) p.add_strings(s);
        } else {
          p.set_type(pb::AttributeProto::TENSOR);
          tensor_to_proto(v, "", *p.mutable_t());
        }
      },
      a.value);
}

ValueInfo value_info_from_proto(const pb::ValueInfoProto& v, const std::string& what) {
  const std::string w = what + " '" + v.name() + "'";
  RESIN_CHECK(v.type().value_case() == pb::TypeProto::kTensorType, w,
              ": only tensor types are supported (not sequences, maps or optionals)");
  const auto& tt = v.type().tensor_type();
  ValueInfo info;
  info.name = v.name();
  info.dtype = dtype_from_onnx(tt.elem_type(), w);
  info.has_shape = tt.has_shape();
  for (const auto& d : tt.shape().dim()) {
    info.dims.push_back(d.value_case() == pb::TensorShapeProto::Dimension::kDimValue ? d.dim_value() : -1);
    info.dim_params.push_back(d.value_case() == pb::TensorShapeProto::Dimension::kDimParam ? d.dim_param() : "");
  }
  return info;
}

void value_info_to_proto(const ValueInfo& v, pb::ValueInfoProto& p) {
  p.set_name(v.name);
  auto* tt = p.mutable_type()->mutable_tensor_type();
  tt->set_elem_type(dtype_to_onnx(v.dtype));
  if (!v.has_shape) return;
  auto* shape = tt->mutable_shape();
  for (size_t i = 0; i < v.dims.size(); ++i) {
    auto* d = shape->add_dim();
    if (i < v.dim_params.size() && !v.dim_params[i].empty())
      d->set_dim_param(v.dim_params[i]);
    else if (v.dims[i] >= 0)
      d->set_dim_value(v.dims[i]);
  }
}

void run_checker(const pb::ModelProto& m, const std::string& source) {
  try {
    pb::checker::check_model(m);
  } catch (const std::exception& e) {  // onnx::checker::ValidationError and anything the checker throws
    RESIN_FAIL(source, ": not a valid ONNX model (onnx checker: ", e.what(), ")");
  }
}

// Names: SSA (every value defined once), every input defined before use, outputs produced.
void check_structure(const Graph& g, const std::string& source) {
  std::unordered_set<std::string> defined;
  for (const auto& [name, _] : g.initializers)
    RESIN_CHECK(defined.insert(name).second, source, ": initializer '", name, "' defined twice");
  for (const auto& v : g.inputs)
    RESIN_CHECK(defined.insert(v.name).second, source, ": graph input '", v.name, "' defined twice");
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    for (const auto& in : n.inputs)
      RESIN_CHECK(in.empty() || defined.count(in), source, ": node '", n.name, "' (", n.op, ") reads '", in,
                  "', which no earlier node, input or initializer defines (graphs must be topologically sorted)");
    for (const auto& out : n.outputs)
      RESIN_CHECK(out.empty() || defined.insert(out).second, source, ": node '", n.name, "' (", n.op,
                  ") redefines '", out, "'");
  }
  for (const auto& v : g.outputs)
    RESIN_CHECK(defined.count(v.name), source, ": graph output '", v.name, "' is never computed");
}

}  // namespace

Graph parse_model(const std::string& bytes, const std::string& source) {
  RESIN_CHECK(bytes.size() < static_cast<size_t>(INT_MAX), source, ": files over 2 GiB are not supported");
  pb::ModelProto m;
  RESIN_CHECK(m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())), source,
              ": not an ONNX model (the protobuf does not parse; truncated or corrupt file?)");
  RESIN_CHECK(m.has_graph(), source, ": the model has no graph");
  Graph g;
  g.ir_version = m.ir_version();
  g.producer_name = m.producer_name();
  g.producer_version = m.producer_version();
  bool has_default = false;
  for (const auto& o : m.opset_import()) {
    if (!o.domain().empty() && o.domain() != "ai.onnx") continue;
    has_default = true;
    g.opset = o.version();
  }
  RESIN_CHECK(has_default, source, ": the model imports no opset of the default ONNX domain");
  RESIN_CHECK(g.opset >= 1 && g.opset <= kMaxOpset, source, ": opset ", g.opset,
              " is not supported (resin reads opsets ", kMinOpset, " to ", kMaxOpset, ")");
  const pb::GraphProto& gp = m.graph();
  g.name = gp.name();
  g.doc = gp.doc_string();
  RESIN_CHECK(gp.sparse_initializer_size() == 0, source, ": sparse initializers are not supported");
  std::set<std::string> init_names;
  for (const auto& t : gp.initializer()) {
    g.initializers.emplace_back(t.name(), tensor_from_proto(t, source + ": initializer '" + t.name() + "'"));
    init_names.insert(t.name());
  }
  // Before IR 4, initializers were also listed as inputs; those are not inputs to feed.
  for (const auto& v : gp.input())
    if (!init_names.count(v.name())) g.inputs.push_back(value_info_from_proto(v, source + ": input"));
  for (const auto& v : gp.output()) g.outputs.push_back(value_info_from_proto(v, source + ": output"));
  for (int i = 0; i < gp.node_size(); ++i) {
    const pb::NodeProto& np = gp.node(i);
    Node n;
    n.op = np.op_type();
    n.name = np.name().empty() ? np.op_type() + "_" + std::to_string(i) : np.name();
    const std::string what = source + ": node '" + n.name + "' (" + n.op + ")";
    RESIN_CHECK(np.domain().empty() || np.domain() == "ai.onnx", what, ": op domain '", np.domain(),
                "' is not supported (only the default ONNX domain)");
    n.inputs.assign(np.input().begin(), np.input().end());
    n.outputs.assign(np.output().begin(), np.output().end());
    for (const auto& a : np.attribute()) n.attrs.push_back(attr_from_proto(a, what));
    g.nodes.push_back(std::move(n));
  }
  if (g.opset < kMinOpset)
    for (const Node& n : g.nodes)
      RESIN_CHECK(std::find(std::begin(kOpsetOneOps), std::end(kOpsetOneOps), n.op) != std::end(kOpsetOneOps), source,
                  ": opset ", g.opset, " is not supported for op '", n.op, "' in node '", n.name, "' (resin reads opsets ",
                  kMinOpset, " to ", kMaxOpset, ", and older graphs only of ops unchanged since opset 1)");
  check_structure(g, source);
  run_checker(m, source);
  return g;
}

ModelSummary peek_model(const std::string& bytes, const std::string& source) {
  RESIN_CHECK(bytes.size() < static_cast<size_t>(INT_MAX), source, ": files over 2 GiB are not supported");
  pb::ModelProto m;
  RESIN_CHECK(m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())), source, ": not an ONNX model");
  ModelSummary s;
  for (const auto& o : m.opset_import())
    if (o.domain().empty() || o.domain() == "ai.onnx") s.opset = o.version();
  for (const auto& n : m.graph().node())
    s.ops.push_back(n.domain().empty() || n.domain() == "ai.onnx" ? n.op_type() : n.domain() + "::" + n.op_type());
  return s;
}

std::string serialize_model(const Graph& g) {
  pb::ModelProto m;
  m.set_ir_version(g.ir_version);
  m.set_producer_name(g.producer_name);
  m.set_producer_version(g.producer_version);
  auto* op = m.add_opset_import();
  op->set_domain("");
  op->set_version(g.opset);
  pb::GraphProto* gp = m.mutable_graph();
  gp->set_name(g.name.empty() ? "graph" : g.name);  // the checker requires a name
  if (!g.doc.empty()) gp->set_doc_string(g.doc);
  for (const auto& [name, t] : g.initializers) tensor_to_proto(t, name, *gp->add_initializer());
  for (const auto& v : g.inputs) value_info_to_proto(v, *gp->add_input());
  for (const auto& v : g.outputs) value_info_to_proto(v, *gp->add_output());
  for (const Node& n : g.nodes) {
    pb::NodeProto* np = gp->add_node();
    np->set_op_type(n.op);
    np->set_name(n.name);
    for (const auto& i : n.inputs) np->add_input(i);
    for (const auto& o : n.outputs) np->add_output(o);
    for (const auto& a : n.attrs) attr_to_proto(a, *np->add_attribute());
  }
  run_checker(m, "exported model");
  std::string out;
  RESIN_CHECK(m.SerializeToString(&out), "ONNX export: the model does not serialize (over 2 GiB?)");
  return out;
}

Tensor parse_tensor(const std::string& bytes, const std::string& source) {
  RESIN_CHECK(bytes.size() < static_cast<size_t>(INT_MAX), source, ": files over 2 GiB are not supported");
  pb::TensorProto p;
  RESIN_CHECK(p.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())), source,
              ": not a serialized ONNX TensorProto");
  return tensor_from_proto(p, source);
}

std::string serialize_tensor(const Tensor& t, const std::string& name) {
  pb::TensorProto p;
  tensor_to_proto(t, name, p);
  return p.SerializeAsString();
}

}  // namespace resin::onnx
