// Emulated cuDNN 9: a CPU model of the part of the cuDNN legacy API that resin uses, linked instead of the
// real library in the emulated-GPU test build (docs/cuda.md, "Emulated GPU"). Device memory is host memory
// (memory.h), so routines read and write it directly; every device range a call would touch is checked
// first (on the handle's device), and a bad pointer, descriptor or shape is an error status, never a silent
// wrong result.
//
// Emulated:
//  - handles, streams (remembered only: calls run synchronously), error strings, version;
//  - 4-D tensor descriptors with any positive strides; 4-D filter descriptors (KCRS or KRSC);
//    2-D convolution descriptors (padding, stride, dilation, groups, convolution or cross-correlation);
//  - convolution forward, backward data, backward filter and backward bias, with the algorithm queries
//    (cudnnGet*_v7, cudnnFind*Ex, workspace sizes). Emulated algorithms: forward IMPLICIT_GEMM,
//    IMPLICIT_PRECOMP_GEMM, GEMM; backward data ALGO_0, ALGO_1; backward filter ALGO_0, ALGO_1, ALGO_3.
//    Every algorithm computes the same loops; some demand a workspace, which is checked and then filled
//    with NaN bytes so callers that share it with live data notice. ALGO_1 of each pass (ranked first)
//    refuses operands not aligned to 16 bytes, as vectorised kernels do. The FFT and Winograd algorithms are
//    reported with CUDNN_STATUS_NOT_SUPPORTED;
//  - cudnnAddTensor (broadcast of size-1 dimensions);
//  - batch normalization forward training / inference and backward, spatial and per-activation modes.
// All arithmetic is in double whatever the data and compute types (a correctness model, not a precision
// model); results are rounded once to the output type (f16/bf16 by bit conversion, round to nearest even)
// and blended as y = alpha * result + beta * y_prior, where beta == 0 means y_prior is not read.
//
// Not emulated: tensors of other than 4 dimensions, integer/FP8/complex data types, vectorized
// (NCHW_VECT_C) layouts, the backend (graph) API and every routine not defined below.
#include <cudnn.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <mutex>
#include <new>
#include <optional>
#include <thread>
#include <unordered_set>
#include <vector>

#include "cuda_emulation/live_objects.h"
#include "cuda_emulation/memory.h"
#include "cuda_emulation/storage.h"

// Returns from the enclosing function when `expr`, a cudnnStatus_t, is not CUDNN_STATUS_SUCCESS.
#define EMULATION_RETURN_IF_ERROR(expr)                                                        \
  do {                                                                                         \
    if (const cudnnStatus_t status_ = (expr); status_ != CUDNN_STATUS_SUCCESS) return status_; \
  } while (false)

namespace {

using resin::cuda_emulation::BF16;
using resin::cuda_emulation::device_of;
using resin::cuda_emulation::F16;
using resin::cuda_emulation::F32;
using resin::cuda_emulation::F64;
using resin::cuda_emulation::live;

constexpr cudnnStatus_t kSuccess = CUDNN_STATUS_SUCCESS;
constexpr cudnnStatus_t kBadParam = CUDNN_STATUS_BAD_PARAM;
constexpr cudnnStatus_t kNotSupported = CUDNN_STATUS_NOT_SUPPORTED;
// The value of the deprecated CUDNN_STATUS_ALLOC_FAILED.
constexpr cudnnStatus_t kAllocFailed = CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED;

bool is_emulated_data_type(cudnnDataType_t type) {
  return type == CUDNN_DATA_FLOAT || type == CUDNN_DATA_DOUBLE || type == CUDNN_DATA_HALF ||
         type == CUDNN_DATA_BFLOAT16;
}

bool is_known_data_type(cudnnDataType_t type) {
  return int(type) >= CUDNN_DATA_FLOAT && int(type) <= CUDNN_DATA_COMPLEX_FP64;
}

size_t element_size(cudnnDataType_t type) {
  return type == CUDNN_DATA_DOUBLE ? 8 : type == CUDNN_DATA_FLOAT ? 4 : 2;
}

// Calls `fn(Tag{})` with the storage tag of `type`, one of the emulated data types.
template <typename Fn>
void with_storage(cudnnDataType_t type, Fn&& fn) {
  switch (type) {
    case CUDNN_DATA_DOUBLE:
      fn(F64{});
      break;
    case CUDNN_DATA_HALF:
      fn(F16{});
      break;
    case CUDNN_DATA_BFLOAT16:
      fn(BF16{});
      break;
    default:
      fn(F32{});
      break;
  }
}

// Scaling factors (alpha, beta) are host doubles for double data and host floats for every other type.
double read_scaling_factor(const void* host_factor, cudnnDataType_t data_type) {
  return data_type == CUDNN_DATA_DOUBLE ? *static_cast<const double*>(host_factor)
                                        : double(*static_cast<const float*>(host_factor));
}

// ------------------------------------------------------------------------------------------------
// A 4-D strided layout: element (i0, i1, i2, i3) at i0*s0 + i1*s1 + i2*s2 + i3*s3 elements from the base.
// Tensors use (n, c, h, w); filters use (k, c, r, s).

struct Layout {
  cudnnDataType_t type = CUDNN_DATA_FLOAT;
  std::array<int64_t, 4> dims{};
  std::array<int64_t, 4> strides{};

  int64_t count() const { return dims[0] * dims[1] * dims[2] * dims[3]; }
  // Elements from the base to one past the last addressed element.
  int64_t span() const {
    int64_t last = 0;
    for (int d = 0; d < 4; ++d) last += (dims[d] - 1) * strides[d];
    return last + 1;
  }
  size_t bytes() const { return size_t(span()) * element_size(type); }
};

Layout packed_layout(cudnnDataType_t type, cudnnTensorFormat_t format, int64_t n, int64_t c, int64_t h,
                     int64_t w) {
  Layout layout{type, {n, c, h, w}, {}};
  if (format == CUDNN_TENSOR_NHWC)
    layout.strides = {h * w * c, 1, w * c, c};
  else
    layout.strides = {c * h * w, h * w, w, 1};
  return layout;
}

// Dimensions and strides in the range cuDNN accepts: positive, at most 2^31 - 1 elements, and an
// addressed extent small enough to compute with.
cudnnStatus_t check_layout_limits(const Layout& layout) {
  double span = 1;
  for (int d = 0; d < 4; ++d) {
    if (layout.dims[d] < 1 || layout.strides[d] < 1) return kBadParam;
    span += double(layout.dims[d] - 1) * double(layout.strides[d]);
  }
  if (double(layout.count()) > double(std::numeric_limits<int32_t>::max()) || span > 0x1p52)
    return kNotSupported;
  return kSuccess;
}

// Copies a strided tensor into a dense row-major (dims[0], dims[1], dims[2], dims[3]) array of doubles.
template <typename Tag>
void load_dense_as(const Layout& layout, const void* base, double* dense) {
  const auto* data = static_cast<const typename Tag::stored*>(resin::cuda_emulation::host_view(base));
  const auto [d0, d1, d2, d3] = layout.dims;
  const auto [s0, s1, s2, s3] = layout.strides;
  for (int64_t i0 = 0; i0 < d0; ++i0)
    for (int64_t i1 = 0; i1 < d1; ++i1)
      for (int64_t i2 = 0; i2 < d2; ++i2) {
        const auto* row = data + i0 * s0 + i1 * s1 + i2 * s2;
        for (int64_t i3 = 0; i3 < d3; ++i3) *dense++ = Tag::decode(row[i3 * s3]);
      }
}

std::vector<double> load_dense(const Layout& layout, const void* base) {
  std::vector<double> dense(size_t(layout.count()));
  with_storage(layout.type, [&](auto tag) { load_dense_as<decltype(tag)>(layout, base, dense.data()); });
  return dense;
}

// Writes out = alpha * result + beta * out for every element, `result` dense row-major; out is not read
// when beta == 0.
template <typename Tag>
void store_blended_as(const Layout& layout, void* base, const double* result, double alpha, double beta) {
  auto* data = static_cast<typename Tag::stored*>(resin::cuda_emulation::host_view(base));
  const auto [d0, d1, d2, d3] = layout.dims;
  const auto [s0, s1, s2, s3] = layout.strides;
  for (int64_t i0 = 0; i0 < d0; ++i0)
    for (int64_t i1 = 0; i1 < d1; ++i1)
      for (int64_t i2 = 0; i2 < d2; ++i2) {
        auto* row = data + i0 * s0 + i1 * s1 + i2 * s2;
        for (int64_t i3 = 0; i3 < d3; ++i3) {
          auto& out = row[i3 * s3];
          double value = alpha * *result++;
          if (beta != 0) value += beta * Tag::decode(out);
          out = Tag::encode(value);
        }
      }
}

void store_blended(const Layout& layout, void* base, const std::vector<double>& result, double alpha,
                   double beta) {
  with_storage(layout.type,
               [&](auto tag) { store_blended_as<decltype(tag)>(layout, base, result.data(), alpha, beta); });
}

// Overwrites every addressed element with NaN (what "overwritten with arbitrary values" may be).
void fill_with_nan(const Layout& layout, void* base) {
  store_blended(layout, base, std::vector<double>(size_t(layout.count()), std::nan("")), 1, 0);
}

// True when no two elements share an address: parallel writes to one address would race on a GPU, so
// the emulation refuses such outputs rather than pick a winner.
bool has_distinct_elements(const Layout& layout) {
  // Sufficient test: sorted by stride, each dimension steps over the whole extent of the smaller ones.
  std::array<int, 4> order = {0, 1, 2, 3};
  std::sort(order.begin(), order.end(), [&](int a, int b) { return layout.strides[a] < layout.strides[b]; });
  int64_t covered = 1;  // elements spanned by the dimensions already visited
  bool nested = true;
  for (int d : order) {
    if (layout.dims[d] == 1) continue;
    if (layout.strides[d] < covered) nested = false;
    covered = std::max(covered, (layout.dims[d] - 1) * layout.strides[d] + covered);
  }
  if (nested) return true;
  // Exact test for the odd interleaved layouts.
  std::vector<bool> written(size_t(layout.span()), false);
  for (int64_t i0 = 0; i0 < layout.dims[0]; ++i0)
    for (int64_t i1 = 0; i1 < layout.dims[1]; ++i1)
      for (int64_t i2 = 0; i2 < layout.dims[2]; ++i2)
        for (int64_t i3 = 0; i3 < layout.dims[3]; ++i3) {
          const auto offset = size_t(i0 * layout.strides[0] + i1 * layout.strides[1] +
                                     i2 * layout.strides[2] + i3 * layout.strides[3]);
          if (written[offset]) return false;
          written[offset] = true;
        }
  return true;
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// The opaque types the cuDNN headers declare.

struct cudnnContext {
  int device = 0;  // the current device when the handle was created; its data must live there
  cudaStream_t stream = nullptr;
};

struct cudnnTensorStruct {
  bool is_set = false;
  Layout layout;
};

struct cudnnFilterStruct {
  bool is_set = false;
  cudnnDataType_t type = CUDNN_DATA_FLOAT;
  cudnnTensorFormat_t format = CUDNN_TENSOR_NCHW;
  int k = 0, c = 0, r = 0, s = 0;  // output channels, input channels per group, height, width
};

struct cudnnConvolutionStruct {
  bool is_set = false;  // by cudnnSetConvolution2dDescriptor
  int pad_h = 0, pad_w = 0;
  int stride_h = 1, stride_w = 1;
  int dilation_h = 1, dilation_w = 1;
  cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  cudnnDataType_t compute_type = CUDNN_DATA_FLOAT;
  int group_count = 1;
  cudnnMathType_t math_type = CUDNN_DEFAULT_MATH;
};

namespace {

template <typename Object>
cudnnStatus_t create_object(Object** out) {
  if (out == nullptr) return kBadParam;
  try {
    *out = live<Object>().create();
  } catch (const std::bad_alloc&) {
    return kAllocFailed;
  }
  return kSuccess;
}

template <typename Object>
cudnnStatus_t destroy_object(Object* object) {
  // Destroying NULL is a no-op, as in cuDNN.
  if (object == nullptr) return kSuccess;
  return live<Object>().destroy(object) ? kSuccess : kBadParam;
}

// A live handle's device, for the pointer checks of the call.
cudnnStatus_t handle_device(cudnnHandle_t handle, int& device) {
  if (handle == nullptr || !live<cudnnContext>().contains(handle)) return kBadParam;
  device = handle->device;
  return kSuccess;
}

cudnnStatus_t tensor_layout(cudnnTensorDescriptor_t desc, Layout& layout) {
  if (desc == nullptr || !live<cudnnTensorStruct>().contains(desc) || !desc->is_set) return kBadParam;
  layout = desc->layout;
  return kSuccess;
}

// A filter as a layout over (k, c, r, s): KCRS for the NCHW format, KRSC for NHWC.
cudnnStatus_t filter_layout(cudnnFilterDescriptor_t desc, Layout& layout) {
  if (desc == nullptr || !live<cudnnFilterStruct>().contains(desc) || !desc->is_set) return kBadParam;
  layout = packed_layout(desc->type, desc->format, desc->k, desc->c, desc->r, desc->s);
  return kSuccess;
}

cudnnStatus_t convolution_settings(cudnnConvolutionDescriptor_t desc, cudnnConvolutionStruct& settings) {
  if (desc == nullptr || !live<cudnnConvolutionStruct>().contains(desc) || !desc->is_set) return kBadParam;
  settings = *desc;
  return kSuccess;
}

// `data` must address the whole of `layout` inside one live allocation of `device`.
cudnnStatus_t check_data(const void* data, const Layout& layout, int device) {
  if (data == nullptr || device_of(data, layout.bytes()) != device) return kBadParam;
  return kSuccess;
}

// As check_data, for data the call writes.
cudnnStatus_t check_output(void* data, const Layout& layout, int device) {
  EMULATION_RETURN_IF_ERROR(check_data(data, layout, device));
  return has_distinct_elements(layout) ? kSuccess : kBadParam;
}

// Runs `compute` (which returns nothing), mapping a host allocation failure to its status.
template <typename Compute>
cudnnStatus_t run_guarded(Compute&& compute) {
  try {
    compute();
  } catch (const std::bad_alloc&) {
    return kAllocFailed;
  }
  return kSuccess;
}

// Runs body(begin, end) over [0, items) split across hardware threads when the job is big enough to pay
// for them. Bodies must write disjoint memory for disjoint item ranges.
template <typename Body>
void parallel_for(int64_t items, int64_t work_per_item, const Body& body) {
  constexpr int64_t kMinWorkPerThread = int64_t(1) << 18;
  const int64_t hardware = std::max(1u, std::min(16u, std::thread::hardware_concurrency()));
  const int64_t threads = std::min({hardware, items, items * work_per_item / kMinWorkPerThread});
  if (threads <= 1) {
    body(int64_t(0), items);
    return;
  }
  const int64_t chunk = (items + threads - 1) / threads;
  std::vector<std::thread> workers;
  for (int64_t begin = chunk; begin < items; begin += chunk)
    workers.emplace_back([&body, begin, end = std::min(items, begin + chunk)] { body(begin, end); });
  body(int64_t(0), std::min(items, chunk));
  for (auto& worker : workers) worker.join();
}

// ------------------------------------------------------------------------------------------------
// Convolution geometry, validated as the cuDNN documentation of cudnnConvolutionForward,
// cudnnConvolutionBackwardData, cudnnConvolutionBackwardFilter and cudnnGetConvolution2dForwardOutputDim
// lists it.

struct Convolution {
  Layout x;  // input (n, c, h, w); dx for backward data
  Layout w;  // filter (k, c / groups, r, s); dw for backward filter
  Layout y;  // output (n, k, out_h, out_w); dy for the backward passes
  cudnnConvolutionStruct settings;
  int64_t groups = 1;
  int64_t out_h = 0, out_w = 0;

  int64_t batch() const { return x.dims[0]; }
  int64_t in_channels() const { return x.dims[1]; }
  int64_t in_h() const { return x.dims[2]; }
  int64_t in_w() const { return x.dims[3]; }
  int64_t out_channels() const { return w.dims[0]; }
  int64_t in_per_group() const { return w.dims[1]; }
  int64_t out_per_group() const { return w.dims[0] / groups; }
  int64_t filter_h() const { return w.dims[2]; }
  int64_t filter_w() const { return w.dims[3]; }
  // CUDNN_CONVOLUTION applies the filter rotated by 180 degrees; CUDNN_CROSS_CORRELATION as stored.
  bool flips_filter() const { return settings.mode == CUDNN_CONVOLUTION; }
  int64_t multiply_adds() const {
    return batch() * out_channels() * in_per_group() * filter_h() * filter_w() * out_h * out_w;
  }
};

// out = (in + 2*pad - dilation*(filter - 1) - 1) / stride + 1, or 0 when the dilated filter is larger
// than the padded input.
int64_t output_extent(int64_t in, int64_t pad, int64_t filter, int64_t dilation, int64_t stride) {
  const int64_t room = in + 2 * pad - dilation * (filter - 1) - 1;
  return room < 0 ? 0 : room / stride + 1;
}

// Checks the input/filter/convolution relationship and computes the output size (no output tensor).
cudnnStatus_t prepare_output_geometry(cudnnTensorDescriptor_t x_desc, cudnnFilterDescriptor_t w_desc,
                                      cudnnConvolutionDescriptor_t conv_desc, Convolution& conv) {
  EMULATION_RETURN_IF_ERROR(tensor_layout(x_desc, conv.x));
  EMULATION_RETURN_IF_ERROR(filter_layout(w_desc, conv.w));
  EMULATION_RETURN_IF_ERROR(convolution_settings(conv_desc, conv.settings));
  conv.groups = conv.settings.group_count;
  // The filter's c is the input channel count of one group; its k must split evenly into the groups.
  if (conv.in_per_group() * conv.groups != conv.in_channels()) return kBadParam;
  if (conv.out_channels() % conv.groups != 0) return kBadParam;
  const cudnnConvolutionStruct& s = conv.settings;
  conv.out_h = output_extent(conv.in_h(), s.pad_h, conv.filter_h(), s.dilation_h, s.stride_h);
  conv.out_w = output_extent(conv.in_w(), s.pad_w, conv.filter_w(), s.dilation_w, s.stride_w);
  if (conv.out_h < 1 || conv.out_w < 1) return kBadParam;  // filter larger than the padded input
  return kSuccess;
}

// The supported configurations of the convolution routines (data type of x, w, y against the compute
// type of the convolution descriptor): FLOAT, DOUBLE, TRUE_HALF, PSEUDO_HALF, PSEUDO_BFLOAT16.
bool is_supported_configuration(cudnnDataType_t data, cudnnDataType_t compute) {
  switch (data) {
    case CUDNN_DATA_FLOAT:
      return compute == CUDNN_DATA_FLOAT;
    case CUDNN_DATA_DOUBLE:
      return compute == CUDNN_DATA_DOUBLE;
    case CUDNN_DATA_HALF:
      return compute == CUDNN_DATA_HALF || compute == CUDNN_DATA_FLOAT;
    case CUDNN_DATA_BFLOAT16:
      return compute == CUDNN_DATA_FLOAT;
    default:
      return false;
  }
}

// The full check shared by every convolution routine: `x_desc` is x or dx, `w_desc` w or dw, `y_desc`
// y or dy.
// 0: channels outside the spatial dims (NCHW, KCRS), 1: channels innermost (NHWC, KRSC), -1: either
// (one channel, or one spatial position).
int channel_order(const Layout& l) {
  if (l.dims[1] == 1 || l.dims[2] * l.dims[3] == 1) return -1;
  return l.strides[1] == 1 ? 1 : 0;
}

cudnnStatus_t prepare_convolution(cudnnTensorDescriptor_t x_desc, cudnnFilterDescriptor_t w_desc,
                                  cudnnConvolutionDescriptor_t conv_desc, cudnnTensorDescriptor_t y_desc,
                                  Convolution& conv) {
  EMULATION_RETURN_IF_ERROR(prepare_output_geometry(x_desc, w_desc, conv_desc, conv));
  EMULATION_RETURN_IF_ERROR(tensor_layout(y_desc, conv.y));
  const std::array<int64_t, 4> expected_y = {conv.batch(), conv.out_channels(), conv.out_h, conv.out_w};
  if (conv.y.dims != expected_y) return kBadParam;
  if (conv.x.type != conv.w.type || conv.x.type != conv.y.type) return kBadParam;
  if (!is_supported_configuration(conv.x.type, conv.settings.compute_type)) return kNotSupported;
  // Layouts the legacy API has no convolution kernels for: double in NHWC, and a filter format
  // (KCRS / KRSC) that differs from the activations' layout (NCHW / NHWC).
  const int x_order = channel_order(conv.x), w_order = channel_order(conv.w), y_order = channel_order(conv.y);
  if (conv.x.type == CUDNN_DATA_DOUBLE && (x_order == 1 || w_order == 1 || y_order == 1))
    return kNotSupported;
  if (x_order >= 0 && w_order >= 0 && x_order != w_order) return kNotSupported;
  if (x_order >= 0 && y_order >= 0 && x_order != y_order) return kNotSupported;
  return kSuccess;
}

// Output positions that read input index `out * stride + offset` inside [0, in_size): [first, end).
struct TapRange {
  int64_t offset, first, end;
};

// The range of one filter tap along one axis.
TapRange tap_range(int64_t tap, int64_t dilation, int64_t pad, int64_t stride, int64_t in_size,
                   int64_t out_size) {
  const int64_t offset = tap * dilation - pad;
  const int64_t first = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
  const int64_t last_input = in_size - 1 - offset;  // largest out * stride allowed
  const int64_t end = last_input < 0 ? 0 : std::min(out_size, last_input / stride + 1);
  return {offset, first, std::max(first, end)};
}

struct TapRanges {
  std::vector<TapRange> rows, cols;
};

TapRanges tap_ranges(const Convolution& conv) {
  const cudnnConvolutionStruct& s = conv.settings;
  TapRanges ranges;
  for (int64_t r = 0; r < conv.filter_h(); ++r)
    ranges.rows.push_back(tap_range(r, s.dilation_h, s.pad_h, s.stride_h, conv.in_h(), conv.out_h));
  for (int64_t c = 0; c < conv.filter_w(); ++c)
    ranges.cols.push_back(tap_range(c, s.dilation_w, s.pad_w, s.stride_w, conv.in_w(), conv.out_w));
  return ranges;
}

// Rotates every (r, s) plane of a dense (k, c, r, s) filter by 180 degrees; its own inverse.
void rotate_filter(const Convolution& conv, std::vector<double>& filter) {
  const int64_t plane = conv.filter_h() * conv.filter_w();
  for (auto it = filter.begin(); it != filter.end(); it += plane) std::reverse(it, it + plane);
}

// The three kernels work on dense arrays: x (n, c, h, w), w (k, c/groups, r, s) already in
// cross-correlation orientation, y (n, k, out_h, out_w). With cg = c/groups and g = k / (k/groups):
//   y[n, k, oh, ow] = sum over c < cg, r, s of w[k, c, r, s] *
//       x[n, g*cg + c, oh*stride_h - pad_h + r*dilation_h, ow*stride_w - pad_w + s*dilation_w]
// where x outside the image reads as 0 (the zero padding). Backward data and backward filter are its exact
// adjoints with respect to x and w. Each kernel is split into independent items that write disjoint memory.

// y[n, k, :, :] for item = n * k_count + k.
void forward_output_plane(const Convolution& conv, const TapRanges& taps, const double* x, const double* w,
                          double* y, int64_t item) {
  const int64_t n = item / conv.out_channels(), k = item % conv.out_channels();
  const int64_t group = k / conv.out_per_group();
  const int64_t stride_h = conv.settings.stride_h, stride_w = conv.settings.stride_w;
  double* out = y + item * conv.out_h * conv.out_w;
  std::fill(out, out + conv.out_h * conv.out_w, 0.0);
  for (int64_t c = 0; c < conv.in_per_group(); ++c) {
    const int64_t channel = group * conv.in_per_group() + c;
    const double* in = x + (n * conv.in_channels() + channel) * conv.in_h() * conv.in_w();
    const double* filter = w + (k * conv.in_per_group() + c) * conv.filter_h() * conv.filter_w();
    for (int64_t r = 0; r < conv.filter_h(); ++r) {
      const TapRange& row = taps.rows[size_t(r)];
      for (int64_t s = 0; s < conv.filter_w(); ++s) {
        const TapRange& col = taps.cols[size_t(s)];
        const double weight = filter[r * conv.filter_w() + s];
        for (int64_t oh = row.first; oh < row.end; ++oh) {
          const double* in_row = in + (oh * stride_h + row.offset) * conv.in_w() + col.offset;
          double* out_row = out + oh * conv.out_w;
          for (int64_t ow = col.first; ow < col.end; ++ow) out_row[ow] += weight * in_row[ow * stride_w];
        }
      }
    }
  }
}

// dx[n, channel, :, :] for item = n * c_count + channel: gathers from the output channels of its group.
void backward_data_input_plane(const Convolution& conv, const TapRanges& taps, const double* w,
                               const double* dy, double* dx, int64_t item) {
  const int64_t n = item / conv.in_channels(), channel = item % conv.in_channels();
  const int64_t group = channel / conv.in_per_group(), c = channel % conv.in_per_group();
  const int64_t stride_h = conv.settings.stride_h, stride_w = conv.settings.stride_w;
  double* grad_in = dx + item * conv.in_h() * conv.in_w();
  std::fill(grad_in, grad_in + conv.in_h() * conv.in_w(), 0.0);
  for (int64_t k = group * conv.out_per_group(); k < (group + 1) * conv.out_per_group(); ++k) {
    const double* grad_out = dy + (n * conv.out_channels() + k) * conv.out_h * conv.out_w;
    const double* filter = w + (k * conv.in_per_group() + c) * conv.filter_h() * conv.filter_w();
    for (int64_t r = 0; r < conv.filter_h(); ++r) {
      const TapRange& row = taps.rows[size_t(r)];
      for (int64_t s = 0; s < conv.filter_w(); ++s) {
        const TapRange& col = taps.cols[size_t(s)];
        const double weight = filter[r * conv.filter_w() + s];
        for (int64_t oh = row.first; oh < row.end; ++oh) {
          double* in_row = grad_in + (oh * stride_h + row.offset) * conv.in_w() + col.offset;
          const double* out_row = grad_out + oh * conv.out_w;
          for (int64_t ow = col.first; ow < col.end; ++ow) in_row[ow * stride_w] += weight * out_row[ow];
        }
      }
    }
  }
}

// dw[k, c, :, :] for item = k * cg + c: sums over the batch.
void backward_filter_plane(const Convolution& conv, const TapRanges& taps, const double* x, const double* dy,
                           double* dw, int64_t item) {
  const int64_t k = item / conv.in_per_group(), c = item % conv.in_per_group();
  const int64_t channel = k / conv.out_per_group() * conv.in_per_group() + c;
  const int64_t stride_h = conv.settings.stride_h, stride_w = conv.settings.stride_w;
  double* grad_filter = dw + item * conv.filter_h() * conv.filter_w();
  for (int64_t r = 0; r < conv.filter_h(); ++r) {
    const TapRange& row = taps.rows[size_t(r)];
    for (int64_t s = 0; s < conv.filter_w(); ++s) {
      const TapRange& col = taps.cols[size_t(s)];
      double sum = 0;
      for (int64_t n = 0; n < conv.batch(); ++n) {
        const double* in = x + (n * conv.in_channels() + channel) * conv.in_h() * conv.in_w();
        const double* grad_out = dy + (n * conv.out_channels() + k) * conv.out_h * conv.out_w;
        for (int64_t oh = row.first; oh < row.end; ++oh) {
          const double* in_row = in + (oh * stride_h + row.offset) * conv.in_w() + col.offset;
          const double* out_row = grad_out + oh * conv.out_w;
          for (int64_t ow = col.first; ow < col.end; ++ow) sum += out_row[ow] * in_row[ow * stride_w];
        }
      }
      grad_filter[r * conv.filter_w() + s] = sum;
    }
  }
}

void convolve_forward(const Convolution& conv, const double* x, const double* w, double* y) {
  const TapRanges taps = tap_ranges(conv);
  const int64_t items = conv.batch() * conv.out_channels();
  parallel_for(items, conv.multiply_adds() / items, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) forward_output_plane(conv, taps, x, w, y, item);
  });
}

void convolve_backward_data(const Convolution& conv, const double* w, const double* dy, double* dx) {
  const TapRanges taps = tap_ranges(conv);
  const int64_t items = conv.batch() * conv.in_channels();
  parallel_for(items, conv.multiply_adds() / items, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) backward_data_input_plane(conv, taps, w, dy, dx, item);
  });
}

void convolve_backward_filter(const Convolution& conv, const double* x, const double* dy, double* dw) {
  const TapRanges taps = tap_ranges(conv);
  const int64_t items = conv.out_channels() * conv.in_per_group();
  parallel_for(items, conv.multiply_adds() / items, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) backward_filter_plane(conv, taps, x, dy, dw, item);
  });
}

// ------------------------------------------------------------------------------------------------
// Algorithms. All emulated algorithms of a pass compute the same loops; they differ in the workspace they
// demand and in what the queries report.

enum class Pass { kForward, kBackwardData, kBackwardFilter };

int algorithm_count(Pass pass) {
  switch (pass) {
    case Pass::kForward:
      return CUDNN_CONVOLUTION_FWD_ALGO_COUNT;
    case Pass::kBackwardData:
      return CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT;
    case Pass::kBackwardFilter:
      return CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT;
  }
  return 0;
}

bool is_emulated_algorithm(Pass pass, int algo) {
  switch (pass) {
    case Pass::kForward:
      return algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM ||
             algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM ||
             algo == CUDNN_CONVOLUTION_FWD_ALGO_GEMM;
    case Pass::kBackwardData:
      return algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_0 || algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_1;
    case Pass::kBackwardFilter:
      return algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0 || algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1 ||
             algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3;
  }
  return false;
}

// Plausible workspace demands: a precomputed index table, an im2col buffer, a rotated filter copy, a
// filter-sized accumulator.
size_t workspace_bytes(Pass pass, int algo, const Convolution& conv) {
  const size_t element = element_size(conv.x.type);
  const auto filter_taps = size_t(conv.in_per_group() * conv.filter_h() * conv.filter_w());
  const auto filter_elements = size_t(conv.out_channels()) * filter_taps;
  switch (pass) {
    case Pass::kForward:
      if (algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM) return sizeof(int32_t) * filter_taps;
      if (algo == CUDNN_CONVOLUTION_FWD_ALGO_GEMM)
        return element * filter_taps * size_t(conv.groups * conv.out_h * conv.out_w);
      return 0;
    case Pass::kBackwardData:
      return algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_1 ? element * filter_elements : 0;
    case Pass::kBackwardFilter:
      return algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1 ? std::max<size_t>(element, 4) * filter_elements : 0;
  }
  return 0;
}

cudnnDeterminism_t determinism_of(Pass pass, int algo) {
  const bool atomic_accumulation =
      (pass == Pass::kBackwardData && algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_0) ||
      (pass == Pass::kBackwardFilter &&
       (algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0 || algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3));
  return atomic_accumulation ? CUDNN_NON_DETERMINISTIC : CUDNN_DETERMINISTIC;
}

// The reported run time in milliseconds: the workspace-hungry ALGO_1 ranks first, so callers that take
// the top result exercise their workspace path.
float pretend_time(int algo) { return algo == 1 ? 1.0f : algo == 0 ? 2.0f : 3.0f; }

// Unknown enumerant: BAD_PARAM; a real algorithm the emulation does not model: NOT_SUPPORTED.
cudnnStatus_t check_algorithm(Pass pass, int algo) {
  if (algo < 0 || algo >= algorithm_count(pass)) return kBadParam;
  return is_emulated_algorithm(pass, algo) ? kSuccess : kNotSupported;
}

// Checks that the caller's workspace is large enough for `algo` and, when it has a size, lies on the
// device; then poisons the part the algorithm uses.
cudnnStatus_t claim_workspace(Pass pass, int algo, const Convolution& conv, void* workspace, size_t size,
                              int device) {
  const size_t required = workspace_bytes(pass, algo, conv);
  if (size < required) return kBadParam;
  if (size > 0 && (workspace == nullptr || device_of(workspace, size) != device)) return kBadParam;
  if (required > 0)
    std::memset(resin::cuda_emulation::host_view(workspace), 0xFF,
                required);  // all-ones bytes are NaN in every float type
  return kSuccess;
}

// Fills the perf results of the algorithm queries: runnable algorithms first, fastest first, then the
// others with a failure status. `workspace_limit` (Find*Ex) marks algorithms that need more as failed.
template <typename Perf>
void list_algorithms(Pass pass, const Convolution& conv, std::optional<size_t> workspace_limit, int requested,
                     int* returned, Perf* results) {
  std::vector<Perf> all;
  for (int algo = 0; algo < algorithm_count(pass); ++algo) {
    Perf perf{};
    perf.algo = static_cast<decltype(perf.algo)>(algo);
    perf.determinism = determinism_of(pass, algo);
    perf.mathType = conv.settings.math_type;
    perf.time = -1;
    if (!is_emulated_algorithm(pass, algo)) {
      perf.status = kNotSupported;
    } else {
      perf.memory = workspace_bytes(pass, algo, conv);
      if (workspace_limit && perf.memory > *workspace_limit) {
        perf.status = kAllocFailed;
      } else {
        perf.status = kSuccess;
        perf.time = pretend_time(algo);
      }
    }
    all.push_back(perf);
  }
  std::stable_sort(all.begin(), all.end(), [](const Perf& a, const Perf& b) {
    if ((a.status == kSuccess) != (b.status == kSuccess)) return a.status == kSuccess;
    return a.status == kSuccess && a.time < b.time;
  });
  const int count = std::min(requested, int(all.size()));
  std::copy(all.begin(), all.begin() + count, results);
  *returned = count;
}

cudnnStatus_t check_query_outputs(int requested, const int* returned, const void* results) {
  return requested < 1 || returned == nullptr || results == nullptr ? kBadParam : kSuccess;
}

// ------------------------------------------------------------------------------------------------
// What every convolution call and algorithm query checks. Descriptors and data come in (x, w, y)
// order whatever the pass; the pass's output is x (backward data), w (backward filter) or y (forward).

cudnnStatus_t prepare_call(cudnnHandle_t handle, cudnnTensorDescriptor_t x_desc,
                           cudnnFilterDescriptor_t w_desc, cudnnConvolutionDescriptor_t conv_desc,
                           cudnnTensorDescriptor_t y_desc, int& device, Convolution& conv) {
  EMULATION_RETURN_IF_ERROR(handle_device(handle, device));
  return prepare_convolution(x_desc, w_desc, conv_desc, y_desc, conv);
}

int output_index(Pass pass) { return pass == Pass::kForward ? 2 : pass == Pass::kBackwardData ? 0 : 1; }

cudnnStatus_t check_operands(Pass pass, const Convolution& conv, int device, const void* x, const void* w,
                             const void* y) {
  const Layout* layouts[3] = {&conv.x, &conv.w, &conv.y};
  const void* data[3] = {x, w, y};
  for (int i = 0; i < 3; ++i) {
    if (i == output_index(pass))
      EMULATION_RETURN_IF_ERROR(check_output(const_cast<void*>(data[i]), *layouts[i], device));
    else
      EMULATION_RETURN_IF_ERROR(check_data(data[i], *layouts[i], device));
  }
  return kSuccess;
}

// The _v7 heuristics queries.
template <typename Perf>
cudnnStatus_t get_algorithms(Pass pass, cudnnHandle_t handle, cudnnTensorDescriptor_t x_desc,
                             cudnnFilterDescriptor_t w_desc, cudnnConvolutionDescriptor_t conv_desc,
                             cudnnTensorDescriptor_t y_desc, int requested, int* returned, Perf* results) {
  int device;
  Convolution conv;
  EMULATION_RETURN_IF_ERROR(prepare_call(handle, x_desc, w_desc, conv_desc, y_desc, device, conv));
  EMULATION_RETURN_IF_ERROR(check_query_outputs(requested, returned, results));
  return run_guarded([&] { list_algorithms(pass, conv, std::nullopt, requested, returned, results); });
}

// The Find*Ex queries "run" every algorithm on the caller's buffers: the output buffer is overwritten
// with arbitrary values (NaN here), as the cuDNN documentation warns.
template <typename Perf>
cudnnStatus_t find_algorithms(Pass pass, cudnnHandle_t handle, cudnnTensorDescriptor_t x_desc, const void* x,
                              cudnnFilterDescriptor_t w_desc, const void* w,
                              cudnnConvolutionDescriptor_t conv_desc, cudnnTensorDescriptor_t y_desc,
                              const void* y, int requested, int* returned, Perf* results, void* workspace,
                              size_t workspace_bytes) {
  int device;
  Convolution conv;
  EMULATION_RETURN_IF_ERROR(prepare_call(handle, x_desc, w_desc, conv_desc, y_desc, device, conv));
  EMULATION_RETURN_IF_ERROR(check_query_outputs(requested, returned, results));
  EMULATION_RETURN_IF_ERROR(check_operands(pass, conv, device, x, w, y));
  if (workspace_bytes > 0 && (workspace == nullptr || device_of(workspace, workspace_bytes) != device))
    return kBadParam;
  return run_guarded([&] {
    const Layout* layouts[3] = {&conv.x, &conv.w, &conv.y};
    const void* data[3] = {x, w, y};
    const int out = output_index(pass);
    fill_with_nan(*layouts[out], const_cast<void*>(data[out]));
    list_algorithms(pass, conv, workspace_bytes, requested, returned, results);
  });
}

// The checks of a convolution call, before it computes.
cudnnStatus_t prepare_compute(Pass pass, cudnnHandle_t handle, const void* alpha, const void* beta,
                              cudnnTensorDescriptor_t x_desc, const void* x, cudnnFilterDescriptor_t w_desc,
                              const void* w, cudnnConvolutionDescriptor_t conv_desc,
                              cudnnTensorDescriptor_t y_desc, const void* y, int algo, void* workspace,
                              size_t workspace_bytes, Convolution& conv) {
  int device;
  EMULATION_RETURN_IF_ERROR(handle_device(handle, device));
  if (alpha == nullptr || beta == nullptr) return kBadParam;
  EMULATION_RETURN_IF_ERROR(prepare_convolution(x_desc, w_desc, conv_desc, y_desc, conv));
  EMULATION_RETURN_IF_ERROR(check_algorithm(pass, algo));
  EMULATION_RETURN_IF_ERROR(check_operands(pass, conv, device, x, w, y));
  // Like cuDNN's vectorised (tensor-core) kernels, the algorithm ranked first needs 16-byte aligned
  // operands; the heuristics do not see pointers, so a caller must be ready for the refusal.
  auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  if (algo == 1 && !(aligned(x) && aligned(w) && aligned(y)))
    return CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER;
  return claim_workspace(pass, algo, conv, workspace, workspace_bytes, device);
}

// ------------------------------------------------------------------------------------------------
// Batch normalization. Statistics are per "slot": a channel (spatial modes, over N, H, W) or a
// (channel, h, w) position (per-activation mode, over N).

struct BatchNorm {
  Layout x, y;   // x and y (or dy) share dims and type, not necessarily strides
  Layout param;  // scale, bias, means, variances: 1xCx1x1 or 1xCxHxW
  bool per_activation = false;

  int64_t batch() const { return x.dims[0]; }
  int64_t channels() const { return x.dims[1]; }
  int64_t plane() const { return x.dims[2] * x.dims[3]; }
  int64_t slots() const { return per_activation ? channels() * plane() : channels(); }
  int64_t samples_per_slot() const { return per_activation ? batch() : batch() * plane(); }
  // Index of the slot of element (., c, hw) in the dense NCHW order, which is also its index in `param`.
  int64_t slot_of(int64_t c, int64_t hw) const { return per_activation ? c * plane() + hw : c; }
};

cudnnStatus_t prepare_batch_norm(cudnnBatchNormMode_t mode, cudnnTensorDescriptor_t x_desc,
                                 cudnnTensorDescriptor_t y_desc, cudnnTensorDescriptor_t param_desc,
                                 double epsilon, BatchNorm& bn) {
  if (mode != CUDNN_BATCHNORM_PER_ACTIVATION && mode != CUDNN_BATCHNORM_SPATIAL &&
      mode != CUDNN_BATCHNORM_SPATIAL_PERSISTENT)
    return kBadParam;
  bn.per_activation = mode == CUDNN_BATCHNORM_PER_ACTIVATION;
  EMULATION_RETURN_IF_ERROR(tensor_layout(x_desc, bn.x));
  EMULATION_RETURN_IF_ERROR(tensor_layout(y_desc, bn.y));
  EMULATION_RETURN_IF_ERROR(tensor_layout(param_desc, bn.param));
  if (bn.x.dims != bn.y.dims || bn.x.type != bn.y.type) return kBadParam;
  const std::array<int64_t, 4> expected_param =
      bn.per_activation ? std::array<int64_t, 4>{1, bn.channels(), bn.x.dims[2], bn.x.dims[3]}
                        : std::array<int64_t, 4>{1, bn.channels(), 1, 1};
  if (bn.param.dims != expected_param) return kBadParam;
  // The derived scale/bias/mean/variance type: double for double data, float for float, half and bf16.
  const cudnnDataType_t param_type = bn.x.type == CUDNN_DATA_DOUBLE ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT;
  if (bn.param.type != param_type) return kBadParam;
  if (!(epsilon >= CUDNN_BN_MIN_EPSILON)) return kBadParam;  // also refuses NaN
  return kSuccess;
}

// Per-slot mean and biased variance (divided by the sample count) of dense NCHW `x`.
void batch_statistics(const BatchNorm& bn, const std::vector<double>& x, std::vector<double>& mean,
                      std::vector<double>& variance) {
  mean.assign(size_t(bn.slots()), 0.0);
  variance.assign(size_t(bn.slots()), 0.0);
  const double samples = double(bn.samples_per_slot());
  const double* value = x.data();
  for (int64_t n = 0; n < bn.batch(); ++n)
    for (int64_t c = 0; c < bn.channels(); ++c)
      for (int64_t hw = 0; hw < bn.plane(); ++hw) mean[size_t(bn.slot_of(c, hw))] += *value++;
  for (double& m : mean) m /= samples;
  value = x.data();
  for (int64_t n = 0; n < bn.batch(); ++n)
    for (int64_t c = 0; c < bn.channels(); ++c)
      for (int64_t hw = 0; hw < bn.plane(); ++hw) {
        const auto slot = size_t(bn.slot_of(c, hw));
        const double deviation = *value++ - mean[slot];
        variance[slot] += deviation * deviation;
      }
  for (double& v : variance) v /= samples;
}

// y = scale * (x - mean) * inverse_std + bias, per slot, all dense.
std::vector<double> normalize(const BatchNorm& bn, const std::vector<double>& x,
                              const std::vector<double>& mean, const std::vector<double>& inverse_std,
                              const std::vector<double>& scale, const std::vector<double>& bias) {
  std::vector<double> y(x.size());
  size_t i = 0;
  for (int64_t n = 0; n < bn.batch(); ++n)
    for (int64_t c = 0; c < bn.channels(); ++c)
      for (int64_t hw = 0; hw < bn.plane(); ++hw, ++i) {
        const auto slot = size_t(bn.slot_of(c, hw));
        y[i] = scale[slot] * (x[i] - mean[slot]) * inverse_std[slot] + bias[slot];
      }
  return y;
}

std::vector<double> inverse_std_of(const std::vector<double>& variance, double epsilon) {
  std::vector<double> inverse_std(variance.size());
  for (size_t i = 0; i < variance.size(); ++i) inverse_std[i] = 1 / std::sqrt(variance[i] + epsilon);
  return inverse_std;
}

// Both pointers of an optional pair must be given, or neither.
bool both_or_neither(const void* a, const void* b) { return (a == nullptr) == (b == nullptr); }

struct StatusName {
  cudnnStatus_t status;
  const char* name;
};

constexpr StatusName kStatusNames[] = {
    {CUDNN_STATUS_SUCCESS, "CUDNN_STATUS_SUCCESS"},
    {CUDNN_STATUS_NOT_INITIALIZED, "CUDNN_STATUS_NOT_INITIALIZED"},
    {CUDNN_STATUS_SUBLIBRARY_VERSION_MISMATCH, "CUDNN_STATUS_SUBLIBRARY_VERSION_MISMATCH"},
    {CUDNN_STATUS_SERIALIZATION_VERSION_MISMATCH, "CUDNN_STATUS_SERIALIZATION_VERSION_MISMATCH"},
    {CUDNN_STATUS_DEPRECATED, "CUDNN_STATUS_DEPRECATED"},
    {CUDNN_STATUS_LICENSE_ERROR, "CUDNN_STATUS_LICENSE_ERROR"},
    {CUDNN_STATUS_RUNTIME_IN_PROGRESS, "CUDNN_STATUS_RUNTIME_IN_PROGRESS"},
    {CUDNN_STATUS_RUNTIME_FP_OVERFLOW, "CUDNN_STATUS_RUNTIME_FP_OVERFLOW"},
    {CUDNN_STATUS_SUBLIBRARY_LOADING_FAILED, "CUDNN_STATUS_SUBLIBRARY_LOADING_FAILED"},
    {CUDNN_STATUS_BAD_PARAM, "CUDNN_STATUS_BAD_PARAM"},
    {CUDNN_STATUS_BAD_PARAM_NULL_POINTER, "CUDNN_STATUS_BAD_PARAM_NULL_POINTER"},
    {CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER, "CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER"},
    {CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED, "CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED"},
    {CUDNN_STATUS_BAD_PARAM_OUT_OF_BOUND, "CUDNN_STATUS_BAD_PARAM_OUT_OF_BOUND"},
    {CUDNN_STATUS_BAD_PARAM_SIZE_INSUFFICIENT, "CUDNN_STATUS_BAD_PARAM_SIZE_INSUFFICIENT"},
    {CUDNN_STATUS_BAD_PARAM_STREAM_MISMATCH, "CUDNN_STATUS_BAD_PARAM_STREAM_MISMATCH"},
    {CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH, "CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH"},
    {CUDNN_STATUS_BAD_PARAM_DUPLICATED_ENTRIES, "CUDNN_STATUS_BAD_PARAM_DUPLICATED_ENTRIES"},
    {CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE, "CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE"},
    {CUDNN_STATUS_BAD_PARAM_CUDA_GRAPH_MISMATCH, "CUDNN_STATUS_BAD_PARAM_CUDA_GRAPH_MISMATCH"},
    {CUDNN_STATUS_BAD_PARAM_DESCRIPTOR_TYPE, "CUDNN_STATUS_BAD_PARAM_DESCRIPTOR_TYPE"},
    {CUDNN_STATUS_NOT_SUPPORTED, "CUDNN_STATUS_NOT_SUPPORTED"},
    {CUDNN_STATUS_NOT_SUPPORTED_GRAPH_PATTERN, "CUDNN_STATUS_NOT_SUPPORTED_GRAPH_PATTERN"},
    {CUDNN_STATUS_NOT_SUPPORTED_SHAPE, "CUDNN_STATUS_NOT_SUPPORTED_SHAPE"},
    {CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE, "CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE"},
    {CUDNN_STATUS_NOT_SUPPORTED_LAYOUT, "CUDNN_STATUS_NOT_SUPPORTED_LAYOUT"},
    {CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDA_DRIVER,
     "CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDA_DRIVER"},
    {CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDART, "CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDART"},
    {CUDNN_STATUS_NOT_SUPPORTED_ARCH_MISMATCH, "CUDNN_STATUS_NOT_SUPPORTED_ARCH_MISMATCH"},
    {CUDNN_STATUS_NOT_SUPPORTED_RUNTIME_PREREQUISITE_MISSING,
     "CUDNN_STATUS_NOT_SUPPORTED_RUNTIME_PREREQUISITE_MISSING"},
    {CUDNN_STATUS_NOT_SUPPORTED_SUBLIBRARY_UNAVAILABLE, "CUDNN_STATUS_NOT_SUPPORTED_SUBLIBRARY_UNAVAILABLE"},
    {CUDNN_STATUS_NOT_SUPPORTED_SHARED_MEMORY_INSUFFICIENT,
     "CUDNN_STATUS_NOT_SUPPORTED_SHARED_MEMORY_INSUFFICIENT"},
    {CUDNN_STATUS_NOT_SUPPORTED_PADDING, "CUDNN_STATUS_NOT_SUPPORTED_PADDING"},
    {CUDNN_STATUS_NOT_SUPPORTED_BAD_LAUNCH_PARAM, "CUDNN_STATUS_NOT_SUPPORTED_BAD_LAUNCH_PARAM"},
    {CUDNN_STATUS_NOT_SUPPORTED_CUDA_GRAPH_NATIVE_API, "CUDNN_STATUS_NOT_SUPPORTED_CUDA_GRAPH_NATIVE_API"},
    {CUDNN_STATUS_NOT_SUPPORTED_INVALID_DYNAMIC_SHAPE, "CUDNN_STATUS_NOT_SUPPORTED_INVALID_DYNAMIC_SHAPE"},
    {CUDNN_STATUS_INTERNAL_ERROR, "CUDNN_STATUS_INTERNAL_ERROR"},
    {CUDNN_STATUS_INTERNAL_ERROR_COMPILATION_FAILED, "CUDNN_STATUS_INTERNAL_ERROR_COMPILATION_FAILED"},
    {CUDNN_STATUS_INTERNAL_ERROR_UNEXPECTED_VALUE, "CUDNN_STATUS_INTERNAL_ERROR_UNEXPECTED_VALUE"},
    {CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED,
     "CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED"},
    {CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED,
     "CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED"},
    {CUDNN_STATUS_INTERNAL_ERROR_BAD_LAUNCH_PARAM, "CUDNN_STATUS_INTERNAL_ERROR_BAD_LAUNCH_PARAM"},
    {CUDNN_STATUS_INTERNAL_ERROR_TEXTURE_CREATION_FAILED,
     "CUDNN_STATUS_INTERNAL_ERROR_TEXTURE_CREATION_FAILED"},
    {CUDNN_STATUS_EXECUTION_FAILED, "CUDNN_STATUS_EXECUTION_FAILED"},
    {CUDNN_STATUS_EXECUTION_FAILED_CUDA_DRIVER, "CUDNN_STATUS_EXECUTION_FAILED_CUDA_DRIVER"},
    {CUDNN_STATUS_EXECUTION_FAILED_CUBLAS, "CUDNN_STATUS_EXECUTION_FAILED_CUBLAS"},
    {CUDNN_STATUS_EXECUTION_FAILED_CUDART, "CUDNN_STATUS_EXECUTION_FAILED_CUDART"},
    {CUDNN_STATUS_EXECUTION_FAILED_CURAND, "CUDNN_STATUS_EXECUTION_FAILED_CURAND"},
};

const char* error_string(cudnnStatus_t status) {
  for (const StatusName& entry : kStatusNames)
    if (entry.status == status) return entry.name;
  // A code this table does not know: the name of its category (the thousands), if that is known.
  for (const StatusName& entry : kStatusNames)
    if (entry.status == CUDNN_STATUS_CATEGORY(int(status)) && entry.status != CUDNN_STATUS_SUCCESS)
      return entry.name;
  return "CUDNN_STATUS_UNKNOWN";
}

}  // namespace

// ================================================================================================
// Handles, versions, strings

size_t cudnnGetVersion(void) { return CUDNN_VERSION; }

const char* cudnnGetErrorString(cudnnStatus_t status) { return error_string(status); }

cudnnStatus_t cudnnCreate(cudnnHandle_t* handle) {
  EMULATION_RETURN_IF_ERROR(create_object(handle));
  (*handle)->device = resin::cuda_emulation::current_device();
  return kSuccess;
}

cudnnStatus_t cudnnDestroy(cudnnHandle_t handle) {
  if (handle == nullptr) return kBadParam;
  return destroy_object(handle);
}

cudnnStatus_t cudnnSetStream(cudnnHandle_t handle, cudaStream_t streamId) {
  int device;
  EMULATION_RETURN_IF_ERROR(handle_device(handle, device));
  handle->stream = streamId;
  return kSuccess;
}

cudnnStatus_t cudnnGetStream(cudnnHandle_t handle, cudaStream_t* streamId) {
  int device;
  EMULATION_RETURN_IF_ERROR(handle_device(handle, device));
  if (streamId == nullptr) return kBadParam;
  *streamId = handle->stream;
  return kSuccess;
}

// ================================================================================================
// Tensor descriptors

cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t* tensorDesc) {
  return create_object(tensorDesc);
}

cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t tensorDesc) {
  return destroy_object(tensorDesc);
}

namespace {

cudnnStatus_t set_tensor(cudnnTensorDescriptor_t desc, const Layout& layout) {
  if (desc == nullptr || !live<cudnnTensorStruct>().contains(desc)) return kBadParam;
  if (!is_known_data_type(layout.type)) return kBadParam;
  EMULATION_RETURN_IF_ERROR(check_layout_limits(layout));
  if (!is_emulated_data_type(layout.type)) return kNotSupported;
  desc->layout = layout;
  desc->is_set = true;
  return kSuccess;
}

}  // namespace

cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t tensorDesc, cudnnTensorFormat_t format,
                                         cudnnDataType_t dataType, int n, int c, int h, int w) {
  if (format == CUDNN_TENSOR_NCHW_VECT_C) return kNotSupported;
  if (format != CUDNN_TENSOR_NCHW && format != CUDNN_TENSOR_NHWC) return kBadParam;
  if (n < 1 || c < 1 || h < 1 || w < 1) return kBadParam;
  return set_tensor(tensorDesc, packed_layout(dataType, format, n, c, h, w));
}

cudnnStatus_t cudnnSetTensor4dDescriptorEx(cudnnTensorDescriptor_t tensorDesc, cudnnDataType_t dataType,
                                           int n, int c, int h, int w, int nStride, int cStride, int hStride,
                                           int wStride) {
  return set_tensor(tensorDesc, Layout{dataType, {n, c, h, w}, {nStride, cStride, hStride, wStride}});
}

cudnnStatus_t cudnnSetTensorNdDescriptor(cudnnTensorDescriptor_t tensorDesc, cudnnDataType_t dataType,
                                         int nbDims, const int dimA[], const int strideA[]) {
  if (dimA == nullptr || strideA == nullptr || nbDims < 3 || nbDims > CUDNN_DIM_MAX) return kBadParam;
  if (nbDims != 4) return kNotSupported;  // only 4-D tensors are emulated
  return set_tensor(tensorDesc, Layout{dataType,
                                       {dimA[0], dimA[1], dimA[2], dimA[3]},
                                       {strideA[0], strideA[1], strideA[2], strideA[3]}});
}

cudnnStatus_t cudnnGetTensor4dDescriptor(const cudnnTensorDescriptor_t tensorDesc, cudnnDataType_t* dataType,
                                         int* n, int* c, int* h, int* w, int* nStride, int* cStride,
                                         int* hStride, int* wStride) {
  Layout layout;
  EMULATION_RETURN_IF_ERROR(tensor_layout(tensorDesc, layout));
  for (const void* out :
       {(const void*)dataType, (const void*)n, (const void*)c, (const void*)h, (const void*)w,
        (const void*)nStride, (const void*)cStride, (const void*)hStride, (const void*)wStride})
    if (out == nullptr) return kBadParam;
  *dataType = layout.type;
  *n = int(layout.dims[0]), *c = int(layout.dims[1]), *h = int(layout.dims[2]), *w = int(layout.dims[3]);
  *nStride = int(layout.strides[0]), *cStride = int(layout.strides[1]);
  *hStride = int(layout.strides[2]), *wStride = int(layout.strides[3]);
  return kSuccess;
}

// ================================================================================================
// Filter descriptors

cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t* filterDesc) {
  return create_object(filterDesc);
}

cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t filterDesc) {
  return destroy_object(filterDesc);
}

cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t filterDesc, cudnnDataType_t dataType,
                                         cudnnTensorFormat_t format, int k, int c, int h, int w) {
  if (filterDesc == nullptr || !live<cudnnFilterStruct>().contains(filterDesc)) return kBadParam;
  if (!is_known_data_type(dataType)) return kBadParam;
  if (format == CUDNN_TENSOR_NCHW_VECT_C) return kNotSupported;
  if (format != CUDNN_TENSOR_NCHW && format != CUDNN_TENSOR_NHWC) return kBadParam;
  if (k < 1 || c < 1 || h < 1 || w < 1) return kBadParam;
  EMULATION_RETURN_IF_ERROR(check_layout_limits(packed_layout(dataType, format, k, c, h, w)));
  if (!is_emulated_data_type(dataType)) return kNotSupported;
  *filterDesc = cudnnFilterStruct{true, dataType, format, k, c, h, w};
  return kSuccess;
}

// ================================================================================================
// Convolution descriptors

cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t* convDesc) {
  return create_object(convDesc);
}

cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t convDesc) {
  return destroy_object(convDesc);
}

cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t convDesc, int pad_h, int pad_w,
                                              int u, int v, int dilation_h, int dilation_w,
                                              cudnnConvolutionMode_t mode, cudnnDataType_t computeType) {
  if (convDesc == nullptr || !live<cudnnConvolutionStruct>().contains(convDesc)) return kBadParam;
  if (pad_h < 0 || pad_w < 0 || u < 1 || v < 1 || dilation_h < 1 || dilation_w < 1) return kBadParam;
  if (mode != CUDNN_CONVOLUTION && mode != CUDNN_CROSS_CORRELATION) return kBadParam;
  if (!is_known_data_type(computeType)) return kBadParam;
  convDesc->pad_h = pad_h, convDesc->pad_w = pad_w;
  convDesc->stride_h = u, convDesc->stride_w = v;
  convDesc->dilation_h = dilation_h, convDesc->dilation_w = dilation_w;
  convDesc->mode = mode;
  convDesc->compute_type = computeType;
  convDesc->is_set = true;
  return kSuccess;
}

cudnnStatus_t cudnnSetConvolutionGroupCount(cudnnConvolutionDescriptor_t convDesc, int groupCount) {
  if (convDesc == nullptr || !live<cudnnConvolutionStruct>().contains(convDesc) || groupCount < 1)
    return kBadParam;
  convDesc->group_count = groupCount;
  return kSuccess;
}

cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t convDesc, cudnnMathType_t mathType) {
  if (convDesc == nullptr || !live<cudnnConvolutionStruct>().contains(convDesc)) return kBadParam;
  if (mathType != CUDNN_DEFAULT_MATH && mathType != CUDNN_TENSOR_OP_MATH &&
      mathType != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION && mathType != CUDNN_FMA_MATH)
    return kBadParam;
  convDesc->math_type = mathType;
  return kSuccess;
}

cudnnStatus_t cudnnGetConvolution2dForwardOutputDim(const cudnnConvolutionDescriptor_t convDesc,
                                                    const cudnnTensorDescriptor_t inputTensorDesc,
                                                    const cudnnFilterDescriptor_t filterDesc, int* n, int* c,
                                                    int* h, int* w) {
  Convolution conv;
  EMULATION_RETURN_IF_ERROR(prepare_output_geometry(inputTensorDesc, filterDesc, convDesc, conv));
  if (n == nullptr || c == nullptr || h == nullptr || w == nullptr) return kBadParam;
  *n = int(conv.batch()), *c = int(conv.out_channels()), *h = int(conv.out_h), *w = int(conv.out_w);
  return kSuccess;
}

// ================================================================================================
// Algorithm queries

cudnnStatus_t cudnnGetConvolutionForwardAlgorithmMaxCount(cudnnHandle_t handle, int* count) {
  int device;
  EMULATION_RETURN_IF_ERROR(handle_device(handle, device));
  if (count == nullptr) return kBadParam;
  *count = algorithm_count(Pass::kForward);
  return kSuccess;
}

cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithmMaxCount(cudnnHandle_t handle, int* count) {
  int device;
  EMULATION_RETURN_IF_ERROR(handle_device(handle, device));
  if (count == nullptr) return kBadParam;
  *count = algorithm_count(Pass::kBackwardData);
  return kSuccess;
}

cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(cudnnHandle_t handle, int* count) {
  int device;
  EMULATION_RETURN_IF_ERROR(handle_device(handle, device));
  if (count == nullptr) return kBadParam;
  *count = algorithm_count(Pass::kBackwardFilter);
  return kSuccess;
}

cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t srcDesc, const cudnnFilterDescriptor_t filterDesc,
    const cudnnConvolutionDescriptor_t convDesc, const cudnnTensorDescriptor_t destDesc,
    const int requestedAlgoCount, int* returnedAlgoCount, cudnnConvolutionFwdAlgoPerf_t* perfResults) {
  return get_algorithms(Pass::kForward, handle, srcDesc, filterDesc, convDesc, destDesc, requestedAlgoCount,
                        returnedAlgoCount, perfResults);
}

cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(
    cudnnHandle_t handle, const cudnnFilterDescriptor_t filterDesc, const cudnnTensorDescriptor_t diffDesc,
    const cudnnConvolutionDescriptor_t convDesc, const cudnnTensorDescriptor_t gradDesc,
    const int requestedAlgoCount, int* returnedAlgoCount, cudnnConvolutionBwdDataAlgoPerf_t* perfResults) {
  return get_algorithms(Pass::kBackwardData, handle, gradDesc, filterDesc, convDesc, diffDesc,
                        requestedAlgoCount, returnedAlgoCount, perfResults);
}

cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t srcDesc, const cudnnTensorDescriptor_t diffDesc,
    const cudnnConvolutionDescriptor_t convDesc, const cudnnFilterDescriptor_t gradDesc,
    const int requestedAlgoCount, int* returnedAlgoCount, cudnnConvolutionBwdFilterAlgoPerf_t* perfResults) {
  return get_algorithms(Pass::kBackwardFilter, handle, srcDesc, gradDesc, convDesc, diffDesc,
                        requestedAlgoCount, returnedAlgoCount, perfResults);
}

cudnnStatus_t cudnnFindConvolutionForwardAlgorithmEx(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc, const void* x,
    const cudnnFilterDescriptor_t wDesc, const void* w, const cudnnConvolutionDescriptor_t convDesc,
    const cudnnTensorDescriptor_t yDesc, void* y, const int requestedAlgoCount, int* returnedAlgoCount,
    cudnnConvolutionFwdAlgoPerf_t* perfResults, void* workSpace, size_t workSpaceSizeInBytes) {
  return find_algorithms(Pass::kForward, handle, xDesc, x, wDesc, w, convDesc, yDesc, y, requestedAlgoCount,
                         returnedAlgoCount, perfResults, workSpace, workSpaceSizeInBytes);
}

cudnnStatus_t cudnnFindConvolutionBackwardDataAlgorithmEx(
    cudnnHandle_t handle, const cudnnFilterDescriptor_t wDesc, const void* w,
    const cudnnTensorDescriptor_t dyDesc, const void* dy, const cudnnConvolutionDescriptor_t convDesc,
    const cudnnTensorDescriptor_t dxDesc, void* dx, const int requestedAlgoCount, int* returnedAlgoCount,
    cudnnConvolutionBwdDataAlgoPerf_t* perfResults, void* workSpace, size_t workSpaceSizeInBytes) {
  return find_algorithms(Pass::kBackwardData, handle, dxDesc, dx, wDesc, w, convDesc, dyDesc, dy,
                         requestedAlgoCount, returnedAlgoCount, perfResults, workSpace, workSpaceSizeInBytes);
}

cudnnStatus_t cudnnFindConvolutionBackwardFilterAlgorithmEx(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc, const void* x,
    const cudnnTensorDescriptor_t dyDesc, const void* y, const cudnnConvolutionDescriptor_t convDesc,
    const cudnnFilterDescriptor_t dwDesc, void* dw, const int requestedAlgoCount, int* returnedAlgoCount,
    cudnnConvolutionBwdFilterAlgoPerf_t* perfResults, void* workSpace, size_t workSpaceSizeInBytes) {
  return find_algorithms(Pass::kBackwardFilter, handle, xDesc, x, dwDesc, dw, convDesc, dyDesc, y,
                         requestedAlgoCount, returnedAlgoCount, perfResults, workSpace, workSpaceSizeInBytes);
}

namespace {

cudnnStatus_t workspace_size(Pass pass, cudnnHandle_t handle, cudnnTensorDescriptor_t x_desc,
                             cudnnFilterDescriptor_t w_desc, cudnnConvolutionDescriptor_t conv_desc,
                             cudnnTensorDescriptor_t y_desc, int algo, size_t* size) {
  int device;
  Convolution conv;
  EMULATION_RETURN_IF_ERROR(handle_device(handle, device));
  EMULATION_RETURN_IF_ERROR(prepare_convolution(x_desc, w_desc, conv_desc, y_desc, conv));
  if (size == nullptr) return kBadParam;
  EMULATION_RETURN_IF_ERROR(check_algorithm(pass, algo));
  *size = workspace_bytes(pass, algo, conv);
  return kSuccess;
}

}  // namespace

cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t handle,
                                                      const cudnnTensorDescriptor_t xDesc,
                                                      const cudnnFilterDescriptor_t wDesc,
                                                      const cudnnConvolutionDescriptor_t convDesc,
                                                      const cudnnTensorDescriptor_t yDesc,
                                                      cudnnConvolutionFwdAlgo_t algo, size_t* sizeInBytes) {
  return workspace_size(Pass::kForward, handle, xDesc, wDesc, convDesc, yDesc, algo, sizeInBytes);
}

cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(
    cudnnHandle_t handle, const cudnnFilterDescriptor_t wDesc, const cudnnTensorDescriptor_t dyDesc,
    const cudnnConvolutionDescriptor_t convDesc, const cudnnTensorDescriptor_t dxDesc,
    cudnnConvolutionBwdDataAlgo_t algo, size_t* sizeInBytes) {
  return workspace_size(Pass::kBackwardData, handle, dxDesc, wDesc, convDesc, dyDesc, algo, sizeInBytes);
}

cudnnStatus_t cudnnGetConvolutionBackwardFilterWorkspaceSize(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc, const cudnnTensorDescriptor_t dyDesc,
    const cudnnConvolutionDescriptor_t convDesc, const cudnnFilterDescriptor_t gradDesc,
    cudnnConvolutionBwdFilterAlgo_t algo, size_t* sizeInBytes) {
  return workspace_size(Pass::kBackwardFilter, handle, xDesc, gradDesc, convDesc, dyDesc, algo, sizeInBytes);
}

// ================================================================================================
// Convolutions: output = alpha * op(inputs) + beta * output

cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t handle, const void* alpha,
                                      const cudnnTensorDescriptor_t xDesc, const void* x,
                                      const cudnnFilterDescriptor_t wDesc, const void* w,
                                      const cudnnConvolutionDescriptor_t convDesc,
                                      cudnnConvolutionFwdAlgo_t algo, void* workSpace,
                                      size_t workSpaceSizeInBytes, const void* beta,
                                      const cudnnTensorDescriptor_t yDesc, void* y) {
  Convolution conv;
  EMULATION_RETURN_IF_ERROR(prepare_compute(Pass::kForward, handle, alpha, beta, xDesc, x, wDesc, w, convDesc,
                                            yDesc, y, algo, workSpace, workSpaceSizeInBytes, conv));
  return run_guarded([&] {
    const std::vector<double> input = load_dense(conv.x, x);
    std::vector<double> filter = load_dense(conv.w, w);
    if (conv.flips_filter()) rotate_filter(conv, filter);
    std::vector<double> output(size_t(conv.y.count()));
    convolve_forward(conv, input.data(), filter.data(), output.data());
    store_blended(conv.y, y, output, read_scaling_factor(alpha, conv.y.type),
                  read_scaling_factor(beta, conv.y.type));
  });
}

cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t handle, const void* alpha,
                                           const cudnnFilterDescriptor_t wDesc, const void* w,
                                           const cudnnTensorDescriptor_t dyDesc, const void* dy,
                                           const cudnnConvolutionDescriptor_t convDesc,
                                           cudnnConvolutionBwdDataAlgo_t algo, void* workSpace,
                                           size_t workSpaceSizeInBytes, const void* beta,
                                           const cudnnTensorDescriptor_t dxDesc, void* dx) {
  Convolution conv;
  EMULATION_RETURN_IF_ERROR(prepare_compute(Pass::kBackwardData, handle, alpha, beta, dxDesc, dx, wDesc, w,
                                            convDesc, dyDesc, dy, algo, workSpace, workSpaceSizeInBytes,
                                            conv));
  return run_guarded([&] {
    std::vector<double> filter = load_dense(conv.w, w);
    if (conv.flips_filter()) rotate_filter(conv, filter);
    const std::vector<double> grad_output = load_dense(conv.y, dy);
    std::vector<double> grad_input(size_t(conv.x.count()));
    convolve_backward_data(conv, filter.data(), grad_output.data(), grad_input.data());
    store_blended(conv.x, dx, grad_input, read_scaling_factor(alpha, conv.x.type),
                  read_scaling_factor(beta, conv.x.type));
  });
}

cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t handle, const void* alpha,
                                             const cudnnTensorDescriptor_t xDesc, const void* x,
                                             const cudnnTensorDescriptor_t dyDesc, const void* dy,
                                             const cudnnConvolutionDescriptor_t convDesc,
                                             cudnnConvolutionBwdFilterAlgo_t algo, void* workSpace,
                                             size_t workSpaceSizeInBytes, const void* beta,
                                             const cudnnFilterDescriptor_t dwDesc, void* dw) {
  Convolution conv;
  EMULATION_RETURN_IF_ERROR(prepare_compute(Pass::kBackwardFilter, handle, alpha, beta, xDesc, x, dwDesc, dw,
                                            convDesc, dyDesc, dy, algo, workSpace, workSpaceSizeInBytes,
                                            conv));
  return run_guarded([&] {
    const std::vector<double> input = load_dense(conv.x, x);
    const std::vector<double> grad_output = load_dense(conv.y, dy);
    std::vector<double> grad_filter(size_t(conv.w.count()));
    convolve_backward_filter(conv, input.data(), grad_output.data(), grad_filter.data());
    // The gradient of the filter as stored: rotate back what the convolution applied rotated.
    if (conv.flips_filter()) rotate_filter(conv, grad_filter);
    store_blended(conv.w, dw, grad_filter, read_scaling_factor(alpha, conv.w.type),
                  read_scaling_factor(beta, conv.w.type));
  });
}

// db[0, c, 0, 0] = alpha * sum over n, h, w of dy[n, c, h, w] + beta * db[0, c, 0, 0]
cudnnStatus_t cudnnConvolutionBackwardBias(cudnnHandle_t handle, const void* alpha,
                                           const cudnnTensorDescriptor_t dyDesc, const void* dy,
                                           const void* beta, const cudnnTensorDescriptor_t dbDesc, void* db) {
  int device;
  Layout grad_output, grad_bias;
  EMULATION_RETURN_IF_ERROR(handle_device(handle, device));
  if (alpha == nullptr || beta == nullptr) return kBadParam;
  EMULATION_RETURN_IF_ERROR(tensor_layout(dyDesc, grad_output));
  EMULATION_RETURN_IF_ERROR(tensor_layout(dbDesc, grad_bias));
  const std::array<int64_t, 4> expected_bias = {1, grad_output.dims[1], 1, 1};
  if (grad_bias.dims != expected_bias || grad_bias.type != grad_output.type) return kBadParam;
  EMULATION_RETURN_IF_ERROR(check_data(dy, grad_output, device));
  EMULATION_RETURN_IF_ERROR(check_output(db, grad_bias, device));
  return run_guarded([&] {
    const std::vector<double> values = load_dense(grad_output, dy);
    const int64_t channels = grad_output.dims[1], plane = grad_output.dims[2] * grad_output.dims[3];
    std::vector<double> sums(size_t(channels), 0.0);
    const double* value = values.data();
    for (int64_t n = 0; n < grad_output.dims[0]; ++n)
      for (int64_t c = 0; c < channels; ++c)
        for (int64_t i = 0; i < plane; ++i) sums[size_t(c)] += *value++;
    store_blended(grad_bias, db, sums, read_scaling_factor(alpha, grad_bias.type),
                  read_scaling_factor(beta, grad_bias.type));
  });
}

// C = alpha * A + beta * C, where each dimension of A equals C's or is 1 (broadcast).
cudnnStatus_t cudnnAddTensor(cudnnHandle_t handle, const void* alpha, const cudnnTensorDescriptor_t aDesc,
                             const void* A, const void* beta, const cudnnTensorDescriptor_t cDesc, void* C) {
  int device;
  Layout a, c;
  EMULATION_RETURN_IF_ERROR(handle_device(handle, device));
  if (alpha == nullptr || beta == nullptr) return kBadParam;
  EMULATION_RETURN_IF_ERROR(tensor_layout(aDesc, a));
  EMULATION_RETURN_IF_ERROR(tensor_layout(cDesc, c));
  if (a.type != c.type) return kBadParam;
  for (int d = 0; d < 4; ++d)
    if (a.dims[d] != c.dims[d] && a.dims[d] != 1) return kBadParam;
  EMULATION_RETURN_IF_ERROR(check_data(A, a, device));
  EMULATION_RETURN_IF_ERROR(check_output(C, c, device));
  return run_guarded([&] {
    const std::vector<double> addend = load_dense(a, A);
    // Dense strides of A, 0 along broadcast dimensions.
    std::array<int64_t, 4> step{};
    int64_t dense_stride = 1;
    for (int d = 3; d >= 0; --d) {
      step[size_t(d)] = a.dims[size_t(d)] == 1 ? 0 : dense_stride;
      dense_stride *= a.dims[size_t(d)];
    }
    std::vector<double> result(size_t(c.count()));
    size_t i = 0;
    for (int64_t i0 = 0; i0 < c.dims[0]; ++i0)
      for (int64_t i1 = 0; i1 < c.dims[1]; ++i1)
        for (int64_t i2 = 0; i2 < c.dims[2]; ++i2)
          for (int64_t i3 = 0; i3 < c.dims[3]; ++i3)
            result[i++] = addend[size_t(i0 * step[0] + i1 * step[1] + i2 * step[2] + i3 * step[3])];
    store_blended(c, C, result, read_scaling_factor(alpha, c.type), read_scaling_factor(beta, c.type));
  });
}

// ================================================================================================
// Batch normalization

cudnnStatus_t cudnnBatchNormalizationForwardTraining(
    cudnnHandle_t handle, cudnnBatchNormMode_t mode, const void* alpha, const void* beta,
    const cudnnTensorDescriptor_t xDesc, const void* x, const cudnnTensorDescriptor_t yDesc, void* y,
    const cudnnTensorDescriptor_t bnScaleBiasMeanVarDesc, const void* bnScale, const void* bnBias,
    double exponentialAverageFactor, void* resultRunningMean, void* resultRunningVariance, double epsilon,
    void* resultSaveMean, void* resultSaveInvVariance) {
  int device;
  BatchNorm bn;
  EMULATION_RETURN_IF_ERROR(handle_device(handle, device));
  if (alpha == nullptr || beta == nullptr) return kBadParam;
  EMULATION_RETURN_IF_ERROR(prepare_batch_norm(mode, xDesc, yDesc, bnScaleBiasMeanVarDesc, epsilon, bn));
  if (!both_or_neither(resultRunningMean, resultRunningVariance) ||
      !both_or_neither(resultSaveMean, resultSaveInvVariance))
    return kBadParam;
  const bool updates_running = resultRunningMean != nullptr;
  const bool saves = resultSaveMean != nullptr;
  // The running variance takes the unbiased batch variance, undefined for a single sample per slot.
  if (updates_running && bn.samples_per_slot() < 2) return kNotSupported;
  EMULATION_RETURN_IF_ERROR(check_data(x, bn.x, device));
  EMULATION_RETURN_IF_ERROR(check_output(y, bn.y, device));
  EMULATION_RETURN_IF_ERROR(check_data(bnScale, bn.param, device));
  EMULATION_RETURN_IF_ERROR(check_data(bnBias, bn.param, device));
  if (!has_distinct_elements(bn.param)) return kBadParam;
  for (void* output : {resultRunningMean, resultRunningVariance, resultSaveMean, resultSaveInvVariance})
    if (output != nullptr) EMULATION_RETURN_IF_ERROR(check_data(output, bn.param, device));

  return run_guarded([&] {
    const std::vector<double> input = load_dense(bn.x, x);
    const std::vector<double> scale = load_dense(bn.param, bnScale);
    const std::vector<double> bias = load_dense(bn.param, bnBias);
    std::vector<double> mean, variance;
    batch_statistics(bn, input, mean, variance);
    const std::vector<double> inverse_std = inverse_std_of(variance, epsilon);
    store_blended(bn.y, y, normalize(bn, input, mean, inverse_std, scale, bias),
                  read_scaling_factor(alpha, bn.x.type), read_scaling_factor(beta, bn.x.type));
    if (updates_running) {
      // running = (1 - factor) * running + factor * batch statistic; a factor of 1 does not read running.
      const double samples = double(bn.samples_per_slot());
      std::vector<double> unbiased_variance(variance);
      for (double& v : unbiased_variance) v *= samples / (samples - 1);
      const double factor = exponentialAverageFactor;
      store_blended(bn.param, resultRunningMean, mean, factor, 1 - factor);
      store_blended(bn.param, resultRunningVariance, unbiased_variance, factor, 1 - factor);
    }
    if (saves) {
      store_blended(bn.param, resultSaveMean, mean, 1, 0);
      store_blended(bn.param, resultSaveInvVariance, inverse_std, 1, 0);
    }
  });
}

cudnnStatus_t cudnnBatchNormalizationForwardInference(
    cudnnHandle_t handle, cudnnBatchNormMode_t mode, const void* alpha, const void* beta,
    const cudnnTensorDescriptor_t xDesc, const void* x, const cudnnTensorDescriptor_t yDesc, void* y,
    const cudnnTensorDescriptor_t bnScaleBiasMeanVarDesc, const void* bnScale, const void* bnBias,
    const void* estimatedMean, const void* estimatedVariance, double epsilon) {
  int device;
  BatchNorm bn;
  EMULATION_RETURN_IF_ERROR(handle_device(handle, device));
  if (alpha == nullptr || beta == nullptr) return kBadParam;
  EMULATION_RETURN_IF_ERROR(prepare_batch_norm(mode, xDesc, yDesc, bnScaleBiasMeanVarDesc, epsilon, bn));
  EMULATION_RETURN_IF_ERROR(check_data(x, bn.x, device));
  EMULATION_RETURN_IF_ERROR(check_output(y, bn.y, device));
  for (const void* parameter : {bnScale, bnBias, estimatedMean, estimatedVariance})
    EMULATION_RETURN_IF_ERROR(check_data(parameter, bn.param, device));

  return run_guarded([&] {
    const std::vector<double> input = load_dense(bn.x, x);
    const std::vector<double> scale = load_dense(bn.param, bnScale);
    const std::vector<double> bias = load_dense(bn.param, bnBias);
    const std::vector<double> mean = load_dense(bn.param, estimatedMean);
    const std::vector<double> variance = load_dense(bn.param, estimatedVariance);
    store_blended(bn.y, y, normalize(bn, input, mean, inverse_std_of(variance, epsilon), scale, bias),
                  read_scaling_factor(alpha, bn.x.type), read_scaling_factor(beta, bn.x.type));
  });
}

// With x_hat = (x - mean) * inverse_std over the m samples of a slot:
//   dbias = sum dy, dscale = sum dy * x_hat,
//   dx = scale * inverse_std * (dy - dbias / m - x_hat * dscale / m).
cudnnStatus_t cudnnBatchNormalizationBackward(
    cudnnHandle_t handle, cudnnBatchNormMode_t mode, const void* alphaDataDiff, const void* betaDataDiff,
    const void* alphaParamDiff, const void* betaParamDiff, const cudnnTensorDescriptor_t xDesc, const void* x,
    const cudnnTensorDescriptor_t dyDesc, const void* dy, const cudnnTensorDescriptor_t dxDesc, void* dx,
    const cudnnTensorDescriptor_t dBnScaleBiasDesc, const void* bnScale, void* dBnScaleResult,
    void* dBnBiasResult, double epsilon, const void* savedMean, const void* savedInvVariance) {
  int device;
  BatchNorm bn;  // bn.y describes dy
  Layout grad_input;
  EMULATION_RETURN_IF_ERROR(handle_device(handle, device));
  if (alphaDataDiff == nullptr || betaDataDiff == nullptr || alphaParamDiff == nullptr ||
      betaParamDiff == nullptr)
    return kBadParam;
  EMULATION_RETURN_IF_ERROR(prepare_batch_norm(mode, xDesc, dyDesc, dBnScaleBiasDesc, epsilon, bn));
  EMULATION_RETURN_IF_ERROR(tensor_layout(dxDesc, grad_input));
  if (grad_input.dims != bn.x.dims || grad_input.type != bn.x.type) return kBadParam;
  if (!both_or_neither(savedMean, savedInvVariance)) return kBadParam;
  EMULATION_RETURN_IF_ERROR(check_data(x, bn.x, device));
  EMULATION_RETURN_IF_ERROR(check_data(dy, bn.y, device));
  EMULATION_RETURN_IF_ERROR(check_output(dx, grad_input, device));
  EMULATION_RETURN_IF_ERROR(check_data(bnScale, bn.param, device));
  EMULATION_RETURN_IF_ERROR(check_output(dBnScaleResult, bn.param, device));
  EMULATION_RETURN_IF_ERROR(check_output(dBnBiasResult, bn.param, device));
  const bool has_saved = savedMean != nullptr;
  if (has_saved) {
    EMULATION_RETURN_IF_ERROR(check_data(savedMean, bn.param, device));
    EMULATION_RETURN_IF_ERROR(check_data(savedInvVariance, bn.param, device));
  }

  return run_guarded([&] {
    const std::vector<double> input = load_dense(bn.x, x);
    const std::vector<double> grad_output = load_dense(bn.y, dy);
    const std::vector<double> scale = load_dense(bn.param, bnScale);
    std::vector<double> mean, inverse_std;
    if (has_saved) {
      mean = load_dense(bn.param, savedMean);
      inverse_std = load_dense(bn.param, savedInvVariance);
    } else {
      std::vector<double> variance;
      batch_statistics(bn, input, mean, variance);
      inverse_std = inverse_std_of(variance, epsilon);
    }
    std::vector<double> grad_bias(size_t(bn.slots()), 0.0), grad_scale(size_t(bn.slots()), 0.0);
    size_t i = 0;
    for (int64_t n = 0; n < bn.batch(); ++n)
      for (int64_t c = 0; c < bn.channels(); ++c)
        for (int64_t hw = 0; hw < bn.plane(); ++hw, ++i) {
          const auto slot = size_t(bn.slot_of(c, hw));
          grad_bias[slot] += grad_output[i];
          grad_scale[slot] += grad_output[i] * (input[i] - mean[slot]) * inverse_std[slot];
        }
    const double samples = double(bn.samples_per_slot());
    std::vector<double> grad_x(input.size());
    i = 0;
    for (int64_t n = 0; n < bn.batch(); ++n)
      for (int64_t c = 0; c < bn.channels(); ++c)
        for (int64_t hw = 0; hw < bn.plane(); ++hw, ++i) {
          const auto slot = size_t(bn.slot_of(c, hw));
          const double x_hat = (input[i] - mean[slot]) * inverse_std[slot];
          grad_x[i] = scale[slot] * inverse_std[slot] *
                      (grad_output[i] - grad_bias[slot] / samples - x_hat * grad_scale[slot] / samples);
        }
    const cudnnDataType_t data_type = bn.x.type;
    store_blended(grad_input, dx, grad_x, read_scaling_factor(alphaDataDiff, data_type),
                  read_scaling_factor(betaDataDiff, data_type));
    const double alpha_param = read_scaling_factor(alphaParamDiff, data_type);
    const double beta_param = read_scaling_factor(betaParamDiff, data_type);
    store_blended(bn.param, dBnScaleResult, grad_scale, alpha_param, beta_param);
    store_blended(bn.param, dBnBiasResult, grad_bias, alpha_param, beta_param);
  });
}
