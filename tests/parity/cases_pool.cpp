// Parity cases for max/avg pooling (padding, count_include_pad, odd sizes, layouts) and adaptive
// average pooling (even, uneven and overlapping bins).
#include "parity_cases.h"
#include "resin/ops/ops.h"

namespace resin::parity {
namespace {

struct PoolSpec {
  std::string label;
  Shape shape;
  std::vector<int64_t> kernel, stride, padding;
  Layout layout;
};

void pool_cases(std::vector<Case>& out, DType t, Data& d, const PoolSpec& s, bool is_max) {
  for (bool include_pad : {true, false}) {
    if ((is_max || s.padding == std::vector<int64_t>{0, 0}) && !include_pad) continue;  // no difference
    const Pool2dOptions o{s.kernel, s.stride, s.padding, include_pad};
    Case c = make_case(is_max ? "max_pool2d" : "avg_pool2d",
                       s.label + (is_max ? "" : include_pad ? " count_include_pad" : " exclude pad"), t,
                       Attrs().ints("kernel", s.kernel).ints("stride", s.stride).ints("padding", s.padding)
                           .boolean("count_include_pad", include_pad).json(),
                       {arg(d.randn(s.shape, t), s.layout)}, [o, is_max](const std::vector<Tensor>& x) {
                         return std::vector<Tensor>{is_max ? max_pool2d(x[0], o) : avg_pool2d(x[0], o)};
                       });
    c.expect_channels_last = s.layout == Layout::channels_last;
    out.push_back(std::move(c));
  }
}

}  // namespace

void add_pool_cases(std::vector<Case>& out, DType t) {
  Data d(t == DType::f64 ? 41 : 42);
  const Layout C = Layout::contiguous, CL = Layout::channels_last;
  const PoolSpec specs[] = {
      {"3x3 stride 2 pad 1 on 9x9 (stem)", {2, 3, 9, 9}, {3, 3}, {2, 2}, {1, 1}, C},
      {"3x3 stride 2 pad 1 on 8x8", {2, 3, 8, 8}, {3, 3}, {2, 2}, {1, 1}, C},
      {"2x2 stride 2 on 6x7 (last column unused)", {2, 3, 6, 7}, {2, 2}, {2, 2}, {0, 0}, C},
      {"3x2 stride (2,1) pad (1,0)", {2, 2, 7, 5}, {3, 2}, {2, 1}, {1, 0}, C},
      {"channels_last 3x3 stride 2 pad 1", {2, 5, 9, 8}, {3, 3}, {2, 2}, {1, 1}, CL},
      {"batch 1, strided input, 2x2 stride 1", {1, 3, 5, 5}, {2, 2}, {1, 1}, {0, 0}, Layout::strided},
      {"3x3 stride 1 pad 1, transposed input", {2, 3, 5, 6}, {3, 3}, {1, 1}, {1, 1}, Layout::transposed},
      {"4x4 stride 3 pad 2", {1, 2, 10, 11}, {4, 4}, {3, 3}, {2, 2}, C},
      {"16 channels channels_last 3x3 stride 2 pad 1", {2, 16, 10, 10}, {3, 3}, {2, 2}, {1, 1}, CL},
      {"32 channels 2x2", {2, 32, 6, 6}, {2, 2}, {2, 2}, {0, 0}, C},
  };
  for (const PoolSpec& s : specs) {
    pool_cases(out, t, d, s, true);
    pool_cases(out, t, d, s, false);
  }

  struct Adaptive {
    Shape shape;
    int64_t oh, ow;
    Layout layout;
  };
  const Adaptive ads[] = {
      {{2, 3, 5, 7}, 3, 4, C},  {{2, 3, 7, 7}, 1, 1, C}, {{2, 3, 8, 8}, 4, 4, C},
      {{1, 4, 6, 5}, 4, 3, C},  {{2, 3, 7, 5}, 3, 2, CL}, {{2, 2, 3, 3}, 5, 5, C},
      {{2, 3, 6, 6}, 1, 1, CL}, {{2, 3, 9, 10}, 4, 3, Layout::strided}, {{2, 16, 7, 7}, 1, 1, CL},
  };
  for (const Adaptive& a : ads) {
    const int64_t oh = a.oh, ow = a.ow;
    Case c = make_case("adaptive_avg_pool2d",
                       a.shape.str() + " -> " + std::to_string(oh) + "x" + std::to_string(ow) + " " + layout_name(a.layout),
                       t, Attrs().ints("size", {oh, ow}).json(), {arg(d.randn(a.shape, t), a.layout)},
                       [oh, ow](const std::vector<Tensor>& x) {
                         return std::vector<Tensor>{adaptive_avg_pool2d(x[0], oh, ow)};
                       });
    c.expect_channels_last = a.layout == CL;
    out.push_back(std::move(c));
  }
}

}  // namespace resin::parity
