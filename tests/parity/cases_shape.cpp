// Parity cases for the shape ops: concat/stack/split along every kind of dim, pad with crops,
// and the views (reshape, permute, narrow, expand, contiguous) on non-contiguous inputs.
#include "parity_cases.h"
#include "resin/ops/ops.h"

namespace resin::parity {

void add_shape_cases(std::vector<Case>& out, DType t) {
  Data d(t == DType::f64 ? 51 : 52);
  const Layout C = Layout::contiguous, CL = Layout::channels_last, T = Layout::transposed, S = Layout::strided;

  auto many = [](const std::string& op, int64_t dim) {
    return [op, dim](const std::vector<Tensor>& x) {
      return std::vector<Tensor>{op == "concat" ? concat(x, dim) : stack(x, dim)};
    };
  };
  out.push_back(make_case("concat", "3 tensors along dim 1", t, Attrs().integer("dim", 1).json(),
                          {arg(d.randn({2, 1, 4}, t)), arg(d.randn({2, 3, 4}, t), T), arg(d.randn({2, 2, 4}, t), S)},
                          many("concat", 1)));
  out.push_back(make_case("concat", "dim -1", t, Attrs().integer("dim", -1).json(),
                          {arg(d.randn({3, 2}, t)), arg(d.randn({3, 5}, t))}, many("concat", -1)));
  out.push_back(make_case("concat", "dim 0, one input", t, Attrs().integer("dim", 0).json(), {arg(d.randn({3, 2}, t), S)},
                          many("concat", 0)));
  {
    Case c = make_case("concat", "channels_last along channels", t, Attrs().integer("dim", 1).json(),
                       {arg(d.randn({2, 3, 4, 5}, t), CL), arg(d.randn({2, 2, 4, 5}, t), CL)}, many("concat", 1));
    c.expect_channels_last = true;
    out.push_back(std::move(c));
  }
  out.push_back(make_case("concat", "one input without gradient", t, Attrs().integer("dim", 0).json(),
                          {fixed(d.randn({1, 3}, t)), arg(d.randn({2, 3}, t))}, many("concat", 0)));
  out.push_back(make_case("stack", "dim 0", t, Attrs().integer("dim", 0).json(),
                          {arg(d.randn({2, 3}, t)), arg(d.randn({2, 3}, t), T), arg(d.randn({2, 3}, t), S)},
                          many("stack", 0)));
  out.push_back(make_case("stack", "dim 2 (middle)", t, Attrs().integer("dim", 2).json(),
                          {arg(d.randn({2, 3, 4}, t)), arg(d.randn({2, 3, 4}, t))}, many("stack", 2)));
  out.push_back(make_case("stack", "dim -1 (new last)", t, Attrs().integer("dim", -1).json(),
                          {arg(d.randn({4}, t)), arg(d.randn({4}, t), S)}, many("stack", -1)));

  auto split_case = [&](const std::string& label, const Shape& s, int64_t size, int64_t dim, Layout l) {
    out.push_back(make_case("split", label, t, Attrs().integer("size", size).integer("dim", dim).json(),
                            {arg(d.randn(s, t), l)},
                            [size, dim](const std::vector<Tensor>& x) { return split(x[0], size, dim); }));
  };
  split_case("7 rows by 3 (uneven last)", {7, 4}, 3, 0, C);
  split_case("channels by 2, channels_last", {2, 5, 3, 3}, 2, 1, CL);
  split_case("last dim by 4 (one piece), transposed", {3, 4}, 4, -1, T);
  split_case("size 1 pieces, strided", {3, 5}, 1, 0, S);

  auto pad_case = [&](const std::string& label, const Shape& s, std::vector<int64_t> amounts, double value, Layout l) {
    Case c = make_case("pad", label, t, Attrs().ints("amounts", amounts).num("value", value).json(),
                       {arg(d.randn(s, t), l)}, [amounts, value](const std::vector<Tensor>& x) {
                         return std::vector<Tensor>{pad(x[0], amounts, value)};
                       });
    c.expect_channels_last = l == CL;
    out.push_back(std::move(c));
  };
  pad_case("H and W", {2, 3, 4, 5}, {1, 2, 0, 1}, 0.0, C);
  pad_case("crop and pad (negative amounts)", {2, 3, 4, 5}, {-1, 2, 1, -2}, 0.0, C);
  pad_case("value 1.5 on 2-D, strided", {3, 4}, {2, 1, 1, 0}, 1.5, S);
  pad_case("channels only (option-A shortcut)", {2, 3, 2, 2}, {0, 0, 0, 0, 2, 3}, 0.0, C);
  pad_case("channels_last H and W", {2, 3, 4, 5}, {1, 1, 1, 1}, -0.5, CL);
  pad_case("every dim of 3-D, transposed", {2, 3, 4}, {1, 0, 0, 2, 1, 1}, 0.0, T);

  auto view_case = [&](const std::string& op, const std::string& label, const Shape& s, Layout l, const std::string& attrs,
                       std::function<Tensor(const Tensor&)> f) {
    out.push_back(make_case(op, label, t, attrs, {arg(d.randn(s, t), l)},
                            [f](const std::vector<Tensor>& x) { return std::vector<Tensor>{f(x[0])}; }));
  };
  view_case("reshape", "[2,3,4] -> [6,-1]", {2, 3, 4}, C, Attrs().ints("shape", {6, -1}).json(),
            [](const Tensor& x) { return x.reshape({6, -1}); });
  view_case("reshape", "transposed -> flat", {2, 3, 4}, T, Attrs().ints("shape", {-1}).json(),
            [](const Tensor& x) { return x.reshape({-1}); });
  view_case("reshape", "strided -> [4,1,3]", {3, 4}, S, Attrs().ints("shape", {4, 1, 3}).json(),
            [](const Tensor& x) { return x.reshape({4, 1, 3}); });
  view_case("reshape", "channels_last -> [2,-1]", {2, 3, 2, 2}, CL, Attrs().ints("shape", {2, -1}).json(),
            [](const Tensor& x) { return x.reshape({2, -1}); });
  view_case("permute", "NCHW -> NHWC", {2, 3, 4, 5}, C, Attrs().ints("order", {0, 2, 3, 1}).json(),
            [](const Tensor& x) { return x.permute({0, 2, 3, 1}); });
  view_case("permute", "(3,1,0,2) of strided", {2, 3, 4, 5}, S, Attrs().ints("order", {3, 1, 0, 2}).json(),
            [](const Tensor& x) { return x.permute({3, 1, 0, 2}); });
  view_case("permute", "negative dims on transposed", {3, 4, 2}, T, Attrs().ints("order", {-1, 0, 1}).json(),
            [](const Tensor& x) { return x.permute({-1, 0, 1}); });
  view_case("narrow", "dim 1 start 1 length 2", {3, 5, 2}, C,
            Attrs().integer("dim", 1).integer("start", 1).integer("length", 2).json(),
            [](const Tensor& x) { return x.narrow(1, 1, 2); });
  view_case("narrow", "dim -1 of channels_last", {2, 3, 4, 5}, CL,
            Attrs().integer("dim", -1).integer("start", 2).integer("length", 3).json(),
            [](const Tensor& x) { return x.narrow(-1, 2, 3); });
  view_case("narrow", "dim 0 of strided, length 0", {4, 3}, S,
            Attrs().integer("dim", 0).integer("start", 4).integer("length", 0).json(),
            [](const Tensor& x) { return x.narrow(0, 4, 0); });
  view_case("expand", "[3,1] -> [2,3,4]", {3, 1}, C, Attrs().ints("shape", {2, 3, 4}).json(),
            [](const Tensor& x) { return x.expand({2, 3, 4}); });
  view_case("expand", "[1,4] strided -> [3,-1]", {1, 4}, S, Attrs().ints("shape", {3, -1}).json(),
            [](const Tensor& x) { return x.expand({3, -1}); });
  view_case("expand", "0-d -> [2,2]", {}, C, Attrs().ints("shape", {2, 2}).json(),
            [](const Tensor& x) { return x.expand({2, 2}); });
  view_case("contiguous", "from transposed", {3, 4, 5}, T, Attrs().boolean("channels_last", false).json(),
            [](const Tensor& x) { return x.contiguous(); });
  view_case("contiguous", "from strided", {3, 4}, S, Attrs().boolean("channels_last", false).json(),
            [](const Tensor& x) { return x.contiguous(); });
  view_case("contiguous", "to channels_last", {2, 3, 4, 5}, C, Attrs().boolean("channels_last", true).json(),
            [](const Tensor& x) { return x.contiguous(MemoryFormat::channels_last); });
  view_case("contiguous", "channels_last to contiguous", {2, 3, 4, 5}, CL, Attrs().boolean("channels_last", false).json(),
            [](const Tensor& x) { return x.contiguous(); });
}

}  // namespace resin::parity
