// Include LAST in an optimizer kernel file: torch parity needs a rounding wherever torch rounds, so
// no compiler-contracted multiply-adds besides the explicit std::fma calls (GCC contracts a * b + c
// by default in C++). Applies to every function defined after the include.
#pragma once
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
