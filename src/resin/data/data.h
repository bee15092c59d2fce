// Umbrella header for resin's data layer: datasets, file readers, transforms and the DataLoader.
#pragma once
#include "resin/data/cifar.h"
#include "resin/data/dataset.h"
#include "resin/data/idx.h"
#include "resin/data/io.h"
#include "resin/data/loader.h"
#include "resin/data/transforms.h"
