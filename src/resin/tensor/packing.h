// Packed activations: a CPU tensor whose storage holds its values in oneDNN's blocked nChw16c order
// rather than in the order its strides say.
//
// Why: oneDNN's Winograd convolutions (the 32- and 64-channel stages of the CIFAR ResNets) read and
// write only blocked activations. With strided tensors alone every such call reordered its input and
// its output, five activation-sized copies per convolution per training step (about a tenth of a
// ResNet-56 step). Now a convolution leaves its output packed, and the ops that know the layout (the
// CPU backend's batch norm, ReLU, residual add and their backwards, and the next convolution) read and
// write packed tensors as they are. Every other reader is unaffected: TensorImpl::data() unpacks the
// storage first (into a new block of memory) before handing out an address, so values are where the
// strides say again.
//
// The layout, for a tensor of shape [N, C, H, W] with C a multiple of 16: element (n, c, h, w) lives
// at float index ((n·C/16 + c/16)·H + h)·W·16 + w·16 + c%16 of the storage. Only a whole storage is
// packed: a 4-D f32 CPU tensor with contiguous or channels-last strides, offset 0, that covers all of
// its storage (can_pack). Unpacking on read is safe from several threads at once (it happens once,
// under the storage's lock). Packing changes the bytes of a storage that other tensor handles may
// share, and the CPU backend's convolutions and packed-aware kernels pack their *inputs* in place:
// so a tensor handed to such an op counts as written (its raw addresses taken before are stale, and
// no other thread may read it meanwhile), although its values do not change.
#pragma once
#include <cstdint>

#include "resin/tensor/tensor.h"

namespace resin {

// Whether t's storage may be packed for t: f32, CPU, 4-D with C % 16 == 0, contiguous or
// channels-last strides, offset 0, covering its whole storage.
bool can_pack(const Tensor& t);
// The packed bytes when t's storage is packed for exactly t's shape and strides (t is the tensor, or
// an identical view, that it was packed for); nullptr otherwise. Does not unpack.
float* packed_data(const Tensor& t);
// For an output t: the bytes to write packed values into when can_pack(t) (whatever t held is
// overwritten), else nullptr. After writing every element, mark_packed(t).
float* packing_target(const Tensor& t);
void mark_packed(const Tensor& t);
// Packs t's storage (t must satisfy can_pack): kernels that meet a strided operand beside packed
// ones pack it rather than unpack the others. The storage gets a new block, so addresses taken
// from it before are stale (as after an unpack).
void pack(const Tensor& t);
// How many storages have been packed (marked by a kernel, or pack()) and unpacked since the process
// started: for tests and profiles (a training step of the zoo's CIFAR ResNets unpacks only where a
// layout-unaware op reads a packed activation: the zero-padded shortcuts and the final pooling).
int64_t pack_count();
int64_t unpack_count();

// Whether convolutions leave their outputs packed and pack their strided inputs when their kernel
// wants the packed layout (default on; RESIN_PACKED_ACTIVATIONS=0 turns it off at startup). Off,
// they reorder through scratch buffers as before; kernels still accept packed operands either way.
// For A/B measurements and tests.
bool packing_enabled();
void set_packing_enabled(bool on);

}  // namespace resin
