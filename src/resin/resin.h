// Umbrella header: the whole public API.
#pragma once
#include "resin/autograd/grad_mode.h"
#include "resin/autograd/node.h"
#include "resin/core/dtype.h"
#include "resin/core/error.h"
#include "resin/core/rng.h"
#include "resin/core/shape.h"
#include "resin/ops/ops.h"
#include "resin/tensor/tensor.h"
