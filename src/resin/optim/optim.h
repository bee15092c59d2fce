// Everything in resin::optim: optimizers, gradient clipping, learning-rate schedules, loss scaling.
#pragma once
#include "resin/optim/adamw.h"
#include "resin/optim/clip.h"
#include "resin/optim/loss_scaler.h"
#include "resin/optim/lr_schedule.h"
#include "resin/optim/optimizer.h"
#include "resin/optim/sgd.h"
