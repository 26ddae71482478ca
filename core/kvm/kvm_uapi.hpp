// <linux/kvm.h> for C++. Debian 12's uapi headers declare flexible arrays
// through __DECLARE_FLEX_ARRAY, whose C form wraps an empty struct: 0 bytes in
// C, 1 byte in C++. That grows kvm_cpuid2, kvm_msrs and kvm_msr_list by 4
// bytes and changes the ioctl numbers encoded from their sizes, so KVM answers
// EINVAL. Declare the arrays plainly instead; include this, never <linux/kvm.h>.
#pragma once

#include <linux/stddef.h>

#undef __DECLARE_FLEX_ARRAY
#define __DECLARE_FLEX_ARRAY(TYPE, NAME) TYPE NAME[0]

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
#include <linux/kvm.h>
#pragma GCC diagnostic pop

static_assert(sizeof(kvm_cpuid2) == 8, "kvm_cpuid2 must have its C layout");
static_assert(sizeof(kvm_msrs) == 8, "kvm_msrs must have its C layout");
static_assert(sizeof(kvm_msr_list) == 4, "kvm_msr_list must have its C layout");
