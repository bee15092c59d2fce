#include "resin/train/data_setup.h"

namespace resin::train {

DataSpec load_data(const std::string& name, const std::string& dir) {
  DataSpec d;
  if (name == "fashion-mnist" || name == "mnist") {
    const bool fashion = name == "fashion-mnist";
    RESIN_CHECK(fashion || !dir.empty(), "--data mnist needs --data-dir DIR with the four MNIST IDX files");
    d.train = fashion ? data::load_fashion_mnist(dir.empty() ? data::kFashionMnistRoot : dir, true) : data::load_mnist(dir, true);
    d.test = fashion ? data::load_fashion_mnist(dir.empty() ? data::kFashionMnistRoot : dir, false) : data::load_mnist(dir, false);
    d.channels = 1;
    d.image_size = 28;
    d.num_classes = 10;
    d.mean = {fashion ? 0.2860f : 0.1307f};
    d.std = {fashion ? 0.3530f : 0.3081f};
    d.crop_padding = 2;
    d.hflip = fashion;  // clothes are left-right symmetric; digits are not
    return d;
  }
  if (name == "cifar10" || name == "cifar100") {
    RESIN_CHECK(!dir.empty(), "--data ", name, " needs --data-dir DIR holding the binary version's files");
    const bool c10 = name == "cifar10";
    d.train = c10 ? data::load_cifar10(dir, true) : data::load_cifar100(dir, true);
    d.test = c10 ? data::load_cifar10(dir, false) : data::load_cifar100(dir, false);
    d.channels = 3;
    d.image_size = 32;
    d.num_classes = c10 ? 10 : 100;
    d.mean = c10 ? data::kCifar10Mean : data::kCifar100Mean;
    d.std = c10 ? data::kCifar10Std : data::kCifar100Std;
    d.crop_padding = 4;
    d.hflip = true;
    return d;
  }
  RESIN_FAIL("unknown dataset '", name, "' (expected fashion-mnist, mnist, cifar10 or cifar100)");
}

data::TransformPtr train_transform(const DataSpec& d, bool augment) {
  std::vector<data::TransformPtr> ts;
  if (augment) {
    ts.push_back(std::make_shared<data::RandomCrop>(d.crop_padding));
    if (d.hflip) ts.push_back(std::make_shared<data::RandomHorizontalFlip>(0.5));
  }
  ts.push_back(std::make_shared<data::Normalize>(d.mean, d.std));
  return std::make_shared<data::Compose>(ts);
}

data::TransformPtr test_transform(const DataSpec& d) { return std::make_shared<data::Normalize>(d.mean, d.std); }

}  // namespace resin::train
